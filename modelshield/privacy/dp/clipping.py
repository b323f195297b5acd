"""Per-sample clipped gradient sums in one forward and one backward pass (book-keeping clipping).

Forward hooks record each trainable layer's input and the autograd edge of its output *as the layer
produced it*; one ``torch.autograd.grad`` of the summed per-sample losses to those edges then gives every
layer's output gradient without computing any weight gradient. From inputs and output gradients the
rules in :mod:`.rules` give per-sample norms and the clipped sum (Bu et al. 2022,
https://arxiv.org/abs/2210.00038). Because the edge is taken when the layer returns, a later in-place
change of its output (``out += identity`` in a residual block, ``ReLU(inplace=True)``) neither breaks
the hooks nor changes the gradient recorded, which is where module backward hooks fail.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.autograd.graph import GradientEdge, get_gradient_edge

from modelshield.core.errors import InputError
from modelshield.privacy.dp.rules import Call, ClippedSum, rule_for, trainable
from modelshield.privacy.dp.validate import check_module

LossFn = Callable[[Tensor, Tensor], Tensor]
#: a small constant in the clip factor min(1, C / (‖g‖ + ε)), as in Abadi et al. and Opacus
_STABILITY = 1e-6


def per_sample_cross_entropy(logits: Tensor, y: Tensor) -> Tensor:
    """The default loss: one cross-entropy value per sample."""
    return nn.functional.cross_entropy(logits, y, reduction="none")


@dataclass
class _Record:
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    versions: tuple[int, ...]
    edge: GradientEdge


@dataclass
class ClippedBatch:
    """What one batch gives: the clipped gradient sum per parameter, per-sample norms, and the summed loss."""

    grads: dict[nn.Parameter, Tensor]
    norms: Tensor
    loss: float


class BookKeeping:
    """Per-sample clipping of a module's gradients to L2 norm ``max_grad_norm`` (flat clipping, all layers).

    Attaches forward hooks to ``module`` (removed by :meth:`close` or on leaving a ``with`` block).
    Layers whose parameters are shared with another layer, and layers without a ghost-norm rule, have
    their per-sample gradients materialised; everything else never forms them.

    Example::

        with BookKeeping(net, max_grad_norm=1.0) as bk:
            batch = bk.clipped(x, y)              # Σ_i clip(∇ℓ_i), per parameter
            norms = batch.norms                   # ‖∇ℓ_i‖ before clipping
    """

    def __init__(self, module: nn.Module, *, max_grad_norm: float) -> None:
        if not max_grad_norm > 0:
            raise InputError(f"max_grad_norm must be positive, got {max_grad_norm}")
        check_module(module)
        self.module = module
        self.max_grad_norm = float(max_grad_norm)
        self.layers = {name: m for name, m in module.named_modules() if trainable(m)}
        self._names = {m: name for name, m in self.layers.items()}
        owners: dict[int, int] = {}
        for m in self.layers.values():
            for p in trainable(m).values():
                owners[id(p)] = owners.get(id(p), 0) + 1
        self._shared = {m for m in self.layers.values() if any(owners[id(p)] > 1 for p in trainable(m).values())}
        self.params = list(dict.fromkeys(p for m in self.layers.values() for p in trainable(m).values()))
        self._records: dict[nn.Module, list[_Record]] | None = None
        self._handles = [m.register_forward_hook(self._hook, with_kwargs=True) for m in self.layers.values()]

    def close(self) -> None:
        """Remove the hooks; the module is as it was."""
        for h in self._handles:
            h.remove()
        self._handles = []

    def __enter__(self) -> BookKeeping:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _where(self, module: nn.Module) -> str:
        """A layer as errors name it: its path in the model and its class (``encoder.cell (LSTMCell)``)."""
        return f"{self._names.get(module) or 'the model'} ({type(module).__name__})"

    def _hook(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> None:
        if self._records is None:  # not recording: an evaluation forward, or the fallback re-running a layer
            return
        if not isinstance(output, Tensor):
            raise InputError(
                f"layer {self._where(module)} returns {type(output).__name__}, not a tensor; "
                "DP training needs each layer with parameters to return one tensor"
            )
        if not output.requires_grad:
            return
        args = tuple(a.detach() if isinstance(a, Tensor) else a for a in args)
        versions = tuple(a._version for a in args if isinstance(a, Tensor))
        record = _Record(args, dict(kwargs), versions, get_gradient_edge(output))
        self._records.setdefault(module, []).append(record)

    def per_sample_norms(self, x: Tensor, y: Tensor, loss_fn: LossFn = per_sample_cross_entropy) -> Tensor:
        """‖∇ℓ_i‖₂ over all trainable parameters, per sample, before clipping."""
        return self.clipped(x, y, loss_fn).norms

    def clipped(
        self, x: Tensor, y: Tensor, loss_fn: LossFn = per_sample_cross_entropy, *, clip: bool = True
    ) -> ClippedBatch:
        """Σ_i min(1, C/‖∇ℓ_i‖) ∇ℓ_i for every trainable parameter (with ``clip=False``: the plain sum)."""
        b = int(x.shape[0])
        calls = self._forward_backward(x, y, loss_fn, b)
        sq = x.new_zeros(b, dtype=torch.float32)
        sums: list[tuple[nn.Module, ClippedSum]] = []
        shared: dict[nn.Parameter, Tensor] = {}
        for module, layer_calls in calls.items():
            rule = rule_for(module)
            if module in self._shared:
                for call in layer_calls:
                    own = trainable(module)
                    for name, g in rule.per_sample(module, call).items():
                        p = own[name]
                        shared[p] = shared[p] + g if p in shared else g
                continue
            norms, clipped_sum = rule.norms_and_sum(module, layer_calls)
            sq = sq + norms.float()
            sums.append((module, clipped_sum))
        for g in shared.values():
            sq = sq + g.flatten(1).pow(2).sum(1).float()
        norms = sq.sqrt()
        c = (self.max_grad_norm / (norms + _STABILITY)).clamp(max=1.0) if clip else torch.ones_like(norms)
        grads: dict[nn.Parameter, Tensor] = {}
        for module, clipped_sum in sums:
            own = trainable(module)
            for name, g in clipped_sum(c).items():
                grads[own[name]] = g
        for p, g in shared.items():
            grads[p] = torch.tensordot(c.to(g.dtype), g, dims=1)
        for p in self.params:  # a layer that did not reach the loss contributes nothing
            if p not in grads:
                grads[p] = torch.zeros_like(p)
        return ClippedBatch(grads, norms, self._loss)

    def _forward_backward(self, x: Tensor, y: Tensor, loss_fn: LossFn, b: int) -> dict[nn.Module, list[Call]]:
        """Run the batch, recording each layer's calls, and fill in their output gradients."""
        self._records = {}
        try:
            losses = loss_fn(self.module(x), y)
            records, self._records = self._records, None
        finally:
            self._records = None
        if losses.shape != (b,):
            raise InputError(f"the loss must give one value per sample, shape ({b},), not {tuple(losses.shape)}")
        self._loss = float(losses.detach().sum())
        flat = [(m, r) for m, rs in records.items() for r in rs]
        if not flat:
            return {}
        grads = torch.autograd.grad(losses.sum(), [r.edge for _, r in flat], allow_unused=True)
        calls: dict[nn.Module, list[Call]] = {}
        for (module, r), g in zip(flat, grads, strict=True):
            if tuple(a._version for a in r.args if isinstance(a, Tensor)) != r.versions:
                raise InputError(
                    f"the input of layer {self._where(module)} was changed in place after the layer used it; "
                    "per-sample gradients need it intact (use an out-of-place op there)"
                )
            if g is None:
                continue
            if g.shape[0] != b:
                raise InputError(
                    f"layer {self._where(module)} gives an output whose first axis is {g.shape[0]}, not the "
                    f"batch ({b}); DP training needs the batch first in every layer"
                )
            calls.setdefault(module, []).append(Call(r.args, r.kwargs, g))
        return calls

    def check(self, x: Tensor, y: Tensor, loss_fn: LossFn = per_sample_cross_entropy) -> None:
        """Refuse a model whose per-sample gradients do not add up to its ordinary gradient.

        That happens when a parameter is used outside the layer that owns it (``F.linear(x,
        self.fc.weight)`` in a parent's ``forward``): its gradient would silently be missed.
        """
        devices = [x.device] if x.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):  # the same dropout masks in both passes
            unclipped = self.clipped(x, y, loss_fn, clip=False).grads
        reference = torch.autograd.grad(loss_fn(self.module(x), y).sum(), self.params, allow_unused=True)
        wrong = []
        names = {p: n for n, p in self.module.named_parameters()}
        for p, ref in zip(self.params, reference, strict=True):
            ref = torch.zeros_like(p) if ref is None else ref
            got = unclipped[p]
            if not torch.allclose(got, ref, rtol=1e-3, atol=1e-5 * (1.0 + float(ref.abs().max()))):
                wrong.append(names.get(p, "?"))
        if wrong:
            raise InputError(
                f"per-sample gradients of {', '.join(wrong[:5])} do not add up to the model's gradient: "
                "a parameter is used outside the layer that owns it, or a layer mixes samples",
                hint="use each parameter only through its own module's forward",
            )
