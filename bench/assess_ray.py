"""Ray-sharded ``assess`` against one process: wall time, CPU use, and whether the numbers are identical.

The demo digits CNN (saved as safetensors, loaded by each Ray worker with ``load_model``) on the digits
test split, a subset of the attacks (``--attacks``, default FGSM, PGD L∞ and L2, Square) at the demo ε
sweeps: once in this process on one torch thread, once with ``RayShards`` on a local Ray cluster of
``--workers`` one-CPU workers (``ray.init(num_cpus=workers, include_dashboard=False)``). Ray's start-up
and the workers' model loading are timed apart from the assessment. CPU use is this process's CPU time
plus the workers' (read from /proc), over the assessment's wall time × the machine's cores.

    python bench/assess_ray.py --markdown
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import torch

if __package__ in (None, ""):  # run as a script: make `modelshield` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from modelshield.assess.results import AssessmentResult
from modelshield.assess.runner import AssessConfig, assess
from modelshield.assess.sharded import RayShards
from modelshield.core.loading import save_torch_model
from modelshield.demo import DEMO_INPUT_SHAPE, DEMO_NUM_CLASSES, demo_model_and_data
from modelshield.integrity.safe_load import load_model


def comparable(result: AssessmentResult) -> dict[str, Any]:
    """The report without its timestamp and per-attack seconds: what must be identical."""
    data = json.loads(result.model_dump_json())
    data.pop("created")
    for rec in data["attacks"]:
        rec.pop("seconds")
    return data


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _workers_cpu() -> float:
    """CPU seconds of this machine's Ray shard workers (their process title is ``ray::ShardWorker``)."""
    total, tick = 0.0, os.sysconf("SC_CLK_TCK")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if not Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"ray::ShardWorker"):
                continue
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def run(samples: int, attacks: list[str], workers: int, batch_size: int) -> dict[str, Any]:
    torch.set_num_threads(1)
    model, data = demo_model_and_data(seed=0)
    data = data.subset(min(samples, len(data)), seed=0)
    cfg = dict(
        attacks=attacks,
        eps_linf=(0.02, 0.05, 0.1, 0.15, 0.2, 0.3),
        eps_l2=(0.25, 0.5, 1.0, 1.5),
        gating_eps=0.1,
        batch_size=batch_size,
    )
    cores = os.cpu_count() or 1
    wall, cpu = time.perf_counter(), _self_cpu()
    single, _ = assess(model, data, AssessConfig(**cfg))  # type: ignore[arg-type]
    one = {"wall_s": time.perf_counter() - wall, "cpu_s": _self_cpu() - cpu}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "digits.safetensors"
        save_torch_model(model.module, path)
        loader = partial(
            load_model,
            str(path),
            arch="modelshield.demo:DigitsCNN",
            input_shape=DEMO_INPUT_SHAPE,
            num_classes=DEMO_NUM_CLASSES,
        )
        start = time.perf_counter()
        with RayShards(loader, address="local", workers=workers, batch_size=batch_size, seed=0) as shards:
            started = time.perf_counter() - start
            wall, cpu, wcpu = time.perf_counter(), _self_cpu(), _workers_cpu()
            sharded, _ = assess(model, data, AssessConfig(**cfg), runner=shards)  # type: ignore[arg-type]
            on_ray = {
                "wall_s": time.perf_counter() - wall,
                "cpu_s": _self_cpu() - cpu + _workers_cpu() - wcpu,
                "start_s": started,
            }
    for row in (one, on_ray):
        row["cpu_use"] = row["cpu_s"] / (row["wall_s"] * cores)
    return {
        "samples": len(data),
        "attacks": attacks,
        "workers": workers,
        "batch_size": batch_size,
        "cores": cores,
        "cpu": platform.processor() or platform.machine(),
        "load_before": os.getloadavg()[0],
        "one_process": one,
        "ray": on_ray,
        "speedup": one["wall_s"] / on_ray["wall_s"],
        "identical": comparable(single) == comparable(sharded),
        "attack_rows": len(single.attacks),
    }


def markdown(r: dict[str, Any]) -> str:
    one, ray = r["one_process"], r["ray"]
    lines = [
        f"`assess` of the demo digits CNN on {r['samples']} samples, attacks {','.join(r['attacks'])} "
        f"({r['attack_rows']} attack rows), batch size {r['batch_size']}, {r['cores']} cores "
        f"(load average {r['load_before']:.1f} at the start)",
        "",
        "| run | assess wall (s) | CPU (s) | CPU use of the machine | Ray start + model load (s) |",
        "|---|---:|---:|---:|---:|",
        f"| one process, 1 torch thread | {one['wall_s']:.1f} | {one['cpu_s']:.1f} | {one['cpu_use']:.0%} | — |",
        f"| Ray, {r['workers']} workers × 1 CPU | {ray['wall_s']:.1f} | {ray['cpu_s']:.1f} | {ray['cpu_use']:.0%} "
        f"| {ray['start_s']:.1f} |",
        "",
        f"speed-up {r['speedup']:.2f}×; identical numbers: {'yes' if r['identical'] else 'NO'}",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=450)
    ap.add_argument("--attacks", default="fgsm,pgd,pgd-l2,square")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    result = run(args.samples, args.attacks.split(","), args.workers, args.batch_size)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    print(markdown(result) if args.markdown else json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
