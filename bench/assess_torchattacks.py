"""`modelshield assess` against torchattacks at equal settings: FGSM and PGD robust accuracy at every ε.

The network is trained by ``plain_training`` — torch and scikit-learn only, no modelshield code — and
saved as a user saves one (TorchScript, plus the test split as an .npz). Then ``modelshield assess``
runs as a user runs it (a subprocess, attack settings from flags) and torchattacks 3.5.1 attacks the
same TorchScript file on the same data with the same settings: FGSM, and PGD with ``--steps`` steps of
``--pgd-step`` (relative to ε), without random start (both deterministic: they should agree to the
image) and with one (different random draws: they should agree within noise). Robust accuracy is
counted the same way for both: correctly classified before the attack and still after it. The
target is agreement within ``TOLERANCE`` points at every ε.

    pip install --no-deps torchattacks==3.5.1    # torchvision is not needed for FGSM/PGD
    python bench/assess_torchattacks.py --out /tmp/agree --markdown
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

TOLERANCE = 1.5  # robust-accuracy points
DEFAULT_EPS = "0.02,0.05,0.1,0.15,0.2,0.3"


class DigitsNet(nn.Module):
    """A plain user CNN for 1×28×28 digits: two conv blocks with BatchNorm, then two linear layers."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(32 * 7 * 7, 64), nn.ReLU(inplace=True), nn.Linear(64, 10))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def plain_training(folder: Path, epochs: int = 6, seed: int = 0) -> tuple[Path, Path]:
    """Train DigitsNet on scikit-learn's digits upscaled to 28×28; save model.pt (TorchScript) and test.npz."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    small = torch.from_numpy(digits.images.astype(np.float32) / 16.0)[:, None]
    x = F.interpolate(small, size=(28, 28), mode="bilinear", align_corners=False).clamp(0, 1).numpy()
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, digits.target, test_size=0.25, random_state=seed, stratify=digits.target
    )
    torch.manual_seed(seed)
    net = DigitsNet()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    xs, ys = torch.from_numpy(x_tr), torch.from_numpy(y_tr)
    net.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(xs)).split(64):
            opt.zero_grad()
            F.cross_entropy(net(xs[idx]), ys[idx]).backward()
            opt.step()
    net.eval()
    model, data = folder / "model.pt", folder / "test.npz"
    torch.jit.script(net).save(str(model))
    np.savez(data, x=x_te, y=y_te.astype(np.int64))
    return model, data


def modelshield_assess(model: Path, data: Path, out: Path, args: argparse.Namespace, random_start: bool) -> dict:
    """Run the CLI exactly as a user would; return {(attack, ε): robust accuracy} from report.json."""
    exe = shutil.which("modelshield", path=str(Path(sys.executable).parent)) or "modelshield"
    cmd = [
        exe,
        "assess",
        "--model",
        str(model),
        "--data",
        str(data),
        "--out",
        str(out),
        "--attacks",
        "fgsm,pgd",
        "--eps",
        args.eps,
        "--steps",
        str(args.steps),
        "--pgd-step",
        args.pgd_step,
        "--random-start" if random_start else "--no-random-start",
        "--batch-size",
        str(args.batch_size),
        "--seed",
        str(args.seed),
    ]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode not in (0, 1):
        raise SystemExit(f"modelshield assess exited {done.returncode}: {done.stderr.strip()[-1000:]}")
    report = json.loads((out / "report.json").read_text())
    acc = {(r["attack"], round(r["eps"], 6)): r["robust_accuracy"] for r in report["attacks"] if r["norm"] == "linf"}
    return {"command": " ".join(cmd[1:]), "seconds": seconds, "robust": acc, "clean": report["clean_accuracy"]}


def torchattacks_run(model: Path, data: Path, args: argparse.Namespace, random_start: bool) -> dict:
    """The same attacks through torchattacks on the same TorchScript file and data, batch by batch."""
    import torchattacks as ta

    net = torch.jit.load(str(model)).eval()
    with np.load(data) as d:
        x, y = torch.from_numpy(d["x"]), torch.from_numpy(d["y"])
    with torch.no_grad():
        correct = net(x).argmax(1) == y
    torch.manual_seed(args.seed)
    acc, start = {}, time.perf_counter()
    for eps in (float(e) for e in args.eps.split(",")):
        step = relative_step(args.pgd_step, eps)
        attacks = {
            "fgsm": ta.FGSM(net, eps=eps),
            "pgd": ta.PGD(net, eps=eps, alpha=step, steps=args.steps, random_start=random_start),
        }
        for name, atk in attacks.items():
            adv = torch.cat(
                [atk(x[i : i + args.batch_size], y[i : i + args.batch_size]) for i in range(0, len(x), args.batch_size)]
            )
            with torch.no_grad():
                still = net(adv).argmax(1) == y
            acc[(name, round(eps, 6))] = float((still & correct).float().mean())
    return {"seconds": time.perf_counter() - start, "robust": acc, "clean": float(correct.float().mean())}


def relative_step(spec: str, eps: float) -> float:
    """'eps/4' → ε/4, '0.01' → 0.01: the step as the CLI's --pgd-step reads it."""
    spec = spec.replace(" ", "")
    if spec.startswith("eps/"):
        return eps / float(spec[4:])
    if spec.startswith("eps*"):
        return eps * float(spec[4:])
    return float(spec)


