"""DP-SGD: step time against Opacus and non-private training, accuracy at ε = 1, 3, 8, and the accountant.

Part 1 — step time (default). One process, one model, one batch: the PyTorch MNIST example's CNN
(``bench.models.MnistCNN``, 1×28×28 inputs, random data is enough for timing) at batch 256 on
``--threads`` CPU threads (2), or with ``--device cuda`` a ResNet-18 with GroupNorm on 3×32×32 inputs.
Contenders, each from the same initial weights, interleaved in rotating order ``--repeats`` times,
each repeat timing ``--steps`` steps after ``--warmup`` untimed ones:

* ``non-private``: forward, mean cross-entropy, backward, SGD step.
* ``modelshield``: ``BookKeeping.clipped`` (per-sample clipping), Gaussian noise, SGD step.
* ``opacus-hooks``: Opacus 1.6 ``PrivacyEngine.make_private(grad_sample_mode="hooks")`` (per-sample
  gradients from module hooks), forward, backward, ``DPOptimizer.step``.
* ``opacus-ghost``: the same with ``grad_sample_mode="ghost"`` (Fast Gradient and Ghost Clipping:
  two backward passes).

Medians of the per-step wall time are reported with ratios to non-private (target ≤ 1.5× on CPU,
≤ 2× on a GPU) and to Opacus. Batches are fixed at 256 (no Poisson sampling) so every contender
does the same work.

Part 2 — accuracy (``--accuracy``): DP training of the digits CNN (digits, 1,347 training images) and of
a 30-16-2 MLP (breast cancer, 426) at ε = 1, 3, 8, δ = 1e-5, averaged over ``--seeds`` seeds; and
Opacus on the digits setting at ε = 3 with the same σ, steps, Poisson sampling, optimiser and lr.

Part 3 — accountant (``--accountant``): ε at q = 256/60000, σ = 1.1, 60 epochs, δ = 1e-5 from
modelshield (dp-accounting RDP and PLD) and from Opacus's RDP and PRV accountants.

    python bench/dp.py --markdown
    python bench/dp.py --accuracy --accountant --markdown
    python bench/dp.py --device cuda --markdown     # ResNet-18 / GroupNorm / batch 256 on a GPU
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

if __package__ in (None, ""):  # run as a script: make `bench` and `modelshield` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.models import MnistCNN  # noqa: E402
from modelshield.core.datasets import sklearn_dataset  # noqa: E402
from modelshield.demo import DigitsCNN  # noqa: E402
from modelshield.privacy.dp import BookKeeping, epsilon, replace_batchnorm, train_dp  # noqa: E402

CONTENDERS = ("non-private", "modelshield", "opacus-hooks", "opacus-ghost")
EPSILONS = (1.0, 3.0, 8.0)
DELTA = 1e-5
#: the training recipe of the accuracy table (chosen on digits at ε = 8 before the table was run)
RECIPE: dict[str, dict[str, Any]] = {
    "digits": {"epochs": 20, "batch_size": 128, "optimizer": "adam", "lr": 0.01, "max_grad_norm": 1.0},
    "breast_cancer": {"epochs": 20, "batch_size": 64, "optimizer": "adam", "lr": 0.01, "max_grad_norm": 1.0},
}

StepFn = Callable[[], None]


def _setting(device: str) -> tuple[nn.Module, Tensor, Tensor, str]:
    torch.manual_seed(0)
    if device == "cpu":
        net: nn.Module = MnistCNN()
        x, label = torch.randn(256, 1, 28, 28), "MNIST example CNN (1×28×28, 1.2 M parameters)"
    else:
        from bench.models import ResNet18

        net = replace_batchnorm(ResNet18(num_classes=10))
        x, label = torch.randn(256, 3, 32, 32), "ResNet-18 with GroupNorm (3×32×32)"
    y = torch.randint(0, 10, (256,))
    return net.to(device), x.to(device), y.to(device), label


def _non_private(net: nn.Module, x: Tensor, y: Tensor) -> StepFn:
    opt = torch.optim.SGD(net.parameters(), lr=0.01)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(net(x), y).backward()
        opt.step()

    return step


def _modelshield(net: nn.Module, x: Tensor, y: Tensor, sigma: float = 1.0, clip: float = 1.0) -> StepFn:
    bk = BookKeeping(net, max_grad_norm=clip)
    opt = torch.optim.SGD(bk.params, lr=0.01)
    gen = torch.Generator(device=x.device).manual_seed(1)

    def step() -> None:
        grads = bk.clipped(x, y).grads
        for p in bk.params:
            g = grads[p]
            g.add_(torch.randn(g.shape, generator=gen, device=g.device), alpha=sigma * clip)
            p.grad = g.div_(len(x))
        opt.step()

    return step


def _opacus(net: nn.Module, x: Tensor, y: Tensor, mode: str, sigma: float = 1.0, clip: float = 1.0) -> StepFn:
    from opacus import PrivacyEngine
    from torch.utils.data import DataLoader, TensorDataset

    loader = DataLoader(TensorDataset(x.cpu(), y.cpu()), batch_size=len(x))
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    engine = PrivacyEngine(accountant="rdp")
    kwargs: dict[str, Any] = {"criterion": nn.CrossEntropyLoss()} if mode == "ghost" else {}
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        made = engine.make_private(
            module=net,
            optimizer=opt,
            data_loader=loader,
            noise_multiplier=sigma,
            max_grad_norm=clip,
            poisson_sampling=False,
            grad_sample_mode=mode,
            **kwargs,
        )
    model, dp_opt = made[0], made[1]
    criterion = made[2] if mode == "ghost" else nn.CrossEntropyLoss()

    def step() -> None:
        dp_opt.zero_grad(set_to_none=True)
        criterion(model(x), y).backward()
        dp_opt.step()

    return step


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def bench_speed(args: argparse.Namespace) -> dict[str, Any]:
    """Median per-step time of each contender, same model, weights and batch, interleaved."""
    base, x, y, label = _setting(args.device)
    builders: dict[str, Callable[[nn.Module], StepFn]] = {
        "non-private": lambda m: _non_private(m, x, y),
        "modelshield": lambda m: _modelshield(m, x, y),
        "opacus-hooks": lambda m: _opacus(m, x, y, "hooks"),
        "opacus-ghost": lambda m: _opacus(m, x, y, "ghost"),
    }
    steps: dict[str, StepFn] = {}
    errors: dict[str, str] = {}
    for name in args.contenders:
        try:
            net = copy.deepcopy(base).train()
            steps[name] = builders[name](net)
            steps[name]()  # fail here, before timing, if the contender cannot run this model
        except Exception as exc:  # noqa: BLE001 - a peer that cannot run is reported, not fatal
            errors[name] = f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
            steps.pop(name, None)
    times: dict[str, list[float]] = {n: [] for n in steps}
    cpu: dict[str, list[float]] = {n: [] for n in steps}
    names = list(steps)
    for r in range(args.repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            for _ in range(args.warmup):
                steps[name]()
            _sync(args.device)
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(args.steps):
                steps[name]()
            _sync(args.device)
            times[name].append((time.perf_counter() - t0) / args.steps * 1000)
            cpu[name].append((time.process_time() - c0) / args.steps * 1000)
    return {
        "setting": label,
        "batch": len(x),
        "ms": {n: statistics.median(v) for n, v in times.items()},
        "cpu_ms": {n: statistics.median(v) for n, v in cpu.items()},
        "all_ms": times,
        "errors": errors,
    }


def _accuracy(net: nn.Module, x: Tensor, y: Tensor) -> float:
    with torch.no_grad():
        return float((net(x).argmax(1) == y).float().mean())


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(30, 16), nn.ReLU(), nn.Linear(16, 2))


def bench_accuracy(args: argparse.Namespace) -> dict[str, Any]:
    """Test accuracy of DP training at each ε (mean over seeds), and Opacus at ε = 3 on digits."""
    rows: list[dict[str, Any]] = []
    for data, make in (("digits", DigitsCNN), ("breast_cancer", _mlp)):
        train, test = sklearn_dataset(data, "train"), sklearn_dataset(data, "test")
        torch.manual_seed(0)
        nonpriv = []
        for seed in range(args.seeds):
            torch.manual_seed(seed)
            net = make()
            opt = torch.optim.Adam(net.parameters(), lr=RECIPE[data]["lr"] / 10)
            gen = torch.Generator().manual_seed(seed)
            for _ in range(RECIPE[data]["epochs"]):
                perm = torch.randperm(len(train), generator=gen)
                for i in range(0, len(train), RECIPE[data]["batch_size"]):
                    idx = perm[i : i + RECIPE[data]["batch_size"]]
                    opt.zero_grad()
                    F.cross_entropy(net(train.x[idx]), train.y[idx]).backward()
                    opt.step()
            nonpriv.append(_accuracy(net.eval(), test.x, test.y))
        rows.append({"data": data, "epsilon": None, "accuracy": statistics.mean(nonpriv), "sigma": None})
        for eps in EPSILONS:
            accs, sigma = [], 0.0
            for seed in range(args.seeds):
                torch.manual_seed(seed)
                net, report = train_dp(make(), train.x, train.y, epsilon=eps, delta=DELTA, seed=seed, **RECIPE[data])
                accs.append(_accuracy(net, test.x, test.y))
                sigma = report.noise_multiplier
                spent = report.epsilon
            rows.append(
                {"data": data, "epsilon": eps, "spent": spent, "accuracy": statistics.mean(accs), "sigma": sigma}
            )
    peer = _opacus_digits(args.seeds)
    return {"rows": rows, "opacus": peer}


def _opacus_digits(seeds: int, eps: float = 3.0) -> dict[str, Any]:
    """Opacus (hooks) and modelshield on digits at the same ε, σ, steps, sampling, optimiser and lr."""
    from opacus import PrivacyEngine
    from torch.utils.data import DataLoader, TensorDataset

    recipe = RECIPE["digits"]
    train, test = sklearn_dataset("digits", "train"), sklearn_dataset("digits", "test")
    theirs, ours, spent = [], [], []
    for seed in range(seeds):
        torch.manual_seed(seed)
        net, report = train_dp(DigitsCNN(), train.x, train.y, epsilon=eps, delta=DELTA, seed=seed, **recipe)
        ours.append(_accuracy(net, test.x, test.y))
        torch.manual_seed(seed)
        net = DigitsCNN()
        opt = torch.optim.Adam(net.parameters(), lr=recipe["lr"])
        loader = DataLoader(TensorDataset(train.x, train.y), batch_size=recipe["batch_size"])
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            model, dp_opt, dp_loader = PrivacyEngine(accountant="rdp").make_private(
                module=net,
                optimizer=opt,
                data_loader=loader,
                noise_multiplier=report.noise_multiplier,
                max_grad_norm=recipe["max_grad_norm"],
            )
            steps = 0
            while steps < report.steps:
                for xb, yb in dp_loader:
                    if steps == report.steps:
                        break
                    dp_opt.zero_grad()
                    if len(xb):
                        F.cross_entropy(model(xb), yb).backward()
                    dp_opt.step()
                    steps += 1
        theirs.append(_accuracy(model.eval(), test.x, test.y))
        spent.append(report.epsilon)
    return {
        "epsilon": eps,
        "sigma": report.noise_multiplier,
        "steps": report.steps,
        "modelshield": statistics.mean(ours),
        "opacus": statistics.mean(theirs),
        "per_seed": {"modelshield": ours, "opacus": theirs},
    }


def bench_accountant() -> dict[str, float]:
    """ε for the standard MNIST setting from both libraries' accountants."""
    from opacus.accountants import PRVAccountant, RDPAccountant

    q, sigma, delta = 256 / 60000, 1.1, DELTA
    steps = int(60 / q)
    out = {
        "modelshield rdp (dp-accounting)": epsilon(sigma, q, steps, delta, "rdp"),
        "modelshield pld (dp-accounting)": epsilon(sigma, q, steps, delta, "pld"),
    }
    for name, acc in (("opacus rdp", RDPAccountant()), ("opacus prv", PRVAccountant())):
        acc.history = [(sigma, q, steps)]
        out[name] = float(acc.get_epsilon(delta))
    return out


