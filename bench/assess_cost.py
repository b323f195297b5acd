"""What the assessment itself costs: `assess` on 10,000 3×32×32 images with the default attacks.

The network times itself: ``TimedCNN`` measures every forward pass, and two identity autograd
functions at its input and output measure every backward pass from the gradient's arrival at the
logits to its arrival at the input. Every second of an attack that is in neither is modelshield's own
work (steps, projections, bookkeeping, re-verification), and the target is that this share stays
≤ 10 %. The run goes through the same path as ``modelshield assess``: weights saved as safetensors,
loaded by ``load_model`` with ``arch='bench.assess_cost:TimedCNN'``, ``assess()`` with the default
``AssessConfig`` (every attack, default ε sweeps and budgets) and ``write_reports``; the progress
callback the CLI draws its progress from marks where each attack starts and ends.

    python bench/assess_cost.py --samples 10000 --threads 2 --markdown --json /tmp/assess_cost.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

if __package__ in (None, ""):  # run as a script: make `bench` and `modelshield` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TIMES: dict[str, float] = {
    "forward": 0.0,
    "backward": 0.0,
    "forward_cpu": 0.0,
    "backward_cpu": 0.0,
    "forward_calls": 0,
    "backward_calls": 0,
}
_BACKWARD_START: list[tuple[float, float]] = []


def clocks() -> tuple[float, float]:
    """Wall time, and this process's CPU time (all threads): on a shared machine the second is what
    contention does not inflate."""
    return time.perf_counter(), time.process_time()


class _Exit(torch.autograd.Function):
    """Identity on the logits; its backward runs first in the network's backward: start the clock."""

    @staticmethod
    def forward(ctx: Any, out: Tensor) -> Tensor:
        return out.view_as(out)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        _BACKWARD_START.append(clocks())
        return grad


