"""White-box watermark in the weights.

Uchida, Nagai, Sakazawa, Satoh, "Embedding Watermarks into Deep Neural Networks", ICMR 2017,
https://arxiv.org/abs/1701.04082. A ``bits``-bit message ``b`` is hidden in one layer's weights:
``w`` is the layer's weight averaged over its output units (for a conv layer, the mean kernel,
``in_channels × kh × kw`` values), ``X`` is a secret ``bits × len(w)`` standard normal projection.
Embedding fine-tunes the model with the regulariser ``λ · BCE(sigmoid(X·w), b)`` added to the task
loss; extraction reads ``sign(X·w)``. Both ``X`` and ``b`` are derived from the key, so a model
trained without the key matches each bit with probability exactly 1/2 (``X·w`` is a symmetric
Gaussian for any fixed ``w``): the match count is Binomial(bits, 1/2) under the null.
"""

from __future__ import annotations

from torch import Tensor, nn

from modelshield.core.datasets import Dataset
from modelshield.core.errors import InputError
from modelshield.core.model import Model, TorchModel
from modelshield.integrity.watermark.keys import check_key, key_integers, key_normal
from modelshield.integrity.watermark.stats import DEFAULT_FPR, WatermarkVerdict, check_fpr
from modelshield.integrity.watermark.training import fine_tune, require_torch

_LAYER_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def _weight(net: nn.Module, name: str) -> Tensor:
    """The ``weight`` tensor of the layer ``name`` (``target_layer`` only picks layers that have one)."""
    weight = net.get_submodule(name).weight
    if not isinstance(weight, Tensor):
        raise InputError(f"layer {name} has no weight tensor to carry a watermark")
    return weight


def _averaged(weight: Tensor) -> Tensor:
    """The layer's weight averaged over output units and flattened (Uchida's ``w``)."""
    return weight.mean(dim=0).flatten()


class WeightWatermark:
    """Embed and verify a key-derived bit string in one layer's weights (Uchida et al. 2017).

    Args:
        key: the owner's secret (16+ bytes; ``load_key`` reads a key file).
        bits: message length; at most the layer's averaged-weight size, ideally half of it.
        layer: name of a conv or linear module (``model.named_modules()``); by default the first
            one whose averaged weight has at least ``2 * bits`` entries.
        strength: λ, the weight of the embedding regulariser in the training loss.
        epochs, lr, seed: the embedding fine-tune (Adam).
        fpr: the false-positive rate the verification is held to.

    Example::

        wm = WeightWatermark(load_key("owner.key"))
        marked = wm.embed(model, train)
        assert wm.verify(marked).detected
    """

    kind = "weights"

    def __init__(
        self,
        key: bytes,
        *,
        bits: int = 64,
        layer: str | None = None,
        strength: float = 0.1,
        epochs: int = 10,
        lr: float = 1e-3,
        seed: int = 0,
        fpr: float = DEFAULT_FPR,
    ) -> None:
        if bits < 1:
            raise InputError(f"bits must be at least 1, not {bits}")
        if strength <= 0:
            raise InputError(f"strength must be positive, not {strength}")
        self._key = check_key(key)
        self.bits = int(bits)
        self.layer = layer
        self.strength = float(strength)
        self.epochs = int(epochs)
        self.lr = float(lr)
        self.seed = int(seed)
        self.fpr = check_fpr(fpr)

    def __repr__(self) -> str:  # the key stays out of logs and tracebacks
        return f"WeightWatermark(bits={self.bits}, layer={self.layer!r}, strength={self.strength}, fpr={self.fpr})"

    def target_layer(self, net: nn.Module) -> str:
        """The name of the layer that carries (or will carry) the watermark."""
        layers = {name: m for name, m in net.named_modules() if isinstance(m, _LAYER_TYPES)}
        if self.layer is not None:
            if self.layer not in layers:
                raise InputError(
                    f"the model has no conv or linear layer named {self.layer!r}",
                    hint=f"choose one of: {', '.join(layers) or 'none'}",
                )
            size = _averaged(layers[self.layer].weight).numel()
            if size < self.bits:
                raise InputError(f"layer {self.layer!r} averages to {size} weights, too few for {self.bits} bits")
            return self.layer
        for name, m in layers.items():
            if _averaged(m.weight).numel() >= 2 * self.bits:
                return name
        raise InputError(f"no conv or linear layer has the {2 * self.bits} averaged weights {self.bits} bits need")

    def _secret(self, name: str, size: int) -> tuple[Tensor, Tensor]:
        """The projection ``X`` (bits × size) and the message ``b`` (bits,) for this layer."""
        context = f"weights/{name}/{size}/{self.bits}"
        x = key_normal(self._key, context + "/projection", self.bits * size).reshape(self.bits, size)
        return x, key_integers(self._key, context + "/message", self.bits, 2).float()

    def _parts(self, net: nn.Module) -> tuple[str, Tensor, Tensor]:
        """The layer name, projection and message, on the layer's device."""
        name = self.target_layer(net)
        weight = _weight(net, name)
        x, message = self._secret(name, _averaged(weight).numel())
        return name, x.to(weight.device), message.to(weight.device)

    def embed(self, model: TorchModel, data: Dataset) -> TorchModel:
        """A copy of ``model`` fine-tuned on ``data`` with the embedding regulariser."""
        model = require_torch(model, "embedding a weight watermark")
        name, x, message = self._parts(model.module)

        def penalty(net: nn.Module) -> Tensor:
            scores = x @ _averaged(_weight(net, name))
            return self.strength * nn.functional.binary_cross_entropy_with_logits(scores, message, reduction="sum")

        return fine_tune(model, data, epochs=self.epochs, lr=self.lr, seed=self.seed, penalty=penalty)

    def _read(self, model: Model | nn.Module) -> tuple[Tensor, Tensor]:
        """The bits ``sign(X·w) > 0`` in the model's weights and the key's message, both bool."""
        net = model if isinstance(model, nn.Module) else require_torch(model, "reading a weight watermark").module
        name, x, message = self._parts(net)
        return (x @ _averaged(_weight(net, name).detach())) > 0, message.bool()

    def extract(self, model: Model | nn.Module) -> Tensor:
        """The ``bits`` bits read from the model's weights (bool tensor)."""
        return self._read(model)[0]

    def verify(self, model: Model | nn.Module, fpr: float | None = None) -> WatermarkVerdict:
        """Count the bits that match the key's message and test against Binomial(bits, 1/2)."""
        bits, message = self._read(model)
        matched = int((bits == message).sum())
        return WatermarkVerdict.from_counts(self.kind, matched, self.bits, 0.5, self.fpr if fpr is None else fpr)