def _machine(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average {load:.1f}"


def markdown(results: dict[str, Any], args: argparse.Namespace) -> str:
    lines: list[str] = []
    if "speed" in results:
        s = results["speed"]
        ms = s["ms"]
        base = ms.get("non-private")
        lines += [
            f"DP-SGD step time, {s['setting']}, batch {s['batch']}, {args.device}"
            + (f", {args.threads} threads" if args.device == "cpu" else "")
            + f" ({results['machine']}); median of {args.repeats} interleaved repeats × {args.steps} steps.",
            "",
            "| training | wall ms / step | × non-private | modelshield faster by | CPU ms / step | × non-private (CPU) |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        cpu = s["cpu_ms"]
        for name in CONTENDERS:
            if name in ms:
                ratio = f"{ms[name] / base:.2f}×" if base else "—"
                cpu_ratio = f"{cpu[name] / cpu['non-private']:.2f}×" if "non-private" in cpu else "—"
                faster = (
                    f"{ms[name] / ms['modelshield']:.2f}×" if "modelshield" in ms and name.startswith("opacus") else ""
                )
                lines.append(f"| {name} | {ms[name]:.1f} | {ratio} | {faster} | {cpu[name]:.1f} | {cpu_ratio} |")
            elif name in s["errors"]:
                lines.append(f"| {name} | fails: {s['errors'][name]} | | | | |")
        lines.append("")
    if "accuracy" in results:
        a = results["accuracy"]
        lines += [
            f"Test accuracy (mean of {args.seeds} seeds), δ = {DELTA:g}, RDP accountant; recipe: {json.dumps(RECIPE)}.",
            "",
            "| data | ε target | ε spent | σ | accuracy |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        for r in a["rows"]:
            if r["epsilon"] is None:
                lines.append(f"| {r['data']} | non-private | — | — | {r['accuracy']:.1%} |")
            else:
                lines.append(
                    f"| {r['data']} | {r['epsilon']:g} | {r['spent']:.2f} | {r['sigma']:.2f} | {r['accuracy']:.1%} |"
                )
        o = a["opacus"]
        lines += [
            "",
            f"Same ε = {o['epsilon']:g} on digits, same σ = {o['sigma']:.2f}, {o['steps']} Poisson-sampled steps, Adam: "
            f"modelshield {o['modelshield']:.1%}, Opacus (hooks) {o['opacus']:.1%} (per seed: {o['per_seed']}).",
            "",
        ]
    if "accountant" in results:
        lines += [
            "ε at q = 256/60000, σ = 1.1, 60 epochs (14,062 steps), δ = 1e-5:",
            "",
            "| accountant | ε |",
            "| --- | ---: |",
        ]
        lines += [f"| {k} | {v:.4f} |" for k, v in results["accountant"].items()]
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--contenders", nargs="+", default=list(CONTENDERS), choices=CONTENDERS)
    p.add_argument("--no-speed", action="store_true", help="Skip part 1.")
    p.add_argument("--accuracy", action="store_true", help="Part 2: accuracy at ε = 1, 3, 8.")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--accountant", action="store_true", help="Part 3: the accountant cross-check.")
    p.add_argument("--markdown", action="store_true")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    results: dict[str, Any] = {"machine": _machine(args.device)}
    if not args.no_speed:
        results["speed"] = bench_speed(args)
    if args.accuracy:
        results["accuracy"] = bench_accuracy(args)
    if args.accountant:
        results["accountant"] = bench_accountant()
    results["machine"] = _machine(args.device)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    print(markdown(results, args) if args.markdown else json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