class _Enter(torch.autograd.Function):
    """Identity on the input; its backward runs last: stop the clock."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        (wall, cpu), (wall0, cpu0) = clocks(), _BACKWARD_START.pop()
        TIMES["backward"] += wall - wall0
        TIMES["backward_cpu"] += cpu - cpu0
        TIMES["backward_calls"] += 1
        return grad


class TimedCNN(nn.Module):
    """A small CIFAR-style CNN (conv-BN-ReLU ×2 with pooling, two linear layers) that times its passes."""

    def __init__(self, width: int = 16, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(2 * width * 8 * 8, 64), nn.ReLU(inplace=True), nn.Linear(64, num_classes)
        )

    def forward(self, x: Tensor) -> Tensor:
        wall0, cpu0 = clocks()
        out = _Exit.apply(self.head(self.features(_Enter.apply(x))))
        wall, cpu = clocks()
        TIMES["forward"] += wall - wall0
        TIMES["forward_cpu"] += cpu - cpu0
        TIMES["forward_calls"] += 1
        return out


def colour_digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n images 3×32×32 in [0, 1]: scikit-learn's digits upscaled, shifted up to 2 px, ink and paper tinted."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(digits.images), n)
    small = torch.from_numpy(digits.images[pick].astype(np.float32) / 16.0)[:, None]
    big = F.interpolate(small, size=(28, 28), mode="bilinear", align_corners=False).clamp(0, 1)
    shift = rng.integers(0, 5, (n, 2))
    canvas = torch.zeros(n, 1, 32, 32)
    for i, (dy, dx) in enumerate(shift):
        canvas[i, :, dy : dy + 28, dx : dx + 28] = big[i]
    ink = torch.from_numpy(rng.uniform(0.5, 1.0, (n, 3, 1, 1)).astype(np.float32))
    paper = torch.from_numpy(rng.uniform(0.0, 0.4, (n, 3, 1, 1)).astype(np.float32))
    return (paper + (ink - paper) * canvas).numpy(), digits.target[pick].astype(np.int64)


def train(net: nn.Module, x: np.ndarray, y: np.ndarray, epochs: int, seed: int) -> None:
    torch.manual_seed(seed)
    xs, ys = torch.from_numpy(x), torch.from_numpy(y)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    net.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(xs)).split(128):
            opt.zero_grad()
            F.cross_entropy(net(xs[idx]), ys[idx]).backward()
            opt.step()
    net.eval()


class StageClock:
    """The progress callback: splits wall and CPU time, in and outside the model, between the stages."""

    KEYS = ("seconds", "forward", "backward", "cpu_seconds", "forward_cpu", "backward_cpu")

    def __init__(self, timed: dict[str, float]) -> None:
        self.timed = timed
        self.stages: list[dict[str, Any]] = []
        self.last = self.now()

    def now(self) -> dict[str, float]:
        wall, cpu = clocks()
        t = self.timed
        return dict(
            zip(self.KEYS, (wall, t["forward"], t["backward"], cpu, t["forward_cpu"], t["backward_cpu"]), strict=True)
        )

    def __call__(self, desc: str, n: int) -> None:
        self.stage(desc if n else f"before {desc}")

    def stage(self, name: str) -> None:
        now = self.now()
        self.stages.append({"stage": name, **{k: now[k] - self.last[k] for k in self.KEYS}})
        self.last = now
        st = self.stages[-1]  # a line per stage on stderr: a run of an hour or more shows where it is
        print(
            f"[{time.strftime('%H:%M:%S')}] {name}: {st['seconds']:.1f} s wall, {st['cpu_seconds']:.1f} s CPU, "
            f"{outside([st], cpu=True):.1%} outside the model",
            file=sys.stderr,
            flush=True,
        )


def outside(stages: list[dict[str, Any]], cpu: bool) -> float:
    """The share of time spent outside the model's forward and backward passes."""
    total = sum(st["cpu_seconds" if cpu else "seconds"] for st in stages)
    model = sum(st[f"forward{'_cpu' if cpu else ''}"] + st[f"backward{'_cpu' if cpu else ''}"] for st in stages)
    return 1 - model / total if total > 0 else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--width", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument(
        "--train-samples", type=int, help="images to train on (default: --samples); a short run of a trained network"
    )
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from bench import assess_cost as timed  # the module load_model imports the architecture from
    from modelshield.assess.runner import AssessConfig, assess
    from modelshield.core.datasets import Dataset
    from modelshield.core.loading import save_torch_model
    from modelshield.integrity.safe_load import load_model
    from modelshield.report import write_reports

    x_train, y_train = colour_digits(args.train_samples or args.samples, seed=1)
    x_test, y_test = colour_digits(args.samples, seed=2)
    net = timed.TimedCNN(width=args.width)
    train(net, x_train, y_train, args.epochs, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        weights = save_torch_model(net, Path(tmp) / "cnn.safetensors")
        model = load_model(
            weights, arch="bench.assess_cost:TimedCNN", arch_kwargs={"width": args.width}, input_shape=(3, 32, 32)
        )
        data = Dataset(torch.from_numpy(x_test), torch.from_numpy(y_test), "colour digits", (0.0, 1.0))
        cfg = AssessConfig(batch_size=args.batch_size, seed=0)
        for key in timed.TIMES:
            timed.TIMES[key] = 0
        clock = StageClock(timed.TIMES)
        result, examples = assess(model, data, cfg, progress=clock)
        clock.stage("after the last attack (sanity checks, findings)")
        summary = summarise(args, result.clean_accuracy, clock, timed.TIMES)
        if args.json:  # before the reports, so the timings survive a renderer failing
            args.json.write_text(json.dumps(summary, indent=2))
        start = time.perf_counter()
        write_reports(result, Path(tmp) / "out", examples)
        summary["reports_seconds"] = time.perf_counter() - start
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    print(markdown(summary) if args.markdown else json.dumps(summary, indent=2))


def summarise(args: argparse.Namespace, clean: float, clock: StageClock, times: dict[str, float]) -> dict[str, Any]:
    """The run's figures: per-stage wall/CPU time in and outside the model, and the shares over all of it."""
    attacks = [st for st in clock.stages if not st["stage"].startswith(("before ", "after ", "clean accuracy"))]
    return {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch threads "
        f"{args.threads}, torch {torch.__version__}",
        "settings": {k: v for k, v in vars(args).items() if k not in ("json", "markdown")},
        "clean_accuracy": clean,
        "assess_seconds": sum(st["seconds"] for st in clock.stages),
        "assess_cpu_seconds": sum(st["cpu_seconds"] for st in clock.stages),
        "reports_seconds": None,
        "forward_calls": times["forward_calls"],
        "backward_calls": times["backward_calls"],
        "outside_share": {
            "wall": outside(clock.stages, cpu=False),
            "cpu": outside(clock.stages, cpu=True),
            "attacks_wall": outside(attacks, cpu=False),
            "attacks_cpu": outside(attacks, cpu=True),
        },
        "stages": clock.stages,
    }


def markdown(s: dict[str, Any]) -> str:
    lines = [
        f"{s['settings']['samples']} samples, clean accuracy {s['clean_accuracy']:.1%}; {s['machine']}",
        "",
        "| stage | wall s | CPU s | model fwd+bwd wall s | outside the model (wall) | outside the model (CPU) |",
        "|---|---|---|---|---|---|",
    ]
    for st in s["stages"]:
        if st["stage"].startswith("before ") and st["seconds"] < 0.05:
            continue
        lines.append(
            f"| {st['stage']} | {st['seconds']:.2f} | {st['cpu_seconds']:.2f} | {st['forward'] + st['backward']:.2f} "
            f"| {outside([st], cpu=False):.1%} | {outside([st], cpu=True):.1%} |"
        )
    o = s["outside_share"]
    lines += [
        "",
        f"assess(): {s['assess_seconds']:.1f} s wall, {s['assess_cpu_seconds']:.1f} s CPU "
        f"({s['forward_calls']} forward, {s['backward_calls']} backward passes); outside the model "
        f"{o['wall']:.1%} of wall time, {o['cpu']:.1%} of CPU time (attacks only: {o['attacks_wall']:.1%} / "
        f"{o['attacks_cpu']:.1%}); writing the reports {s['reports_seconds']:.1f} s more.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
