"""Robust training: modelshield's PGD adversarial training against IBM ART's and a plain-PyTorch floor.

Part 1 — time. The same network, the same initial weights, the same data and the same steps:
one epoch of PGD-7 adversarial training over 20 minibatches of 256 (Madry et al.: each batch is
replaced by its PGD-7 examples, then one Adam step). Digits has 1,797 images, so the 1,347
training images are repeated in order (×3.8) to reach 20 × 256 = 5,120; repetition changes no
per-step cost. Contenders:

* ``floor``: a hand-written loop, the least work the recipe needs: per batch a uniform random
  start, 7 × (forward + input gradient + signed step + clamp) in eval mode, then one
  forward/backward/step in train mode.
* ``modelshield``: ``PGDTraining(eps, steps=7).fit(model, data, TrainConfig(epochs=1, batch_size=256))``
  with validation off (the loop's shuffling, device-resident batches and progress bookkeeping
  included; progress bars off).
* ``art``: ``AdversarialTrainerMadryPGD(PyTorchClassifier(...), nb_epochs=1, batch_size=256,
  eps, eps_step, max_iter=7)``, fed numpy as ART requires. ART's PGD attacks in sub-batches of
  32 unless told otherwise; ``art-batch256`` sets the attack's batch size to 256 as well.

Each contender runs ``--repeats`` times, interleaved (order rotated), from the same initial
weights; the medians of wall time and of process CPU time are reported with their ratios to
the floor (target: modelshield ≤ 1.3×). On a shared machine the CPU-time ratio is the steadier
one: with one torch thread it counts this process's work, not its waits for a core.

Part 2 — effect (``--effect``). The demo CNN trained from one initialisation by each method for
``--effect-epochs`` epochs (free training for epochs / m, as Shafahi et al. count), then clean
accuracy and PGD-20 robust accuracy at the demo's gating ε = 0.1 on the 450-image test split,
under cross-entropy PGD and under margin-loss PGD (the latter sees through the vanishing
softmax gradients of defensive distillation).

    python bench/harden.py --repeats 3 --markdown
    python bench/harden.py --repeats 3 --effect --effect-epochs 20 --markdown --json out.json
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
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

if __package__ in (None, ""):  # run as a script: make `bench` and `modelshield` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.models import MnistCNN, _to_mnist_layout  # noqa: E402
from modelshield.core.datasets import Dataset, sklearn_dataset  # noqa: E402
from modelshield.core.model import TorchModel  # noqa: E402
from modelshield.defenses.training import (  # noqa: E402
    TRADES,
    Distillation,
    FastTraining,
    FreeTraining,
    PGDTraining,
    StandardTraining,
    TrainConfig,
    Trainer,
    accuracies,
)
from modelshield.demo import DigitsCNN  # noqa: E402

CONTENDERS = ("floor", "modelshield", "art", "art-batch256")
FLOOR_TARGET = 1.3
GATE = 0.1


@dataclass
class Setup:
    """A network factory (same initial weights each call) and the 20 × 256 training set."""

    name: str
    make: Callable[[], nn.Module]
    x: Tensor
    y: Tensor
    input_shape: tuple[int, ...]
    description: str


def setup(name: str, batches: int, batch: int, device: torch.device) -> Setup:
    train = sklearn_dataset("digits", "train", seed=0)
    x = train.x if name == "digits-cnn" else _to_mnist_layout(train.x)
    n = batches * batch
    reps = -(-n // x.shape[0])
    xs = x.repeat((reps,) + (1,) * (x.ndim - 1))[:n].contiguous().to(device)
    ys = train.y.repeat(reps)[:n].contiguous().to(device)
    torch.manual_seed(0)
    init = DigitsCNN() if name == "digits-cnn" else MnistCNN()
    state = copy.deepcopy(init.state_dict())

    def make() -> nn.Module:
        net = DigitsCNN() if name == "digits-cnn" else MnistCNN()
        net.load_state_dict(state)
        return net.to(device)

    desc = {
        "digits-cnn": "modelshield demo CNN (conv16-conv32-maxpool-fc64-fc10, 29 k parameters), digits 1×8×8",
        "mnist-cnn": "PyTorch MNIST-example CNN (conv32-conv64-maxpool-fc128-fc10, 1.2 M parameters), digits → 1×28×28",
    }[name]
    return Setup(name, make, xs, ys, tuple(xs.shape[1:]), desc)


@dataclass
class Params:
    eps: float = GATE
    steps: int = 7
    lr: float = 1e-3
    batch: int = 256

    @property
    def alpha(self) -> float:
        return 2.5 * self.eps / self.steps  # modelshield's default, passed to every contender


def run_floor(s: Setup, p: Params) -> nn.Module:
    """The least work PGD-7 adversarial training needs, written out in plain PyTorch."""
    net = s.make()
    opt = torch.optim.Adam(net.parameters(), lr=p.lr)
    perm = torch.randperm(s.x.shape[0], device=s.x.device)
    for i in range(0, s.x.shape[0], p.batch):
        idx = perm[i : i + p.batch]
        x, y = s.x[idx], s.y[idx]
        net.eval()
        lo, hi = (x - p.eps).clamp(min=0.0), (x + p.eps).clamp(max=1.0)
        x_adv = (x + torch.empty_like(x).uniform_(-p.eps, p.eps)).clamp_(0.0, 1.0)
        for _ in range(p.steps):
            x_adv.requires_grad_(True)
            (g,) = torch.autograd.grad(F.cross_entropy(net(x_adv), y), x_adv)
            x_adv = torch.clamp(x_adv.detach() + p.alpha * g.sign(), lo, hi)
        net.train()
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(net(x_adv), y).backward()
        opt.step()
    return net


def run_modelshield(s: Setup, p: Params) -> nn.Module:
    model = TorchModel(s.make(), input_shape=s.input_shape, num_classes=10)
    cfg = TrainConfig(epochs=1, batch_size=p.batch, lr=p.lr, val_fraction=0.0, progress=False)
    PGDTraining(eps=p.eps, steps=p.steps, alpha=p.alpha).fit(model, Dataset(s.x, s.y, "bench"), cfg)
    return model.module


def run_art(s: Setup, p: Params, attack_batch: int | None = None) -> nn.Module:
    from art.defences.trainer import AdversarialTrainerMadryPGD
    from art.estimators.classification import PyTorchClassifier

    net = s.make()
    clf = PyTorchClassifier(
        model=net,
        loss=nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam(net.parameters(), lr=p.lr),
        input_shape=s.input_shape,
        nb_classes=10,
        clip_values=(0.0, 1.0),
        device_type="gpu" if s.x.is_cuda else "cpu",
    )
    trainer = AdversarialTrainerMadryPGD(
        clf, nb_epochs=1, batch_size=p.batch, eps=p.eps, eps_step=p.alpha, max_iter=p.steps, num_random_init=1
    )
    if attack_batch is not None:
        trainer.attack.set_params(batch_size=attack_batch)
    x, y = s.x.cpu().numpy(), s.y.cpu().numpy()  # ART's API is numpy; the conversion is part of its cost
    with contextlib.redirect_stderr(io.StringIO()):  # its tqdm bars
        trainer.fit(x, y)
    return net


RUNNERS: dict[str, Callable[[Setup, Params], nn.Module]] = {
    "floor": run_floor,
    "modelshield": run_modelshield,
    "art": run_art,
    "art-batch256": lambda s, p: run_art(s, p, attack_batch=p.batch),
}


@dataclass
class TimeRow:
    contender: str
    times_s: list[float] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)
    median_s: float | None = None
    vs_floor: float | None = None
    median_cpu_s: float | None = None
    cpu_vs_floor: float | None = None
    robust_after: float | None = None


def time_training(s: Setup, p: Params, repeats: int, contenders: list[str], seed: int) -> list[TimeRow]:
    """Interleaved repeats; each run's robust accuracy on the first 512 training images is a sanity check."""
    rows = {c: TimeRow(c) for c in contenders}
    x_chk, y_chk = s.x[:512], s.y[:512]
    for r in range(repeats):
        order = contenders[r % len(contenders) :] + contenders[: r % len(contenders)]
        for c in order:
            torch.manual_seed(seed + r)
            start, cpu = time.perf_counter(), time.process_time()
            net = RUNNERS[c](s, p)
            rows[c].times_s.append(time.perf_counter() - start)
            rows[c].cpu_s.append(time.process_time() - cpu)
            m = TorchModel(net.eval(), input_shape=s.input_shape, num_classes=10)
            rows[c].robust_after = accuracies(m, x_chk, y_chk, eps=p.eps, steps=10)[1]
    floor = statistics.median(rows["floor"].times_s) if "floor" in rows else None
    floor_cpu = statistics.median(rows["floor"].cpu_s) if "floor" in rows else None
    for row in rows.values():
        row.median_s, row.median_cpu_s = statistics.median(row.times_s), statistics.median(row.cpu_s)
        row.vs_floor = row.median_s / floor if floor else None
        row.cpu_vs_floor = row.median_cpu_s / floor_cpu if floor_cpu else None
    return list(rows.values())


