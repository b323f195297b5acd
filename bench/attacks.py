"""modelshield's evasion attacks against torchattacks, IBM ART and Foolbox, in one process.

Same network weights, same inputs, same parameters translated to each library's API. For every
attack it reports the median wall time over ``--repeats`` runs (libraries interleaved, the order
rotated each repeat, after one warm-up call each), the ratio of each library's time to
modelshield's, the robust accuracy each implementation leaves (three independent
implementations are the correctness check: modelshield should land within 1.5 points of its
peers), and for PGD the floor — ``steps × (forward + torch.autograd.grad(loss, x))`` in plain
PyTorch on the same batch.

    python bench/attacks.py --model mnist-cnn --batch 256 --repeats 5 --markdown --json out.json
    python bench/attacks.py --model resnet18 --batch 512 --device cuda --amp bf16 --channels-last --attacks pgd

ART is fed numpy and returns numpy, so its time includes the tensor↔array conversion a user
would pay. Foolbox has no Square attack (reported n/a). Peers are installed with
``pip install --no-deps`` (see docs/benchmarks.md) so torchvision never pulls a CUDA torch.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import inspect
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

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

if __package__ in (None, ""):  # run as a script: make `bench` and `modelshield` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.models import MODELS, BenchSetup, load  # noqa: E402

ATTACKS = ("fgsm", "pgd", "cw", "square")
LIBRARIES = ("modelshield", "torchattacks", "art", "foolbox")
PEERS = ("torchattacks", "art", "foolbox", "square-ref")
TOLERANCE = 1.5  # robust-accuracy points within which modelshield must match each peer
PGD_FLOOR_TARGET = 1.05

# eps per configuration: chosen so undefended robust accuracy is far from 0 % and 100 %.
DEFAULT_EPS = {"mnist-cnn": 0.1, "digits-cnn": 0.1, "resnet18": 8 / 255}


class NotAvailable(Exception):
    """The library has no implementation of this attack (or is not installed)."""


@dataclass
class Params:
    eps: float
    alpha: float
    steps: int = 10
    cw_c: float = 1.0
    cw_kappa: float = 0.0
    cw_steps: int = 10
    cw_lr: float = 0.01
    cw_binary_search_steps: int = 1
    square_queries: int = 100
    square_p_init: float = 0.8
    seed: int = 0


@dataclass
class Row:
    library: str
    version: str
    times_ms: list[float] = field(default_factory=list)
    median_ms: float | None = None
    ratio_vs_modelshield: float | None = None
    robust_accuracy: float | None = None
    within_tolerance: bool | None = None
    max_linf: float | None = None
    median_l2_of_successes: float | None = None
    note: str = ""


# --------------------------------------------------------------------------------------------
# the network as each library sees it


class PeerModule(nn.Module):
    """The benchmark network for peers and the floor, with the same AMP / channels-last choices
    modelshield's TorchModel applies (a no-op wrapper on the default fp32 CPU path)."""

    def __init__(self, net: nn.Module, amp: torch.dtype | None, channels_last: bool, device: torch.device) -> None:
        super().__init__()
        self.net, self.amp, self.channels_last, self.dev = net, amp, channels_last, device

    def forward(self, x: Tensor) -> Tensor:
        if self.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.amp is None:
            return self.net(x)
        with torch.autocast(device_type=self.dev.type, dtype=self.amp):
            out = self.net(x)
        return out.float()


def peer_module(setup: BenchSetup, amp: torch.dtype | None, channels_last: bool, device: torch.device) -> nn.Module:
    if amp is None and not channels_last:
        return setup.module
    return PeerModule(setup.module, amp, channels_last, device).eval()


# --------------------------------------------------------------------------------------------
# one runner per (library, attack): built once, then called; returns x_adv as a torch tensor


