"""Throughput of checkpoint encryption: `python bench/encrypt.py [--mib 256] [--dir /tmp]`.

Writes a random file of the given size, then times a plain copy with fsync (the disk floor), encrypt,
rotate and decrypt (each including the fsync and rename that make the output durable) and raw
AES-256-GCM over the same bytes in memory (the cipher's ceiling). Prints MB/s (10^6 bytes per second).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from modelshield.integrity.encrypt import decrypt_file, encrypt_file, rotate_file
from modelshield.integrity.keys import Keyring


def _rate(nbytes: int, seconds: float) -> str:
    return f"{nbytes / seconds / 1e6:,.0f} MB/s ({seconds:.2f} s)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256, help="file size in MiB")
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="folder for the files (disk vs /dev/shm)")
    args = parser.parse_args()
    size = args.mib << 20
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        root = Path(tmp)
        src = root / "weights.bin"
        with src.open("wb") as f:
            for _ in range(args.mib):
                f.write(os.urandom(1 << 20))
        keyring_path = root / "keyring.json"
        Keyring.generate(keyring_path, "k1")
        Keyring.generate(keyring_path, "k2")
        keyring = Keyring.load(keyring_path)
        print(
            f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
            f"file: {args.mib} MiB in {args.dir}"
        )
        t = time.perf_counter()
        shutil.copyfile(src, root / "copy.bin")
        with (root / "copy.bin").open("rb+") as f:
            os.fsync(f.fileno())
        print("plain copy + fsync (disk floor):", _rate(size, time.perf_counter() - t))
        t = time.perf_counter()
        encrypt_file(src, root / "weights.msenc", keyring, "k1")
        print("encrypt:", _rate(size, time.perf_counter() - t))
        t = time.perf_counter()
        rotate_file(root / "weights.msenc", keyring, "k2")
        print("rotate (re-wrap, payload copied):", _rate(size, time.perf_counter() - t))
        t = time.perf_counter()
        decrypt_file(root / "weights.msenc", root / "weights.out", keyring)
        print("decrypt:", _rate(size, time.perf_counter() - t))
        data = src.read_bytes()[: 64 << 20]
        aead, nonce = AESGCM(AESGCM.generate_key(bit_length=256)), os.urandom(12)
        t = time.perf_counter()
        for i in range(0, len(data), 1 << 20):
            aead.encrypt(nonce, data[i : i + (1 << 20)], None)
        print("AES-256-GCM in memory (ceiling):", _rate(len(data), time.perf_counter() - t))


if __name__ == "__main__":
    main()