@dataclass
class EffectRow:
    method: str
    epochs: int
    train_s: float
    clean: float
    robust_ce: float
    robust_margin: float


def effect(epochs: int, seed: int) -> list[EffectRow]:
    """Each method from the same initialisation on digits; accuracies at the gating ε on the test split."""
    train, test = sklearn_dataset("digits", "train", seed=seed), sklearn_dataset("digits", "test", seed=seed)
    replays = 4
    methods: list[tuple[str, Trainer, int]] = [
        ("standard", StandardTraining(), epochs),
        ("PGD-AT (Madry, PGD-7)", PGDTraining(eps=GATE, steps=7), epochs),
        ("TRADES (β = 6, 10 steps)", TRADES(eps=GATE, beta=6.0, steps=10), epochs),
        ("fast AT (Wong, FGSM α = 1.25ε)", FastTraining(eps=GATE), epochs),
        (f"free AT (Shafahi, m = {replays})", FreeTraining(eps=GATE, replays=replays), max(1, epochs // replays)),
        ("defensive distillation (T = 20)", Distillation(temperature=20.0), epochs),
    ]
    rows = []
    for name, trainer, n_epochs in methods:
        torch.manual_seed(seed)
        model = TorchModel(DigitsCNN(), input_shape=(1, 8, 8), num_classes=10)
        cfg = TrainConfig(epochs=n_epochs, batch_size=64, lr=3e-3, val_fraction=0.0, progress=False, seed=seed)
        start = time.perf_counter()
        trainer.fit(model, train, cfg)
        seconds = time.perf_counter() - start
        clean, ce = accuracies(model, test.x, test.y, eps=GATE, steps=20)
        _, margin = accuracies(model, test.x, test.y, eps=GATE, steps=20, loss="margin")
        assert ce is not None and margin is not None
        rows.append(EffectRow(name, n_epochs, seconds, clean, ce, margin))
    return rows


def machine() -> dict[str, Any]:
    cpu = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    import modelshield

    versions = {"python": platform.python_version(), "torch": torch.__version__, "modelshield": modelshield.__version__}
    with contextlib.suppress(ImportError):
        import art

        versions["adversarial-robustness-toolbox"] = art.__version__
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "load_average": os.getloadavg(),
        "versions": versions,
    }


def markdown(rows: list[TimeRow], effects: list[EffectRow] | None, s: Setup, p: Params) -> str:
    out = [
        f"**PGD-{p.steps} adversarial training, {s.x.shape[0] // p.batch} batches of {p.batch}, {s.description}**",
        "",
        "| contender | median wall s | × floor | median CPU s | × floor (CPU) | wall runs (s) | robust acc. % |",
        "|---|---:|---:|---:|---:|---|---:|",
    ]
    for r in rows:
        runs = " / ".join(f"{t:.2f}" for t in r.times_s)
        rob = "—" if r.robust_after is None else f"{100 * r.robust_after:.1f}"
        out.append(
            f"| {r.contender} | {r.median_s:.2f} | {r.vs_floor:.2f} | {r.median_cpu_s:.2f} | "
            f"{r.cpu_vs_floor:.2f} | {runs} | {rob} |"
        )
    if effects:
        out += [
            "",
            f"**Effect at the demo's gating ε = {GATE} (L∞), digits test split (450 images)**",
            "",
            "| method | epochs | train s | clean acc. % | PGD-20 (CE) robust % | PGD-20 (margin) robust % |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for e in effects:
            out.append(
                f"| {e.method} | {e.epochs} | {e.train_s:.1f} | {100 * e.clean:.1f} | "
                f"{100 * e.robust_ce:.1f} | {100 * e.robust_margin:.1f} |"
            )
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", choices=("digits-cnn", "mnist-cnn"), default="digits-cnn")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=7)
    ap.add_argument("--eps", type=float, default=GATE)
    ap.add_argument("--contenders", default=",".join(CONTENDERS))
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: steadier on a shared machine)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--effect", action="store_true", help="also train each method on digits and compare robustness")
    ap.add_argument("--effect-epochs", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    contenders = [c.strip() for c in args.contenders.split(",") if c.strip()]
    unknown = sorted(set(contenders) - set(CONTENDERS))
    if unknown:
        sys.exit(f"unknown contenders {unknown}; choose from {', '.join(CONTENDERS)}")
    if any(c.startswith("art") for c in contenders):
        try:
            import art  # noqa: F401
        except ImportError:
            sys.exit("ART is missing: .venv/bin/pip install --no-deps adversarial-robustness-toolbox==1.20.1 tqdm")
    s = setup(args.model, args.batches, args.batch, torch.device(args.device))
    p = Params(eps=args.eps, steps=args.steps, batch=args.batch)
    rows = time_training(s, p, args.repeats, contenders, args.seed)
    effects = effect(args.effect_epochs, args.seed) if args.effect else None
    info = machine()
    if args.markdown:
        print(markdown(rows, effects, s, p))
        print(f"\nmachine: {info}")
    else:
        for r in rows:
            print(
                f"{r.contender:14} median {r.median_s:7.2f} s  × floor {r.vs_floor:5.2f}  "
                f"CPU {r.median_cpu_s:7.2f} s  × floor {r.cpu_vs_floor:5.2f}"
            )
        for e in effects or []:
            print(f"{e.method:34} clean {e.clean:.3f}  robust CE {e.robust_ce:.3f}  margin {e.robust_margin:.3f}")
    if args.json:
        payload = {
            "machine": info,
            "params": asdict(p),
            "model": s.description,
            "timing": [asdict(r) for r in rows],
            "effect": [asdict(e) for e in effects or []],
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    ms = next((r for r in rows if r.contender == "modelshield"), None)
    if ms is not None and ms.vs_floor is not None and ms.vs_floor > FLOOR_TARGET:
        print(f"warning: modelshield is {ms.vs_floor:.2f}× the floor (target ≤ {FLOOR_TARGET}×)", file=sys.stderr)


if __name__ == "__main__":
    main()
