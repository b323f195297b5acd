"""What an honest-but-curious server sees of the clients' updates, with and without SecAgg and DP.

Gradient inversion (:func:`invert_gradients`) needs one client's update. Secure aggregation
(Bonawitz et al., CCS 2017, https://eprint.iacr.org/2017/281) hides it: the server learns only
the sum over the round's clients. Client-level DP (McMahan et al., "Learning Differentially
Private Recurrent Language Models", ICLR 2018, https://arxiv.org/abs/1710.06963) clips each
update to L2 norm ``C`` and adds Gaussian noise of standard deviation ``z·C`` to the sum.

Where the noise is added decides whom it hides from. With *central* DP (Flower's
``DifferentialPrivacyServerSideFixedClipping`` or ``...ClientSideFixedClipping``) the server adds
it after receiving the updates, so the server itself still sees each update in the clear (raw,
or clipped by the client): DP then protects against whoever sees the released model, not against
the server. Only
noise added on the client — local DP (each client adds all of ``z·C``), or distributed DP under
SecAgg (each of ``k`` clients adds ``z·C/√k``, the sum carries ``z·C``) — is in what the server
sees. :func:`server_view` simulates those cases so their effect on an attack can be measured.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from modelshield.attacks.federated.model_poisoning import Update, check_update
from modelshield.core.errors import InputError


def secure_aggregate(updates: Sequence[Sequence[np.ndarray]]) -> Update:
    """The element-wise sum of the clients' updates: all that SecAgg reveals to the server."""
    clients = [check_update(u) for u in updates]
    if not clients:
        raise InputError("secure aggregation needs at least one client's update")
    shapes = [a.shape for a in clients[0]]
    for i, c in enumerate(clients[1:], start=1):
        if [a.shape for a in c] != shapes:
            raise InputError(f"client {i}'s update has shapes {[a.shape for a in c]}, client 0's {shapes}")
    return [np.sum([c[j] for c in clients], axis=0).astype(clients[0][j].dtype) for j in range(len(shapes))]


def update_norm(update: Sequence[np.ndarray]) -> float:
    """The L2 norm of the whole update (all floating arrays as one vector), as DP clipping measures it."""
    return math.sqrt(
        sum(float(np.sum(np.square(a, dtype=np.float64))) for a in check_update(update) if a.dtype.kind == "f")
    )


def clip_update(update: Sequence[np.ndarray], *, clip: float) -> Update:
    """Scale the update down to L2 norm ``clip`` if it is longer (flat clipping, McMahan et al. 2018)."""
    _check_clip(clip)
    arrays = check_update(update)
    factor = min(1.0, clip / max(update_norm(arrays), 1e-12))
    return [(a * factor).astype(a.dtype) if a.dtype.kind == "f" else a.copy() for a in arrays]


def privatize_update(
    update: Sequence[np.ndarray],
    *,
    clip: float,
    noise_multiplier: float,
    rng: np.random.Generator,
    share: int = 1,
) -> Update:
    """Clip to ``clip`` and add N(0, (z·C)²/share) per coordinate, as a client does before sending.

    ``share = 1`` is local DP (this update alone carries the full noise); ``share = k`` is one of
    ``k`` clients under SecAgg, whose noise adds up to N(0, (z·C)²) in the sum.
    """
    if isinstance(noise_multiplier, bool) or not noise_multiplier >= 0:
        raise InputError(f"the noise multiplier must be ≥ 0, got {noise_multiplier!r}")
    if isinstance(share, bool) or not isinstance(share, int) or share < 1:
        raise InputError(f"share must be an integer ≥ 1 (the number of clients summed), got {share!r}")
    std = noise_multiplier * clip / math.sqrt(share)
    return [
        (a + rng.normal(0.0, std, size=a.shape)).astype(a.dtype) if a.dtype.kind == "f" else a
        for a in clip_update(update, clip=clip)
    ]


def server_view(
    updates: Sequence[Sequence[np.ndarray]],
    *,
    secagg: bool = False,
    clip: float | None = None,
    noise_multiplier: float = 0.0,
    rng: np.random.Generator | None = None,
) -> list[Update]:
    """What the server receives from one round's clients: one update each, or only their sum under SecAgg.

    With ``clip``, each client clips its update first; with ``noise_multiplier`` > 0 (needs ``clip``
    and ``rng``) each client also adds its Gaussian noise before sending — the whole ``z·C``
    without SecAgg (local DP), a ``1/√k`` share of it with SecAgg (distributed DP). To simulate
    central DP, whose noise the server adds itself, pass ``clip`` alone: that is what it sees.
    """
    clients = [check_update(u) for u in updates]
    if noise_multiplier and (clip is None or rng is None):
        raise InputError("noise on the client needs a clipping norm (clip) and a random generator (rng)")
    if noise_multiplier:
        assert clip is not None and rng is not None
        share = len(clients) if secagg else 1
        clients = [
            privatize_update(u, clip=clip, noise_multiplier=noise_multiplier, rng=rng, share=share) for u in clients
        ]
    elif clip is not None:
        clients = [clip_update(u, clip=clip) for u in clients]
    return [secure_aggregate(clients)] if secagg else clients


def _check_clip(clip: float) -> None:
    if isinstance(clip, bool) or not isinstance(clip, int | float | np.floating) or not clip > 0:
        raise InputError(f"the clipping norm must be a positive number, got {clip!r}")