def _kwargs_for(cls: Any, wanted: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Keep the keyword arguments ``cls`` accepts; report the ones it does not."""
    sig = inspect.signature(cls.__init__)
    if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        return wanted, []
    kept = {k: v for k, v in wanted.items() if k in sig.parameters}
    return kept, sorted(set(wanted) - set(kept))


def build_modelshield(attack: str, p: Params, ctx: dict[str, Any]) -> tuple[Callable[[], Tensor], str]:
    try:
        ev = importlib.import_module("modelshield.attacks.evasion")
    except ImportError as e:  # the evasion package is still being written
        raise NotAvailable(f"modelshield.attacks.evasion not importable: {e}") from e
    cls_name, wanted = {
        "fgsm": ("FGSM", dict(eps=p.eps, norm="linf")),
        "pgd": ("PGD", dict(eps=p.eps, steps=p.steps, alpha=p.alpha, norm="linf", random_start=True, restarts=1)),
        "cw": (
            "CarliniWagnerL2",
            dict(
                c=p.cw_c, kappa=p.cw_kappa, steps=p.cw_steps, lr=p.cw_lr, binary_search_steps=p.cw_binary_search_steps
            ),
        ),
        "square": (
            "Square",
            dict(eps=p.eps, norm="linf", n_queries=p.square_queries, p_init=p.square_p_init, seed=p.seed),
        ),
    }[attack]
    cls = getattr(ev, cls_name, None)
    if cls is None:
        raise NotAvailable(f"modelshield.attacks.evasion has no {cls_name}")
    kwargs, dropped = _kwargs_for(cls, wanted)
    atk = cls(**kwargs)
    model, x, y = ctx["ms_model"], ctx["x"], ctx["y"]
    note = f"ignored {dropped}" if dropped else ""
    return (lambda: atk(model, x, y)), note


def build_torchattacks(attack: str, p: Params, ctx: dict[str, Any]) -> tuple[Callable[[], Tensor], str]:
    try:
        import torchattacks as ta
    except ImportError as e:
        raise NotAvailable(f"torchattacks not installed: {e}") from e
    m = ctx["peer"]
    if attack == "fgsm":
        atk = ta.FGSM(m, eps=p.eps)
    elif attack == "pgd":
        atk = ta.PGD(m, eps=p.eps, alpha=p.alpha, steps=p.steps, random_start=True)
    elif attack == "cw":
        atk = ta.CW(m, c=p.cw_c, kappa=p.cw_kappa, steps=p.cw_steps, lr=p.cw_lr)
    else:
        atk = ta.Square(
            m,
            norm="Linf",
            eps=p.eps,
            n_queries=p.square_queries,
            n_restarts=1,
            p_init=p.square_p_init,
            loss="margin",
            seed=p.seed,
        )
    x, y = ctx["x"], ctx["y"]
    note = "no binary search (fixed c)" if attack == "cw" else ""
    return (lambda: atk(x, y)), note


def build_art(attack: str, p: Params, ctx: dict[str, Any]) -> tuple[Callable[[], Tensor], str]:
    try:
        from art.attacks.evasion import CarliniL2Method, FastGradientMethod, SquareAttack
        from art.attacks.evasion.projected_gradient_descent.projected_gradient_descent_pytorch import (
            ProjectedGradientDescentPyTorch,
        )
        from art.estimators.classification import PyTorchClassifier
    except ImportError as e:
        raise NotAvailable(f"adversarial-robustness-toolbox not installed: {e}") from e
    if "art_clf" not in ctx:
        ctx["art_clf"] = PyTorchClassifier(
            model=ctx["peer"],
            loss=nn.CrossEntropyLoss(),
            input_shape=ctx["input_shape"],
            nb_classes=ctx["num_classes"],
            clip_values=(0.0, 1.0),
            device_type="gpu" if ctx["device"].type == "cuda" else "cpu",
        )
    clf, n = ctx["art_clf"], ctx["x"].shape[0]
    if attack == "fgsm":
        atk = FastGradientMethod(clf, norm=np.inf, eps=p.eps, batch_size=n)
    elif attack == "pgd":
        atk = ProjectedGradientDescentPyTorch(
            clf,
            norm=np.inf,
            eps=p.eps,
            eps_step=p.alpha,
            max_iter=p.steps,
            num_random_init=1,
            batch_size=n,
            verbose=False,
        )
    elif attack == "cw":
        atk = CarliniL2Method(
            clf,
            confidence=p.cw_kappa,
            learning_rate=p.cw_lr,
            binary_search_steps=p.cw_binary_search_steps,
            max_iter=p.cw_steps,
            initial_const=p.cw_c,
            batch_size=n,
            verbose=False,
        )
    else:
        atk = SquareAttack(
            clf,
            norm=np.inf,
            max_iter=p.square_queries,
            eps=p.eps,
            p_init=p.square_p_init,
            nb_restarts=1,
            batch_size=n,
            verbose=False,
        )
    x, y, dev = ctx["x"], ctx["y"], ctx["device"]

    def run() -> Tensor:  # numpy in, numpy out: the conversion is part of ART's cost to a user
        adv = atk.generate(x=x.detach().cpu().numpy(), y=y.detach().cpu().numpy())
        return torch.from_numpy(adv).to(dev)

    note = "line search on the learning rate each step" if attack == "cw" else ""
    return run, note


def build_foolbox(attack: str, p: Params, ctx: dict[str, Any]) -> tuple[Callable[[], Tensor], str]:
    if attack == "square":
        raise NotAvailable("Foolbox 3 has no Square attack")
    try:
        import foolbox as fb
    except ImportError as e:
        raise NotAvailable(f"foolbox not installed: {e}") from e
    if "fb_model" not in ctx:
        ctx["fb_model"] = fb.PyTorchModel(ctx["peer"], bounds=(0.0, 1.0), device=ctx["device"])
    fm, x, y = ctx["fb_model"], ctx["x"], ctx["y"]
    if attack == "fgsm":
        atk, eps = fb.attacks.LinfFastGradientAttack(random_start=False), p.eps
    elif attack == "pgd":
        atk, eps = fb.attacks.LinfPGD(abs_stepsize=p.alpha, steps=p.steps, random_start=True), p.eps
    else:
        atk = fb.attacks.L2CarliniWagnerAttack(
            binary_search_steps=p.cw_binary_search_steps,
            steps=p.cw_steps,
            stepsize=p.cw_lr,
            confidence=p.cw_kappa,
            initial_const=p.cw_c,
            abort_early=True,
        )
        eps = None

    def run() -> Tensor:
        _, clipped, _ = atk(fm, x, y, epsilons=eps)
        return clipped

    note = "failures come back as all-zero images; scored as the clean input" if attack == "cw" else ""
    return run, note


BUILDERS = {
    "modelshield": build_modelshield,
    "torchattacks": build_torchattacks,
    "art": build_art,
    "foolbox": build_foolbox,
}


def build_floor(p: Params, ctx: dict[str, Any]) -> Callable[[], Tensor]:
    """PGD's irreducible cost: steps × (forward + gradient w.r.t. the input), nothing else."""
    m, x, y = ctx["peer"], ctx["x"], ctx["y"]

    def run() -> Tensor:
        g = x
        for _ in range(p.steps):
            xr = x.detach().requires_grad_(True)
            loss = F.cross_entropy(m(xr), y)
            (g,) = torch.autograd.grad(loss, xr)
        return g

    return run


def build_plain_pgd(p: Params, ctx: dict[str, Any]) -> Callable[[], Tensor]:
    """A textbook L∞ PGD in plain PyTorch (random start, sign step, projection): the floor plus
    the element-wise update — what a lean library implementation should cost."""
    m, x, y = ctx["peer"], ctx["x"], ctx["y"]
    eps, alpha = p.eps, p.alpha

    def run() -> Tensor:
        lo, hi = (x - eps).clamp_(0, 1), (x + eps).clamp_(0, 1)
        adv = (x + torch.empty_like(x).uniform_(-eps, eps)).clamp_(0, 1)
        for _ in range(p.steps):
            adv.requires_grad_(True)
            loss = F.cross_entropy(m(adv), y)
            (g,) = torch.autograd.grad(loss, adv)
            adv = torch.minimum(torch.maximum(adv.detach() + alpha * g.sign(), lo), hi)
        return adv

    return run


def build_square_reference(p: Params, ctx: dict[str, Any]) -> Callable[[], Tensor]:
    from bench.square_reference import square_linf_reference

    m, x, y = ctx["peer"], ctx["x"], ctx["y"]
    return lambda: square_linf_reference(m, x, y, p.eps, p.square_queries, p.square_p_init, p.seed)


# --------------------------------------------------------------------------------------------
# measurement


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__}
    for lib, mod in (
        ("modelshield", "modelshield"),
        ("torchattacks", "torchattacks"),
        ("art", "art"),
        ("foolbox", "foolbox"),
        ("eagerpy", "eagerpy"),
    ):
        try:
            out[lib] = str(getattr(importlib.import_module(mod), "__version__", "?"))
        except Exception:  # noqa: BLE001 — a peer that fails to import is simply absent
            try:
                from importlib.metadata import version

                out[lib] = version(mod)
            except Exception:  # noqa: BLE001
                out[lib] = "not installed"
    return out