def compare(ms: dict, ta: dict) -> list[dict]:
    rows = []
    for key in sorted(ta["robust"]):
        a, b = ms["robust"].get(key), ta["robust"][key]
        diff = None if a is None else 100 * (a - b)
        rows.append(
            {
                "attack": key[0],
                "eps": key[1],
                "modelshield": a,
                "torchattacks": b,
                "diff_points": diff,
                "within": diff is not None and abs(diff) <= TOLERANCE,
            }
        )
    return rows


def markdown(results: dict) -> str:
    lines = []
    for mode, res in results["modes"].items():
        lines += [
            f"**{mode}** — modelshield {res['modelshield_seconds']:.1f} s (whole CLI run), "
            f"torchattacks {res['torchattacks_seconds']:.1f} s (attacks only)",
            "",
            "| attack | ε | modelshield robust acc | torchattacks robust acc | diff (points) | within 1.5 |",
            "|---|---|---|---|---|---|",
        ]
        for r in res["rows"]:
            ms = "missing" if r["modelshield"] is None else f"{100 * r['modelshield']:.2f} %"
            diff = "—" if r["diff_points"] is None else f"{r['diff_points']:+.2f}"
            lines.append(
                f"| {r['attack']} | {r['eps']:g} | {ms} | {100 * r['torchattacks']:.2f} % | {diff} | "
                f"{'yes' if r['within'] else 'NO'} |"
            )
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/assess_torchattacks"))
    parser.add_argument("--eps", default=DEFAULT_EPS)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--pgd-step", default="eps/4")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads here and in the CLI run")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    import torchattacks

    torch.set_num_threads(args.threads)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    model, data = plain_training(args.out)
    results: dict = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"torchattacks {torchattacks.__version__}",
        "settings": vars(args) | {"out": str(args.out), "json": str(args.json)},
        "modes": {},
    }
    ok = True
    for random_start in (False, True):
        mode = "random start" if random_start else "no random start"
        ms = modelshield_assess(model, data, args.out / mode.replace(" ", "-"), args, random_start)
        ta = torchattacks_run(model, data, args, random_start)
        rows = compare(ms, ta)
        ok &= all(r["within"] for r in rows)
        results["modes"][mode] = {
            "command": ms["command"],
            "clean": [ms["clean"], ta["clean"]],
            "rows": rows,
            "modelshield_seconds": ms["seconds"],
            "torchattacks_seconds": ta["seconds"],
        }
    results["all_within"] = ok
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    print(markdown(results) if args.markdown else json.dumps(results, indent=2))
    for mode, res in results["modes"].items():
        print(f"{mode}: modelshield {res['command']}", file=sys.stderr)
    print(f"all within {TOLERANCE} points: {ok}", file=sys.stderr)


if __name__ == "__main__":
    main()
