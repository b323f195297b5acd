"""Sign and verify a multi-GB model folder, modelshield vs OpenSSF `model-signing`: `python bench/sign.py [--gib 2]`.

Both tools sign the same folder with the same EC P-256 key, in one process, page cache warm (the
cross-checks read everything first), best of ``--repeats`` runs each, the two tools alternating. Two
layouts: the folder split over four files (threads over files help both tools) and one single file
(whole-file SHA-256 is sequential for both; the 256 MiB shards row shows what sharding buys, a format
model-signing 1.1.1 cannot verify).
Every signature is cross-checked by the other tool before timing. The data is deleted at the end.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from model_signing import hashing as ms_hashing
from model_signing import signing as ms_signing
from model_signing import verifying as ms_verifying

from modelshield.integrity.signing import generate_key_pair, sign_model, verify_model

MIB = 1 << 20


def write_random(path: Path, size: int) -> None:
    with path.open("wb") as f:
        for _ in range(size // (64 * MIB)):
            f.write(os.urandom(64 * MIB))
        f.write(os.urandom(size % (64 * MIB)))


SIGNATURES = ["ours.sig", "theirs.sig", "shards.sig"]


def their_sign(model: Path, key: Path, sig: Path) -> None:
    hashing = ms_hashing.Config().set_ignored_paths(paths=SIGNATURES)
    ms_signing.Config().use_elliptic_key_signer(private_key=key).set_hashing_config(hashing).sign(model, sig)


def their_verify(model: Path, public: Path, sig: Path) -> None:
    ms_verifying.Config().use_elliptic_key_verifier(public_key=public).verify(model, sig)


def best(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Fastest wall-clock seconds, and fewest CPU seconds (all threads): the work done, whatever the neighbours do."""
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return min(wall), min(cpu)


def bench_layout(model: Path, key: Path, public: Path, repeats: int) -> dict[str, tuple[float, ...]]:
    """tool -> (sign s, sign CPU s, verify s, verify CPU s) for one folder, cross-verified first."""
    ours_sig, theirs_sig, shard_sig = (model / name for name in SIGNATURES)
    ignore = SIGNATURES
    sign_model(model, key, ours_sig, ignore)
    their_sign(model, key, theirs_sig)
    their_verify(model, public, ours_sig)
    verify_model(model, public, theirs_sig, ignore)
    runs: dict[str, list[tuple[float, float]]] = {"model-signing 1.1.1": [], "modelshield": []}
    for _ in range(repeats):  # alternate the tools so a noisy neighbour hurts both alike
        runs["model-signing 1.1.1"].append(best(lambda: their_sign(model, key, theirs_sig), 1))
        runs["modelshield"].append(best(lambda: sign_model(model, key, ours_sig, ignore), 1))
    verify_times = {
        "model-signing 1.1.1": best(lambda: their_verify(model, public, theirs_sig), repeats),
        "modelshield": best(lambda: verify_model(model, public, ours_sig, ignore), repeats),
    }
    out = {tool: (min(w for w, _ in r), min(c for _, c in r), *verify_times[tool]) for tool, r in runs.items()}
    sign_model(model, key, shard_sig, ignore, shard_size=256 * MIB)
    out["modelshield, 256 MiB shards"] = (
        *best(lambda: sign_model(model, key, shard_sig, ignore, shard_size=256 * MIB), repeats),
        *best(lambda: verify_model(model, public, shard_sig, ignore), repeats),
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=2.0, help="model size in GiB")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="where to write the model (deleted after)")
    args = parser.parse_args()
    size = int(args.gib * (1 << 30))
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; {size / 2**30:.2f} GiB; "
        f"EC P-256 key; page cache warm; best of {args.repeats}"
    )
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        root = Path(tmp)
        key, public = generate_key_pair("ec-p256", root / "key.pem")
        layouts = {"4 files": [size // 4] * 4, "1 file": [size]}
        for name, sizes in layouts.items():
            model = root / name.replace(" ", "-")
            model.mkdir()
            (model / "config.json").write_text('{"hidden_size": 4096}')
            for i, n in enumerate(sizes):
                write_random(model / f"model-{i:05d}-of-{len(sizes):05d}.safetensors", n)
            rows = bench_layout(model, key, public, args.repeats)
            print(f"\n{name} ({len(sizes)} × {sizes[0] / 2**20:,.0f} MiB)")
            print("| tool | sign s | sign MB/s | sign CPU s | verify s | verify MB/s | verify CPU s |")
            print("|---|---:|---:|---:|---:|---:|---:|")
            for tool, (s, s_cpu, v, v_cpu) in rows.items():
                print(
                    f"| {tool} | {s:.2f} | {size / s / 1e6:,.0f} | {s_cpu:.2f} | {v:.2f} | {size / v / 1e6:,.0f} "
                    f"| {v_cpu:.2f} |"
                )
            base, ours = rows["model-signing 1.1.1"], rows["modelshield"]
            print(
                "modelshield speed-up over model-signing (>1 is faster): "
                f"sign {base[0] / ours[0]:.2f}x wall, {base[1] / ours[1]:.2f}x CPU; "
                f"verify {base[2] / ours[2]:.2f}x wall, {base[3] / ours[3]:.2f}x CPU"
            )
            for p in model.iterdir():
                p.unlink()
            model.rmdir()


if __name__ == "__main__":
    main()
