"""Split a labelled dataset among clients: IID shards, or label skew drawn from a Dirichlet prior.

The Dirichlet split (Hsu, Qi, Brown 2019, https://arxiv.org/abs/1909.06335) draws each class's share
per client from Dir(α): small α gives each client a few dominant classes, large α tends to IID. It is
the split Flower Datasets' ``DirichletPartitioner`` makes; that package needs Hugging Face ``datasets``
for in-memory arrays, so the ten lines are here instead.
"""

from __future__ import annotations

import numpy as np

from modelshield.core.errors import InputError


def iid_partition(n: int, clients: int, *, seed: int) -> list[np.ndarray]:
    """Row indices for each client: a random permutation cut into near-equal shards."""
    if clients > n:
        raise InputError(f"{clients} clients cannot share {n} samples")
    order = np.random.default_rng(seed).permutation(n)
    return [np.sort(part) for part in np.array_split(order, clients)]


def dirichlet_partition(
    labels: np.ndarray, clients: int, *, alpha: float, seed: int, min_size: int = 2
) -> list[np.ndarray]:
    """Row indices per client with each class spread by Dir(α); redrawn until every client has ``min_size``."""
    if clients * min_size > len(labels):
        raise InputError(f"{clients} clients cannot each hold {min_size} of {len(labels)} samples")
    rng = np.random.default_rng(seed)
    for _ in range(100):
        parts: list[list[int]] = [[] for _ in range(clients)]
        for c in np.unique(labels):
            rows = rng.permutation(np.flatnonzero(labels == c))
            cuts = (np.cumsum(rng.dirichlet(np.full(clients, alpha))) * len(rows)).astype(int)[:-1]
            for k, share in enumerate(np.split(rows, cuts)):
                parts[k].extend(share.tolist())
        if min(len(p) for p in parts) >= min_size:
            return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]
    raise InputError(f"α={alpha} leaves some of {clients} clients nearly empty; raise --alpha or lower --clients")


def partition(labels: np.ndarray, clients: int, *, scheme: str, alpha: float, seed: int) -> list[np.ndarray]:
    """The split ``scheme`` names ('iid' or 'dirichlet')."""
    if scheme == "iid":
        return iid_partition(len(labels), clients, seed=seed)
    if scheme == "dirichlet":
        return dirichlet_partition(labels, clients, alpha=alpha, seed=seed)
    raise InputError(f"partition must be iid or dirichlet, not {scheme!r}")
