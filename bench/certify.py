"""Certification throughput: modelshield's streamed CERTIFY vs ART's PyTorchRandomizedSmoothing.

Run from the repo root: ``.venv/bin/python bench/certify.py [--n 10000] [--images 4]``.
Same digits CNN, same σ, same N, one process. The floor is the model's own noisy forwards
(noise + forward + argmax, batched), with nothing else. Reported as noisy samples per second
and as ratios to the floor.
"""

from __future__ import annotations

import argparse
import time

import torch

from modelshield.defenses.smoothing import SmoothedClassifier
from modelshield.demo import demo_model_and_data


def _floor(model, x: torch.Tensor, n: int, sigma: float, batch: int) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    with torch.no_grad():
        for xi in x:
            for i in range(0, n, batch):
                m = min(batch, n - i)
                noisy = xi.expand(m, *xi.shape) + sigma * torch.randn(m, *xi.shape, device=x.device)
                model.module(noisy).argmax(1)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--n0", type=int, default=100)
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--sigma", type=float, default=0.25)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
    model, test = demo_model_and_data()
    x, y = test.x[: args.images], test.y[: args.images]
    total = args.images * (args.n + args.n0)
    floor = _floor(model, x, args.n + args.n0, args.sigma, args.batch)
    smooth = SmoothedClassifier(model, args.sigma, batch_size=args.batch)
    start = time.perf_counter()
    smooth.certify(x, n0=args.n0, n=args.n, alpha=0.001)
    ours = time.perf_counter() - start
    rows = [("floor (noisy forwards)", floor), ("modelshield certify", ours)]
    try:
        from art.estimators.certification.randomized_smoothing import PyTorchRandomizedSmoothing

        art = PyTorchRandomizedSmoothing(
            model=model.module, loss=torch.nn.CrossEntropyLoss(), input_shape=(1, 8, 8), nb_classes=10,
            clip_values=(0.0, 1.0), sample_size=args.n, scale=args.sigma, alpha=0.001, device_type="cpu",
        )
        # ART's certify() imports statsmodels for its bound (not installed here); its cost is the
        # sampling, so time exactly what certify() runs per image: N0 counts, then N counts.
        start = time.perf_counter()
        for xi in x.numpy():
            art._prediction_counts(xi, n=args.n0, batch_size=args.batch)  # noqa: SLF001
            art._prediction_counts(xi, n=args.n, batch_size=args.batch)  # noqa: SLF001
        rows.append(("ART PyTorchRandomizedSmoothing (certify's sampling)", time.perf_counter() - start))
    except ImportError:
        print("ART not installed: .venv/bin/pip install --no-deps adversarial-robustness-toolbox==1.20.1")
    print(f"{args.images} images × (N0={args.n0} + N={args.n}) = {total:,} noisy samples, σ={args.sigma}, "
          f"batch {args.batch}, torch threads {torch.get_num_threads()}")
    print(f"{'':42} {'seconds':>8} {'samples/s':>10} {'floor/this':>10}")
    for name, seconds in rows:
        print(f"{name:42} {seconds:8.2f} {total / seconds:10,.0f} {floor / seconds:10.2f}")


if __name__ == "__main__":
    main()
