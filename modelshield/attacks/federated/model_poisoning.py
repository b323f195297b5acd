"""What a malicious federated client does to the update it sends: reverse it, replace it with noise, or boost it.

An update is the list of per-parameter arrays ``local - global`` after the client's local
training, in the model's parameter order (Flower's ``NDArrays``). Each function returns new
arrays of the same shapes and dtypes; the input is left untouched. Integer arrays (buffers such
as BatchNorm's step counter) are not parameters an attacker steers: they pass through as copies.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from modelshield.core.errors import InputError

Update = list[np.ndarray]


def sign_flip(update: Sequence[np.ndarray], *, scale: float = 1.0) -> Update:
    """``-scale · update``: push the global model away from where honest training takes it.

    The sign-flipping Byzantine client of Damaskinos et al., "AGGREGATHOR" (SysML 2019) and of
    Li et al., "RSA: Byzantine-Robust Stochastic Aggregation" (AAAI 2019,
    https://arxiv.org/abs/1811.03761); with ``scale`` > 1 it outweighs honest clients under
    plain averaging.
    """
    _check_positive("scale", scale)
    return _map(update, lambda u: -scale * u)


def gaussian_update(update: Sequence[np.ndarray], *, sigma: float, rng: np.random.Generator) -> Update:
    """An update of pure noise, N(0, σ²) per coordinate, shaped like ``update`` (whose values are ignored).

    The Gaussian Byzantine client of Blanchard, El Mhamdi, Guerraoui, Stainer, "Machine Learning
    with Adversaries: Byzantine Tolerant Gradient Descent" (Krum), NeurIPS 2017,
    https://papers.nips.cc/paper/6617 — one such client ruins plain averaging when σ is large.
    """
    _check_positive("sigma", sigma)
    return _map(update, lambda u: rng.normal(0.0, sigma, size=u.shape))


def boost_update(update: Sequence[np.ndarray], *, factor: float) -> Update:
    """``factor · update``: model replacement (Bagdasaryan et al., AISTATS 2020, https://arxiv.org/abs/1807.00459).

    With ``n`` clients averaged at server learning rate ``η`` (FedAvg: ``G + η/n · Σ Δᵢ``), a
    client that sends ``Δ = (X - G)`` scaled by ``γ = n/η`` moves the global model ``G`` almost
    onto its own backdoored model ``X``, as long as the honest updates roughly cancel out.
    """
    _check_positive("factor", factor)
    return _map(update, lambda u: factor * u)


def _map(update: Sequence[np.ndarray], fn: Callable[[np.ndarray], np.ndarray]) -> Update:
    """``fn`` on each floating array, cast back to its dtype; copies of the rest."""
    arrays = check_update(update)
    return [fn(a).astype(a.dtype) if a.dtype.kind == "f" else a.copy() for a in arrays]


def check_update(update: Sequence[np.ndarray]) -> Update:
    """The update as a list of numeric numpy arrays, or an InputError saying what an update is."""
    arrays = [np.asarray(u) for u in update]
    if not arrays or any(a.dtype.kind not in "biuf" for a in arrays):
        raise InputError("an update is a non-empty list of numeric arrays (local - global parameters)")
    return arrays


def _check_positive(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating) or not value > 0:
        raise InputError(f"{name} must be a positive number, got {value!r}")