def _machine(device: torch.device) -> dict[str, Any]:
    cpu = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    info: dict[str, Any] = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "load_avg_start": [round(v, 2) for v in os.getloadavg()],
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset(module: nn.Module, seed: int) -> None:
    """Same conditions before every call: frozen weights, eval mode, seeded RNGs."""
    module.eval()
    for prm in module.parameters():
        prm.requires_grad_(False)
    torch.manual_seed(seed)
    np.random.seed(seed)


def _score(attack: str, module: nn.Module, x: Tensor, y: Tensor, adv: Tensor, row: Row, clean_correct: Tensor) -> None:
    adv = adv.detach().to(x.device, torch.float32).reshape(x.shape)
    if attack == "cw":  # a minimal attack that fails returns the input; Foolbox returns zeros
        zero = (adv.flatten(1).abs().amax(1) == 0) & (x.flatten(1).abs().amax(1) > 0)
        adv = torch.where(zero.reshape(-1, *([1] * (x.ndim - 1))), x, adv)
    with torch.no_grad():
        pred = torch.cat([module(adv[i : i + 512]).argmax(1) for i in range(0, adv.shape[0], 512)])
    correct = pred == y
    row.robust_accuracy = round(100.0 * correct.float().mean().item(), 2)
    d = (adv - x).flatten(1)
    row.max_linf = round(d.abs().amax().item(), 5)
    ok = ~correct & clean_correct  # successes on samples the model got right to begin with
    if attack == "cw" and bool(ok.any()):
        row.median_l2_of_successes = round(d[ok].norm(dim=1).median().item(), 4)


