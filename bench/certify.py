"""Certification throughput: modelshield's streamed CERTIFY vs ART's PyTorchRandomizedSmoothing.certify().

Run from the repo root::

    .venv/bin/python bench/certify.py                       # both models, N=10,000, 4 images
    .venv/bin/python bench/certify.py --models digits --n 1000 --images 2 --no-memory   # smoke run

Per model, in one process, on the same network, σ, N0, N, α, batch size and images:

* ``floor``: the model's own noisy forwards, N0 + N per image in batches (noise + forward +
  argmax, nothing else). Timed before and after the contenders; the mean is the floor.
* ``modelshield``: ``SmoothedClassifier(model, σ, batch_size).certify(x, n0, n, alpha)``.
* ``art``: ART 1.20.1 ``PyTorchRandomizedSmoothing(sample_size=N0, scale=σ, alpha=α).certify(x, n=N,
  batch_size)``, the full method (N0 selection, N estimation, statsmodels' Clopper–Pearson bound).

Both certify results are compared input by input (same class or both abstaining; radius gap).
The noise differs between the two, so radii differ by sampling error, not by method.

Peak host memory (``--no-memory`` skips it): each contender runs once more in its own fresh
subprocess, which loads the same weights and images from a temporary safetensors file, runs one
tiny warm-up forward, resets the kernel's RSS high-water mark (``/proc/self/clear_refs``), then runs
the contender; reported is the high-water mark (``VmHWM``) minus the RSS before the run (the extra
resident memory the method needs), and the absolute peak. Linux only.

Models: ``digits`` is the demo CNN (1×8×8, ~30k parameters). ``resnet8`` is a CIFAR-style
ResNet-8 (3×3 stem, one basic block per stage at 16/32/64 channels, ~78k parameters) on 3×32×32
inputs (the digits resized and repeated over three channels), noise-trained with
``train_with_noise`` for ``--resnet-epochs`` epochs so the smoothed classifier rarely abstains.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

if __package__ in (None, ""):  # run as a script: make `bench` and `modelshield` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.models import _BasicBlock, _to_cifar_layout  # noqa: E402
from modelshield.core.datasets import sklearn_dataset  # noqa: E402
from modelshield.core.model import TorchModel  # noqa: E402
from modelshield.defenses.smoothing import ABSTAIN, SmoothedClassifier, train_with_noise  # noqa: E402
from modelshield.demo import DEMO_INPUT_SHAPE, DEMO_NUM_CLASSES, DigitsCNN, demo_model_and_data  # noqa: E402

MODELS = ("digits", "resnet8")
CONTENDERS = ("floor", "modelshield", "art")


class ResNet8(nn.Module):
    """CIFAR-style ResNet with one basic block per stage (16, 32, 64 channels): a small 3×32×32 model."""

    def __init__(self, num_classes: int = DEMO_NUM_CLASSES) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.layers = nn.Sequential(_BasicBlock(16, 16, 1), _BasicBlock(16, 32, 2), _BasicBlock(32, 64, 2))
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        out = self.layers(self.stem(x))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(out, 1), 1))


@dataclass
class Setup:
    """One benchmark model (eval mode, frozen) with its certification images."""

    name: str
    model: TorchModel
    x: Tensor
    y: Tensor
    description: str


def _empty(name: str) -> TorchModel:
    if name == "digits":
        return TorchModel(DigitsCNN(), input_shape=DEMO_INPUT_SHAPE, num_classes=DEMO_NUM_CLASSES)
    return TorchModel(ResNet8(), input_shape=(3, 32, 32), num_classes=DEMO_NUM_CLASSES)


def build(name: str, images: int, sigma: float, resnet_epochs: int) -> Setup:
    """Train the named model (seconds) and take the first ``images`` test images."""
    if name == "digits":
        model, test = demo_model_and_data()
        desc = "demo CNN (conv16-conv32-maxpool-fc64-fc10), 1×8×8, standard training"
        x, y = test.x, test.y
    else:
        train, test = sklearn_dataset("digits", "train"), sklearn_dataset("digits", "test")
        train.x = _to_cifar_layout(train.x)
        torch.manual_seed(0)
        model = train_with_noise(_empty(name), train, sigma, epochs=resnet_epochs)
        desc = f"ResNet-8 (16/32/64), 3×32×32 digits, noise-trained σ={sigma} for {resnet_epochs} epochs"
        x, y = _to_cifar_layout(test.x), test.y
    return Setup(name, model, x[:images].contiguous(), y[:images], desc)


def save_setup(s: Setup, path: Path) -> None:
    """Weights and images in one safetensors file, for the memory subprocesses (no pickle)."""
    from safetensors.torch import save_file

    tensors = {f"w.{k}": v.contiguous() for k, v in s.model.module.state_dict().items()}
    save_file({**tensors, "x": s.x, "y": s.y}, str(path))


def load_setup(name: str, path: Path) -> Setup:
    from safetensors.torch import load_file

    tensors = load_file(str(path))
    model = _empty(name)
    model.module.load_state_dict({k[2:]: v for k, v in tensors.items() if k.startswith("w.")})
    model.module.eval()
    return Setup(name, model, tensors["x"], tensors["y"], "")


@dataclass(frozen=True)
class Params:
    """What every contender shares."""

    sigma: float
    n0: int
    n: int
    alpha: float
    batch: int


def run_floor(s: Setup, p: Params) -> None:
    """N0 + N noisy forwards per image in batches of ``p.batch``, argmax only."""
    module = s.model.module
    with torch.no_grad():
        for xi in s.x:
            left = p.n0 + p.n
            while left > 0:
                m = min(p.batch, left)
                noisy = xi.expand(m, *xi.shape) + p.sigma * torch.randn(m, *xi.shape)
                module(noisy).argmax(1)
                left -= m


def run_modelshield(s: Setup, p: Params) -> tuple[np.ndarray, np.ndarray]:
    cert = SmoothedClassifier(s.model, p.sigma, batch_size=p.batch).certify(s.x, n0=p.n0, n=p.n, alpha=p.alpha)
    return cert.prediction.numpy(), cert.radius.numpy()


def run_art(s: Setup, p: Params) -> tuple[np.ndarray, np.ndarray]:
    from art.estimators.certification.randomized_smoothing import PyTorchRandomizedSmoothing

    art = PyTorchRandomizedSmoothing(
        model=s.model.module,
        loss=nn.CrossEntropyLoss(),
        input_shape=tuple(s.x.shape[1:]),
        nb_classes=s.model.num_classes,
        clip_values=(0.0, 1.0),
        sample_size=p.n0,  # certify() draws sample_size samples to select the class (Cohen's N0)
        scale=p.sigma,
        alpha=p.alpha,
        device_type="cpu",
    )
    np.random.seed(0)
    prediction, radius = art.certify(s.x.numpy(), n=p.n, batch_size=p.batch)
    return prediction, radius


RUNNERS: dict[str, Callable[[Setup, Params], Any]] = {
    "floor": run_floor,
    "modelshield": run_modelshield,
    "art": run_art,
}


def _timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, out


def _status_mib(field: str) -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":")) / 1024  # kB


def memory_child(name: str, contender: str, path: Path, p: Params, threads: int) -> None:
    """Subprocess entry: load, warm up on two inputs, run one contender, print its peak RSS as JSON."""
    torch.set_num_threads(threads)
    s = load_setup(name, path)
    with torch.no_grad():
        s.model.module(s.x[:2])
    if contender == "art":
        import art.estimators.certification.randomized_smoothing  # noqa: F401 - import cost is not the method's
        import statsmodels.stats.proportion  # noqa: F401
    # reset the high-water mark to the current RSS (Linux ≥ 4.0); ru_maxrss would carry the parent's over fork/exec
    Path("/proc/self/clear_refs").write_text("5")
    before = _status_mib("VmRSS")
    RUNNERS[contender](s, p)
    after = _status_mib("VmHWM")
    print(json.dumps({"before_mib": before, "peak_mib": after, "extra_mib": after - before}))


def measure_memory(name: str, contender: str, path: Path, p: Params, threads: int) -> dict[str, float]:
    cmd = [
        sys.executable, __file__, "--memory-child", contender, "--models", name, "--state", str(path),
        "--sigma", str(p.sigma), "--n0", str(p.n0), "--n", str(p.n), "--alpha", str(p.alpha),
        "--batch", str(p.batch), "--threads", str(threads),
    ]  # fmt: skip
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def agreement(ours: tuple[np.ndarray, np.ndarray], art: tuple[np.ndarray, np.ndarray]) -> dict[str, Any]:
    """Same decision (class, or both abstaining) per input, and the radius gap where both certify."""
    (pred_a, rad_a), (pred_b, rad_b) = ours, art
    same = pred_a == pred_b
    both = same & (pred_a != ABSTAIN)
    gaps = np.abs(rad_a[both] - rad_b[both])
    return {
        "same_decision": int(same.sum()),
        "inputs": len(pred_a),
        "max_radius_gap": float(gaps.max()) if gaps.size else None,
        "ours": [(int(c), round(float(r), 3)) for c, r in zip(pred_a, rad_a, strict=True)],
        "art": [(int(c), round(float(r), 3)) for c, r in zip(pred_b, rad_b, strict=True)],
    }


def bench_model(s: Setup, p: Params, memory: bool, threads: int) -> dict[str, Any]:
    """Time floor, modelshield, ART, floor again in this process; then memory per contender."""
    samples = len(s.x) * (p.n0 + p.n)
    run_floor(Setup(s.name, s.model, s.x[:1], s.y[:1], ""), Params(p.sigma, 0, p.batch, p.alpha, p.batch))  # warm-up
    rows: dict[str, dict[str, Any]] = {}
    floor_before = _timed(lambda: run_floor(s, p))
    results = {}
    for name in ("modelshield", "art"):
        wall, cpu, out = _timed(lambda name=name: RUNNERS[name](s, p))
        rows[name] = {"seconds": wall, "cpu_seconds": cpu}
        results[name] = out
    floor_after = _timed(lambda: run_floor(s, p))
    floor = (floor_before[0] + floor_after[0]) / 2
    floor_cpu = (floor_before[1] + floor_after[1]) / 2
    rows = {"floor": {"seconds": floor, "cpu_seconds": floor_cpu,
                      "runs": [round(floor_before[0], 3), round(floor_after[0], 3)]}, **rows}  # fmt: skip
    for row in rows.values():
        row["samples_per_s"] = samples / row["seconds"]
        row["throughput_vs_floor"] = floor / row["seconds"]
        row["cpu_vs_floor"] = row["cpu_seconds"] / floor_cpu
    if memory:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "setup.safetensors"
            save_setup(s, path)
            for name in CONTENDERS:
                rows[name]["memory"] = measure_memory(s.name, name, path, p, threads)
    return {
        "model": s.name,
        "description": s.description,
        "samples": samples,
        "rows": rows,
        "agreement": agreement(results["modelshield"], results["art"]),
    }


def markdown(report: dict[str, Any]) -> str:
    p = report["params"]
    lines = [
        f"{report['machine']}; torch {report['torch']} ({report['threads']} thread(s)), ART {report['art']}",
        f"σ={p['sigma']}, N0={p['n0']}, N={p['n']}, α={p['alpha']}, batch {p['batch']}, {p['images']} images",
        "",
        "| model | contender | seconds | noisy samples/s | throughput ÷ floor | CPU s ÷ floor | extra peak RSS |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for m in report["models"]:
        for name, row in m["rows"].items():
            mem = row.get("memory")
            mem_s = f"{mem['extra_mib']:,.0f} MiB (peak {mem['peak_mib']:,.0f})" if mem else "—"
            secs = f"{row['seconds']:.2f}" + (f" ({row['runs'][0]:.2f}/{row['runs'][1]:.2f})" if "runs" in row else "")
            lines.append(
                f"| {m['model']} | {name} | {secs} | {row['samples_per_s']:,.0f} | {row['throughput_vs_floor']:.2f}× "
                f"| {row['cpu_vs_floor']:.2f}× | {mem_s} |"
            )
    lines.append("")
    for m in report["models"]:
        a = m["agreement"]
        gap = "—" if a["max_radius_gap"] is None else f"{a['max_radius_gap']:.3f}"
        lines.append(
            f"- {m['model']} ({m['description']}): same decision on {a['same_decision']}/{a['inputs']} images, "
            f"max radius gap {gap}; (class, radius) modelshield {a['ours']}, ART {a['art']}"
        )
    return "\n".join(lines)


def machine_name() -> str:
    """The CPU model as /proc/cpuinfo names it, and the core count (benchmarks must name the machine)."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, from {', '.join(MODELS)}")
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--n0", type=int, default=100)
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--sigma", type=float, default=0.25)
    parser.add_argument("--alpha", type=float, default=0.001)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--resnet-epochs", type=int, default=3)
    parser.add_argument("--no-memory", action="store_true", help="skip the per-contender peak-memory subprocesses")
    parser.add_argument("--json", type=Path, help="also write the report here")
    parser.add_argument("--memory-child", choices=CONTENDERS, help=argparse.SUPPRESS)
    parser.add_argument("--state", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    p = Params(args.sigma, args.n0, args.n, args.alpha, args.batch)
    if args.memory_child:
        memory_child(args.models, args.memory_child, args.state, p, args.threads)
        return
    torch.set_num_threads(args.threads)
    import art

    names = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = sorted(set(names) - set(MODELS))
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODELS)}")
    report: dict[str, Any] = {
        "machine": machine_name(),
        "torch": torch.__version__,
        "art": art.__version__,
        "threads": args.threads,
        "params": {**p.__dict__, "images": args.images},
        "models": [],
    }
    for name in names:
        setup = build(name, args.images, args.sigma, args.resnet_epochs)
        report["models"].append(bench_model(setup, p, not args.no_memory, args.threads))
        print(f"{name} done", file=sys.stderr)
    print(markdown(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
