"""Attacks on federated training: poisoned clients and a curious server (issue 13).

Malicious clients poison their data (:func:`flip_labels`, :func:`add_backdoor`) or their update
(:func:`sign_flip`, :func:`gaussian_update`, :func:`boost_update`); a curious server rebuilds a
client's data from its gradient (:func:`invert_gradients`). :func:`server_view` simulates what
SecAgg and client-side DP leave such a server to work with. Plain numpy and PyTorch: the Flower
app in :mod:`modelshield.privacy.federated` wires them into real rounds. See docs/federated-attacks.md.
"""

from modelshield.attacks.federated.data_poisoning import add_backdoor, apply_trigger, flip_labels
from modelshield.attacks.federated.inversion import InversionResult, infer_labels, invert_gradients
from modelshield.attacks.federated.model_poisoning import boost_update, gaussian_update, sign_flip
from modelshield.attacks.federated.server_view import (
    clip_update,
    privatize_update,
    secure_aggregate,
    server_view,
    update_norm,
)

__all__ = [
    "InversionResult",
    "add_backdoor",
    "apply_trigger",
    "boost_update",
    "clip_update",
    "flip_labels",
    "gaussian_update",
    "infer_labels",
    "invert_gradients",
    "privatize_update",
    "secure_aggregate",
    "server_view",
    "sign_flip",
    "update_norm",
]