def run_attack(
    attack: str,
    libraries: list[str],
    p: Params,
    ctx: dict[str, Any],
    repeats: int,
    log: Callable[[str], None],
    slow_cap_s: float = float("inf"),
) -> dict[str, Any]:
    versions, device, scorer = ctx["versions"], ctx["device"], ctx["scorer"]
    rows: dict[str, Row] = {}
    runners: dict[str, Callable[[], Tensor]] = {}
    for lib in libraries:
        row = rows[lib] = Row(lib, versions.get(lib, "?"))
        try:
            runners[lib], row.note = BUILDERS[lib](attack, p, ctx)
        except NotAvailable as e:
            row.note = f"n/a: {e}"
    if attack == "pgd":
        for name, builder in (("floor", build_floor), ("plain-pytorch", build_plain_pgd)):
            rows[name] = Row(name, versions["torch"])
            runners[name] = builder(p, ctx)
        rows["floor"].note = f"{p.steps} × (forward + autograd.grad w.r.t. x)"
        rows["plain-pytorch"].note = "textbook PGD loop, for reference"
    if attack == "square":
        rows["square-ref"] = Row("square-ref", "authors' algorithm")
        runners["square-ref"] = build_square_reference(p, ctx)
        rows[
            "square-ref"
        ].note = (
            "independent re-implementation of the authors' L∞ algorithm (bench/square_reference.py); accuracy reference"
        )

    # warm-up: one call each; its output is the one scored
    warm_s: dict[str, float] = {}
    for lib, fn in list(runners.items()):
        _reset(ctx["net"], p.seed)
        try:
            t0 = time.perf_counter()
            adv = fn()
            _sync(device)
            warm_s[lib] = time.perf_counter() - t0
            log(f"  {attack:6s} {lib:13s} warm-up {1e3 * (time.perf_counter() - t0):9.1f} ms")
        except Exception as e:  # noqa: BLE001 — report the failure, keep benchmarking the rest
            rows[lib].note = f"failed: {type(e).__name__}: {e}"
            log(f"  {attack:6s} {lib:13s} FAILED {type(e).__name__}: {e}")
            del runners[lib]
            continue
        if lib not in ("floor",):
            _score(attack, scorer, ctx["x"], ctx["y"], adv, rows[lib], ctx["clean_correct"])

    order = list(runners)
    # a run slower than slow_cap_s (e.g. ART's C&W) is timed once, not `repeats` times
    budget = {lib: (1 if warm_s[lib] > slow_cap_s else repeats) for lib in order}
    for lib in order:
        if budget[lib] < repeats:
            rows[lib].note = (rows[lib].note + "; " if rows[lib].note else "") + f"timed {budget[lib]}× (slow)"
    for r in range(repeats):
        k = r % len(order) if order else 0
        for lib in order[k:] + order[:k]:  # rotate so no library always runs first or last
            if r >= budget[lib]:
                continue
            _reset(ctx["net"], p.seed + 1 + r)
            _sync(device)
            t0 = time.perf_counter()
            runners[lib]()
            _sync(device)
            rows[lib].times_ms.append(round(1e3 * (time.perf_counter() - t0), 2))

    for row in rows.values():
        if row.times_ms:
            row.median_ms = round(statistics.median(row.times_ms), 2)
    base = rows.get("modelshield")
    for row in rows.values():
        if base and base.median_ms and row.median_ms:
            row.ratio_vs_modelshield = round(row.median_ms / base.median_ms, 3)
        if base and base.robust_accuracy is not None and row.robust_accuracy is not None and row.library in PEERS:
            row.within_tolerance = abs(base.robust_accuracy - row.robust_accuracy) <= TOLERANCE
    out: dict[str, Any] = {"attack": attack, "rows": [asdict(r) for r in rows.values()]}
    if attack == "pgd" and base and base.median_ms and rows["floor"].median_ms:
        out["modelshield_over_floor"] = round(base.median_ms / rows["floor"].median_ms, 3)
    return out


