"""Hashing throughput of provenance locks: `python bench/provenance.py [--gib 1] [--dir /tmp]`.

Writes a folder of 8 random shards, warms the page cache with one pass, then reports the best of
three `hash_tree` passes for 1, 2, 4 and 8 worker threads in MB/s (10^6 bytes per second).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from modelshield.integrity.provenance import hash_tree


def _best_seconds(root: Path, workers: int, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        hash_tree(root, workers=workers)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=1.0, help="folder size in GiB, split over 8 shards")
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="where to write the shards")
    args = parser.parse_args()
    shard_mib = max(1, int(args.gib * 1024 / 8))
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        root = Path(tmp)
        for i in range(8):
            with (root / f"shard-{i}.safetensors").open("wb") as f:
                for _ in range(shard_mib):
                    f.write(os.urandom(1 << 20))
        size = sum(p.stat().st_size for p in root.iterdir())
        print(f"{os.cpu_count()} cores; {size / 2**30:.2f} GiB in 8 files under {args.dir}; page cache warm")
        hash_tree(root)
        for workers in (1, 2, 4, 8):
            best = _best_seconds(root, workers)
            print(f"workers={workers}: {size / best / 1e6:,.0f} MB/s ({best:.2f} s)")


if __name__ == "__main__":
    main()
