"""Gradient inversion against federated clients, and what SecAgg and client-side DP leave of it.

Setup (Zhu et al.'s DLG setting at digits scale): scikit-learn digits (test split, 1×8×8 in [0, 1], or
bilinearly upscaled with ``--size``), two untrained networks with sigmoid activations (DLG needs second
derivatives): an MLP 64-32-10 and DLG's LeNet (three 5×5 convolutions of 12 channels, strides 2, 2, 1,
then one linear layer). Each client holds one image and sends one gradient of its cross-entropy (FedSGD
at batch 1: the attacker's best case). For each of ``--images`` digits the server attacks:

* plain — the client's own gradient (no SecAgg, no DP): DLG (L-BFGS, L2) and Inverting Gradients
  (Adam, cosine + TV);
* central DP — the gradient clipped to ``C`` (the server adds the noise itself, after seeing it),
  attacked with Inverting Gradients, whose cosine distance ignores the unknown clipping factor;
* SecAgg — only the sum of 10 clients' gradients (this digit's and the next nine): inverted as one
  image (scored against the closest of the ten; no label accuracy, the one label is not defined), and as a batch of ten (each reconstruction paired
  with its closest digit; a batch gradient of ten images is exactly this sum over ten);
* local DP — the gradient clipped to ``C`` plus N(0, (z·C)²) noise, for each ``--z``.

``C`` is the median gradient norm over the images. Reported per row: mean PSNR (dB, range 1) and SSIM
over the images, label accuracy (labels inferred, never given), the share of images rebuilt to PSNR ≥
``--recovered`` dB, and seconds per attack. ``--png`` writes a grid of reconstructions (columns: the
truth, then each scenario) for the docs. One process, torch on one thread.

    python bench/gradient_inversion.py --markdown
    python bench/gradient_inversion.py --size 32 --images 4 --markdown
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

if __package__ in (None, ""):  # run as a script: make `modelshield` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from modelshield.attacks.federated import InversionResult, invert_gradients, server_view, update_norm  # noqa: E402
from modelshield.attacks.federated.quality import match, psnr  # noqa: E402
from modelshield.core.datasets import sklearn_dataset  # noqa: E402

CLIENTS = 10


def mlp(size: int) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(size * size, 32), nn.Sigmoid(), nn.Linear(32, 10))


def lenet(size: int) -> nn.Module:
    """DLG's LeNet (Zhu et al. 2019, their code's ``LeNet``) for one-channel size×size inputs."""
    side = (size + 3) // 4
    return nn.Sequential(
        nn.Conv2d(1, 12, 5, padding=2, stride=2),
        nn.Sigmoid(),
        nn.Conv2d(12, 12, 5, padding=2, stride=2),
        nn.Sigmoid(),
        nn.Conv2d(12, 12, 5, padding=2, stride=1),
        nn.Sigmoid(),
        nn.Flatten(),
        nn.Linear(12 * side * side, 10),
    )


MODELS: dict[str, Callable[[int], nn.Module]] = {"mlp": mlp, "lenet": lenet}


def gradient(model: nn.Module, x: Tensor, y: Tensor) -> list[np.ndarray]:
    grads = torch.autograd.grad(F.cross_entropy(model(x), y), list(model.parameters()))
    return [g.numpy() for g in grads]


def run_model(
    name: str, args: argparse.Namespace, x: Tensor, y: Tensor
) -> tuple[list[dict[str, Any]], dict[str, Tensor]]:
    torch.manual_seed(args.seed)
    model = MODELS[name](args.size)
    shape = tuple(x.shape[1:])
    grads = [gradient(model, x[i : i + 1], y[i : i + 1]) for i in range(len(x))]
    clip = float(np.median([update_norm(g) for g in grads]))
    rng = np.random.default_rng(args.seed)
    kw: dict[str, Any] = {"input_shape": shape, "num_classes": 10, "bounds": (0.0, 1.0), "seed": args.seed}
    rows: dict[str, list[tuple[InversionResult, float]]] = {}
    pictures: dict[str, list[Tensor]] = {}

    def attack(row: str, seen: list[np.ndarray], truth: Tensor, labels: Tensor | None, **extra: Any) -> None:
        started = time.perf_counter()
        r = invert_gradients(model, seen, ground_truth=truth, true_labels=labels, **kw, **extra)
        rows.setdefault(row, []).append((r, time.perf_counter() - started))
        pictures.setdefault(row, []).append(r.reconstruction[match(r.reconstruction, truth)][0])

    for i in range(args.images):
        xi, yi = x[i : i + 1], y[i : i + 1]
        attack("plain, DLG", grads[i], xi, yi, steps=args.dlg_steps)
        attack("plain, Inverting Gradients", grads[i], xi, yi, method="cosine", steps=args.cosine_steps)
        (clipped,) = server_view([grads[i]], clip=clip)
        attack(
            f"central DP: clipped to C={clip:.2g}, Inverting Gradients",
            clipped,
            xi,
            yi,
            method="cosine",
            steps=args.cosine_steps,
        )
        group = list(range(i, i + CLIENTS))
        (total,) = server_view([grads[j] for j in group], secagg=True)
        mean = [t / CLIENTS for t in total]
        one = invert_gradients(model, mean, steps=args.dlg_steps, **kw)
        closest = int(torch.argmax(psnr(one.reconstruction.expand(CLIENTS, *shape), x[group], 1.0)))
        attack(
            f"SecAgg sum of {CLIENTS}, inverted as one image",
            mean,
            x[group][closest : closest + 1],
            None,
            steps=args.dlg_steps,
        )
        attack(
            f"SecAgg sum of {CLIENTS}, inverted as a batch of {CLIENTS}",
            mean,
            x[group],
            y[group],
            steps=args.dlg_steps,
            batch_size=CLIENTS,
        )
        for z in args.z:
            (noisy,) = server_view([grads[i]], clip=clip, noise_multiplier=z, rng=rng)
            attack(f"local DP z={z:g} (clip C, noise zC on the client)", noisy, xi, yi, steps=args.dlg_steps)
    table = []
    for row, results in rows.items():
        table.append(
            {
                "model": name,
                "scenario": row,
                "psnr": float(np.mean([r.psnr for r, _ in results])),
                "ssim": float(np.mean([r.ssim for r, _ in results if r.ssim is not None]))
                if results[0][0].ssim is not None
                else None,
                "label_accuracy": None
                if results[0][0].label_accuracy is None
                else float(np.mean([r.label_accuracy for r, _ in results])),
                "recovered": float(np.mean([(r.psnr_per_sample >= args.recovered).mean() for r, _ in results])),
                "seconds": float(np.mean([s for _, s in results])),
            }
        )
    return table, {k: torch.stack(v) for k, v in pictures.items()}


def save_grid(path: Path, truth: Tensor, pictures: dict[str, Tensor]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = [("truth", truth), *pictures.items()]
    n = len(truth)
    fig, axes = plt.subplots(n, len(columns), figsize=(1.3 * len(columns), 1.3 * n + 0.9), squeeze=False)
    for c, (title, images) in enumerate(columns):
        axes[0, c].set_title(_short(title), fontsize=7)
        for r in range(n):
            axes[r, c].imshow(images[r, 0].numpy(), cmap="gray_r", vmin=0, vmax=1)
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _short(title: str) -> str:
    """A column title that fits over a 1.3-inch image."""
    return (
        title.replace("plain, Inverting Gradients", "plain, IG")
        .replace(", Inverting Gradients", ",\nIG")
        .replace("central DP: clipped", "central DP:\nclipped")
        .replace(" (clip C, noise zC on the client)", "")
        .replace(", inverted as ", "\nas ")
    )


def markdown(table: list[dict[str, Any]], args: argparse.Namespace, seconds: float) -> str:
    lines = [
        f"digits {args.size}×{args.size}, {args.images} images, untrained sigmoid networks, one gradient per client at batch 1; "
        f"DLG {args.dlg_steps} L-BFGS iterations, Inverting Gradients {args.cosine_steps} Adam steps; "
        f"recovered = PSNR ≥ {args.recovered:g} dB. {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, torch {torch.__version__} on one thread, {seconds:.0f} s in all.",
        "",
        "| model | what the server sees / attack | PSNR (dB) | SSIM | label acc. | recovered | s / attack |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for t in table:
        ssim_text = "–" if t["ssim"] is None else f"{t['ssim']:.3f}"
        label_text = "–" if t["label_accuracy"] is None else f"{t['label_accuracy']:.2f}"
        lines.append(
            f"| {t['model']} | {t['scenario']} | {t['psnr']:.1f} | {ssim_text} | {label_text} | "
            f"{t['recovered']:.0%} | {t['seconds']:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--images", type=int, default=4, help="digits attacked per scenario (default 4)")
    p.add_argument("--size", type=int, default=8, help="image side: 8 (native) or upscaled, e.g. 32")
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--z", type=float, nargs="+", default=[0.01, 0.1, 0.5, 1.0], help="local-DP noise multipliers")
    p.add_argument("--dlg-steps", type=int, default=100, help="L-BFGS iterations (plain DLG converges within 50 here)")
    p.add_argument("--cosine-steps", type=int, default=500)
    p.add_argument("--recovered", type=float, default=30.0, help="PSNR (dB) counted as a recovered image")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--png", type=Path, default=None, help="write a grid of reconstructions (first model) here")
    p.add_argument("--markdown", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(1)
    data = sklearn_dataset("digits", "test")
    x, y = data.x[: args.images + CLIENTS], data.y[: args.images + CLIENTS]
    if args.size != 8:
        x = F.interpolate(x, size=(args.size, args.size), mode="bilinear", align_corners=False).clamp(0, 1)
    started = time.perf_counter()
    table: list[dict[str, Any]] = []
    for i, name in enumerate(args.models):
        rows, pictures = run_model(name, args, x, y)
        table += rows
        if args.png is not None and i == 0:
            save_grid(args.png, x[: args.images], pictures)
    elapsed = time.perf_counter() - started
    if args.markdown:
        print(markdown(table, args, elapsed))
    else:
        for t in table:
            print(t)


if __name__ == "__main__":
    main()