def _targets(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's targets, evaluated on this run."""
    checks = []
    by = {r["attack"]: {row["library"]: row for row in r["rows"]} for r in results}
    for r in results:
        if r["attack"] == "pgd" and "modelshield_over_floor" in r:
            v = r["modelshield_over_floor"]
            checks.append(
                {"target": f"PGD within {PGD_FLOOR_TARGET}× of the floor", "value": v, "met": v <= PGD_FLOOR_TARGET}
            )
    for atk in ("fgsm", "pgd", "cw"):
        ta = by.get(atk, {}).get("torchattacks")
        if ta and ta.get("ratio_vs_modelshield"):
            v = ta["ratio_vs_modelshield"]
            checks.append(
                {
                    "target": f"{atk}: no slower than torchattacks (torchattacks/modelshield ≥ 1)",
                    "value": v,
                    "met": v >= 1.0,
                }
            )
    for atk, rows in by.items():
        for lib in PEERS:
            row = rows.get(lib)
            if row and row.get("within_tolerance") is not None:
                ms = rows["modelshield"]["robust_accuracy"]
                checks.append(
                    {
                        "target": f"{atk}: robust accuracy within {TOLERANCE} points of {lib}",
                        "value": round(ms - row["robust_accuracy"], 2),
                        "met": row["within_tolerance"],
                    }
                )
    return checks


def _fmt(v: Any, spec: str = "") -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "**no**"
    return format(v, spec) if spec else str(v)


def markdown(report: dict[str, Any]) -> str:
    m, cfg = report["machine"], report["config"]
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores ({m['torch_threads']} torch threads)"
        + (f", GPU {m['gpu']}" if "gpu" in m else "")
        + f"; load average {m['load_avg_start'][0]} at start, {m.get('load_avg_end', ['?'])[0]} at end.",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items()) + ".",
        f"Model: {cfg['model_description']}; batch {cfg['batch']}, clean accuracy {cfg['clean_accuracy']} %; "
        f"device {cfg['device']}"
        + (f", autocast {cfg['amp']}" if cfg["amp"] else "")
        + (", channels-last" if cfg["channels_last"] else "")
        + f"; median of {cfg['repeats']} interleaved runs after one warm-up.",
        "",
    ]
    p = cfg["params"]
    desc = {
        "fgsm": f"FGSM L∞, ε={p['eps']:g}",
        "pgd": f"PGD-{p['steps']} L∞, ε={p['eps']:g}, α={p['alpha']:g}, random start",
        "cw": f"C&W-L2, {p['cw_steps']} steps, c={p['cw_c']:g}, κ={p['cw_kappa']:g}, lr={p['cw_lr']:g}, "
        f"{p['cw_binary_search_steps']} binary-search step",
        "square": f"Square L∞, ε={p['eps']:g}, {p['square_queries']} queries, p_init={p['square_p_init']:g}",
    }
    for r in report["results"]:
        lines += [f"**{desc[r['attack']]}**", ""]
        cw = r["attack"] == "cw"
        head = (
            "| library | median ms | × modelshield | robust acc. % | Δ vs modelshield ≤ 1.5 | "
            + ("median L2 of successes on clean-correct |" if cw else "max L∞ |")
            + " note |"
        )
        lines += [head, "|---|---:|---:|---:|:---:|---:|---|"]
        for row in r["rows"]:
            extra = row["median_l2_of_successes"] if cw else row["max_linf"]
            lines.append(
                f"| {row['library']} | {_fmt(row['median_ms'], ',.1f')} | {_fmt(row['ratio_vs_modelshield'], '.2f')} | "
                f"{_fmt(row['robust_accuracy'], '.2f')} | {_fmt(row['within_tolerance'])} | {_fmt(extra)} | {row['note']} |"
            )
        if "modelshield_over_floor" in r:
            lines.append(f"\nmodelshield PGD / floor = **{r['modelshield_over_floor']:.3f}×**")
        lines.append("")
    if report["targets"]:
        lines += ["| target | value | met |", "|---|---:|:---:|"]
        lines += [f"| {t['target']} | {t['value']} | {_fmt(t['met'])} |" for t in report["targets"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--model", choices=MODELS, default="mnist-cnn")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--attacks", default=",".join(ATTACKS), help="comma-separated subset of " + ",".join(ATTACKS))
    ap.add_argument("--libraries", default=",".join(LIBRARIES), help="comma-separated subset of " + ",".join(LIBRARIES))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--amp", choices=("bf16", "fp16"), default=None, help="autocast dtype (GPU path)")
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--eps", type=float, default=None, help="L∞ budget (default per model)")
    ap.add_argument("--steps", type=int, default=10, help="PGD steps")
    ap.add_argument("--cw-steps", type=int, default=10)
    ap.add_argument("--square-queries", type=int, default=100)
    ap.add_argument(
        "--slow-cap",
        type=float,
        default=float("inf"),
        help="time only once any run whose warm-up took longer than this many seconds",
    )
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: leave as is)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train-epochs", type=int, default=None, help="override training length (0: untrained smoke test)")
    ap.add_argument("--json", type=Path, default=None, help="write the full report here")
    ap.add_argument("--markdown", action="store_true", help="print a markdown report")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)

    attacks = [a.strip() for a in args.attacks.split(",") if a.strip()]
    libraries = [lib.strip() for lib in args.libraries.split(",") if lib.strip()]
    for a in attacks:
        if a not in ATTACKS:
            ap.error(f"unknown attack {a!r}")
    for lib in libraries:
        if lib not in LIBRARIES:
            ap.error(f"unknown library {lib!r}")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    amp = {"bf16": torch.bfloat16, "fp16": torch.float16, None: None}[args.amp]
    log = (lambda s: None) if args.quiet else (lambda s: print(s, file=sys.stderr, flush=True))

    machine = _machine(device)
    setup = load(args.model, batch=args.batch, seed=args.seed, device=device, epochs=args.train_epochs)
    log(f"trained {args.model} in {setup.train_seconds:.1f} s")
    eps = args.eps if args.eps is not None else DEFAULT_EPS[args.model]
    params = Params(
        eps=eps,
        alpha=eps / 4,
        steps=args.steps,
        cw_steps=args.cw_steps,
        square_queries=args.square_queries,
        seed=args.seed,
    )

    from modelshield.core.model import TorchModel

    peer = peer_module(setup, amp, args.channels_last, device)
    ms_model = TorchModel(
        setup.module,
        input_shape=setup.input_shape,
        num_classes=setup.num_classes,
        bounds=(0.0, 1.0),
        device=device,
        autocast_dtype=amp,
        channels_last=args.channels_last,
    )
    with torch.no_grad():
        clean_correct = peer(setup.x).argmax(1) == setup.y
    clean = round(100.0 * clean_correct.float().mean().item(), 2)
    ctx: dict[str, Any] = {
        "net": setup.module,
        "peer": peer,
        "ms_model": ms_model,
        "x": setup.x,
        "y": setup.y,
        "input_shape": setup.input_shape,
        "num_classes": setup.num_classes,
        "device": device,
        "versions": _versions(),
        "scorer": peer,
        "clean_correct": clean_correct,
    }
    results = [run_attack(a, libraries, params, ctx, args.repeats, log, args.slow_cap) for a in attacks]
    machine["load_avg_end"] = [round(v, 2) for v in os.getloadavg()]
    report = {
        "command": "python bench/attacks.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": machine,
        "versions": ctx["versions"],
        "config": {
            "model": args.model,
            "model_description": setup.description,
            "batch": args.batch,
            "repeats": args.repeats,
            "device": str(device),
            "amp": args.amp,
            "channels_last": args.channels_last,
            "clean_accuracy": clean,
            "slow_cap_s": args.slow_cap,
            "train_seconds": round(setup.train_seconds, 2),
            "params": asdict(params),
        },
        "results": results,
        "targets": _targets(results),
    }
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    if args.markdown:
        print(markdown(report))
    elif not args.json:
        for r in results:
            for row in r["rows"]:
                print(
                    f"{r['attack']:6s} {row['library']:13s} {_fmt(row['median_ms'], '9.1f')} ms  "
                    f"×{_fmt(row['ratio_vs_modelshield'], '.2f'):>5s}  acc {_fmt(row['robust_accuracy'], '.2f'):>6s}  {row['note']}"
                )
            if "modelshield_over_floor" in r:
                print(f"       modelshield / floor = {r['modelshield_over_floor']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
