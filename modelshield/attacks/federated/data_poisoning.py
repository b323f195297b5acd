"""What a malicious federated client does to its own training data: flip its labels, or plant a backdoor.

Functions, not configured attacks (cf. :mod:`modelshield.attacks.poisoning`): a federated client
calls them once on its local shard with the round's random generator, then trains as usual. The
trigger is a pure function of the input, so :func:`apply_trigger` stamps the very same trigger on
test data to measure the backdoor's success after aggregation.
"""

from __future__ import annotations

import numpy as np

from modelshield.core.errors import InputError

PATCH = 3  # side of the image trigger in pixels (BadNets' 3×3), smaller only for smaller images
FEATURES = 4  # number of trailing features the tabular trigger sets


def flip_labels(y: np.ndarray, num_classes: int, *, rng: np.random.Generator) -> np.ndarray:
    """Relabel every sample through one random derangement of the classes.

    The mapping is a permutation ``π`` of ``0 … num_classes-1`` with no fixed point, drawn from
    ``rng``: every sample of class ``a`` becomes class ``π(a) ≠ a``. So every label changes, the
    set of classes is kept (the poisoned shard looks as balanced as the clean one to a server
    that checks label histograms), and the flips agree with one another, which pulls the global
    model harder than independent random flips would. This is the class-consistent flip of
    Tolpegin, Truex, Gursoy, Liu, "Data Poisoning Attacks Against Federated Learning Systems",
    ESORICS 2020, https://arxiv.org/abs/2007.08432, and of Fang et al. (USENIX Security 2020),
    who use the fixed derangement ``l → L - l - 1`` (which has a fixed point for odd ``L``).

    ``y`` holds integer labels in ``[0, num_classes)``; a new int64 array comes back.
    """
    y = _labels(y, num_classes)
    return _derangement(num_classes, rng)[y]


def add_backdoor(
    x: np.ndarray, y: np.ndarray, *, target: int, fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Stamp :func:`apply_trigger`'s trigger on ``round(fraction * N)`` samples and relabel them ``target``.

    The BadNets backdoor (Gu, Dolan-Gavitt, Garg, 2017, https://arxiv.org/abs/1708.06733) as a
    federated client plants it (Bagdasaryan et al., "How To Backdoor Federated Learning",
    AISTATS 2020, https://arxiv.org/abs/1807.00459, pair it with :func:`boost_update`). Rows are
    drawn from the non-target classes first (a target-class row with the trigger teaches nothing)
    and from the target class only when ``fraction`` asks for more. ``x`` is (N, C, H, W),
    (N, H, W) or tabular (N, D); copies come back, the inputs are left untouched.
    """
    x = _inputs(x)
    target = int(target)
    if target < 0:
        raise InputError(f"the backdoor target must be a class index ≥ 0, got {target}")
    y = np.asarray(y)
    if y.shape != (len(x),):
        raise InputError(f"labels must be (N,) = ({len(x)},), got shape {y.shape}")
    if isinstance(fraction, bool) or not 0 <= fraction <= 1:
        raise InputError(f"fraction must lie in [0, 1], got {fraction!r}")
    order = rng.permutation(len(y))
    order = order[np.argsort(y[order] == target, kind="stable")]  # non-target rows first, each group shuffled
    rows = np.sort(order[: round(fraction * len(y))])
    x_out, y_out = x.copy(), y.copy()
    x_out[rows] = apply_trigger(x[rows])
    y_out[rows] = target
    return x_out, y_out


def apply_trigger(x: np.ndarray) -> np.ndarray:
    """Stamp the backdoor trigger on copies of ``x``: images (N, C, H, W) or (N, H, W), or rows (N, D).

    Images: a checkerboard of each image's own maximum and minimum over the bottom-right
    ``min(3, H, W)`` square, the same in every channel (BadNets). Rows: the last ``min(4, D)``
    features alternate the row's maximum and minimum. Taking the extremes from each sample makes
    the trigger independent of how the data were scaled ([0, 1], [0, 16] or standardised), so it
    needs no statistics of the training set and matches at test time. A constant sample (max =
    min) cannot carry it.
    """
    x = _inputs(x)
    if len(x) == 0:
        return x.copy()
    flat = x.reshape(len(x), -1)
    hi, lo = flat.max(axis=1), flat.min(axis=1)
    out = x.copy()
    if x.ndim == 2:
        k = min(FEATURES, x.shape[1])
        checker = np.arange(k) % 2 == 0
        out[:, -k:] = np.where(checker[None, :], hi[:, None], lo[:, None])
        return out
    k = min(PATCH, x.shape[-2], x.shape[-1])
    checker = np.indices((k, k)).sum(axis=0) % 2 == 0
    shape = (len(x),) + (1,) * (x.ndim - 1)
    out[..., -k:, -k:] = np.where(checker, hi.reshape(shape), lo.reshape(shape))
    return out


def _derangement(n: int, rng: np.random.Generator) -> np.ndarray:
    """A uniformly random permutation of ``range(n)`` with no fixed point (rejection: ~e draws on average)."""
    while True:
        perm = rng.permutation(n)
        if not np.any(perm == np.arange(n)):
            return perm


def _labels(y: np.ndarray, num_classes: int) -> np.ndarray:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int | np.integer) or num_classes < 2:
        raise InputError(f"label flipping needs num_classes ≥ 2, got {num_classes!r}")
    y = np.asarray(y)
    if y.ndim != 1 or (y.size and y.dtype.kind not in "iu"):
        raise InputError(f"labels must be a 1-D array of integer class indices, got shape {y.shape} {y.dtype}")
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise InputError(f"labels must lie in [0, {num_classes}), got {int(y.min())}..{int(y.max())}")
    return y.astype(np.int64)


def _inputs(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim not in (2, 3, 4) or x.dtype.kind not in "biuf":
        raise InputError(f"inputs must be numeric (N, D), (N, H, W) or (N, C, H, W), got shape {x.shape} {x.dtype}")
    return x
