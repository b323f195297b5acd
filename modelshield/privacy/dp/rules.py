"""Per-sample gradient norms and clipped sums from a layer's input and output gradient ("book-keeping").

A layer's per-sample weight gradient is a function of what it saw (its input ``a``) and what came back
(the gradient ``g`` of the summed loss with respect to its output): for a linear map it is ``g_iᵀ a_i``.
Its norm can be had without forming it, ``‖Σ_t g_it a_itᵀ‖² = Σ_ts (a_it·a_is)(g_it·g_is)`` (the ghost
norm of Li et al. 2021), and the clipped sum ``Σ_i c_i g_iᵀ a_i`` is one matrix product with ``g`` scaled
per sample, so no second backward pass is needed (Bu et al. 2022). Each rule picks, per call, whichever of
ghost norm and materialised per-sample gradients costs fewer multiply-adds (the "mixed" choice of Bu et
al.). Layers without a rule get per-sample gradients from ``torch.func`` (``vmap`` of a ``vjp`` of the
layer alone on its recorded input), so any layer whose output for a sample depends on that sample only
works, just more slowly.

- Li, Tramèr, Liang, Hashimoto, "Large Language Models Can Be Strong Differentially Private Learners",
  ICLR 2022, https://arxiv.org/abs/2110.05679 (ghost clipping).
- Bu, Wang, Zha, Karypis, "Differentially Private Optimization on Large Model at Small Cost", ICML 2023,
  https://arxiv.org/abs/2210.00038 (book-keeping, BK).
- Bu, Mao, Xu, "Scalable and Efficient Training of Large Convolutional Neural Networks with Differential
  Privacy", NeurIPS 2022, https://arxiv.org/abs/2205.10683 (mixed ghost clipping for convolutions).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: clipped sum of a layer's per-sample gradients, given the per-sample clip factors (B,): {param name: grad}
ClippedSum = Callable[[Tensor], dict[str, Tensor]]


@dataclass
class Call:
    """One forward call of a layer: its positional and keyword arguments, and the gradient at its output."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    grad: Tensor


def trainable(module: nn.Module) -> dict[str, nn.Parameter]:
    """The parameters ``module`` owns itself (not its children's) that are being trained."""
    return {n: p for n, p in module.named_parameters(recurse=False) if p.requires_grad}


def _sq_norms(per_sample: dict[str, Tensor]) -> Tensor:
    return torch.stack([g.flatten(1).pow(2).sum(1) for g in per_sample.values()]).sum(0)


def _weighted(per_sample: dict[str, Tensor]) -> ClippedSum:
    return lambda c: {n: torch.tensordot(c.to(g.dtype), g, dims=1) for n, g in per_sample.items()}


class Rule:
    """How one layer type gives per-sample gradients (always) and cheaper norms and sums (where it can)."""

    def per_sample(self, module: nn.Module, call: Call) -> dict[str, Tensor]:
        """Per-sample gradients of the module's trainable parameters for one call, each (B, *param.shape)."""
        raise NotImplementedError

    def norms_and_sum(self, module: nn.Module, calls: Sequence[Call]) -> tuple[Tensor, ClippedSum]:
        """Squared per-sample gradient norms (B,) and the clipped-sum function, over every call of the layer."""
        total = self.per_sample(module, calls[0])
        for call in calls[1:]:
            more = self.per_sample(module, call)
            total = {n: g + more[n] for n, g in total.items()}
        return _sq_norms(total), _weighted(total)


def _rows(t: Tensor, b: int) -> Tensor:
    """(B, ..., d) as (B, T, d): every position before the last axis is one more "token" of the sample."""
    return t.reshape(b, -1, t.shape[-1])


class LinearRule(Rule):
    """``nn.Linear`` on (B, d) or sequence (B, ..., d) inputs; calls of a shared layer are one longer sequence."""

    def _tokens(self, calls: Sequence[Call]) -> tuple[Tensor, Tensor]:
        b = calls[0].grad.shape[0]
        a = torch.cat([_rows(c.args[0], b) for c in calls], 1)
        g = torch.cat([_rows(c.grad, b) for c in calls], 1)
        return a, g

    def per_sample(self, module: nn.Module, call: Call) -> dict[str, Tensor]:
        a, g = self._tokens([call])
        return self._materialised(module, a, g)

    def _materialised(self, module: nn.Module, a: Tensor, g: Tensor) -> dict[str, Tensor]:
        own = trainable(module)
        out = {}
        if "weight" in own:
            out["weight"] = torch.bmm(g.transpose(1, 2), a)
        if "bias" in own:
            out["bias"] = g.sum(1)
        return out

    def norms_and_sum(self, module: nn.Module, calls: Sequence[Call]) -> tuple[Tensor, ClippedSum]:
        a, g = self._tokens(calls)
        own = trainable(module)
        t, d, p = a.shape[1], a.shape[2], g.shape[2]
        if t > 1 and t * (d + p) >= p * d:  # materialising is cheaper than the T×T ghost products
            return super().norms_and_sum(module, calls)
        norms = a.new_zeros(a.shape[0])
        if "weight" in own:
            if t == 1:
                norms = norms + a.pow(2).sum((1, 2)) * g.pow(2).sum((1, 2))
            else:
                norms = norms + (torch.bmm(a, a.transpose(1, 2)) * torch.bmm(g, g.transpose(1, 2))).sum((1, 2))
        if "bias" in own:
            norms = norms + g.sum(1).pow(2).sum(1)

        def clipped(c: Tensor) -> dict[str, Tensor]:
            gc = g * c.to(g.dtype).view(-1, 1, 1)
            out = {}
            if "weight" in own:
                out["weight"] = gc.reshape(-1, p).T @ a.reshape(-1, d)
            if "bias" in own:
                out["bias"] = gc.sum((0, 1))
            return out

        return norms, clipped


def _conv_geometry(
    module: nn.Conv1d | nn.Conv2d, a: Tensor
) -> tuple[Tensor, tuple[int, int], tuple[int, int], tuple[int, int]]:
    """The input padded explicitly as 4-D (B, C, H, W), with 2-D kernel size, dilation and stride."""
    two_d = isinstance(module, nn.Conv2d)
    x = a if two_d else a.unsqueeze(2)
    k = tuple(module.kernel_size) if two_d else (1, module.kernel_size[0])
    dil = tuple(module.dilation) if two_d else (1, module.dilation[0])
    stride = tuple(module.stride) if two_d else (1, module.stride[0])
    if module.padding == "same":
        pads: list[int] = []
        for ki, di in zip(reversed(k), reversed(dil), strict=True):  # F.pad lists the last axis first
            total = di * (ki - 1)
            pads += [total // 2, total - total // 2]
    else:
        pad = [0, 0] if module.padding == "valid" else [int(p) for p in module.padding]
        ph, pw = (pad[0], pad[1]) if two_d else (0, pad[0])
        pads = [pw, pw, ph, ph]
    if any(pads):
        mode = "constant" if module.padding_mode == "zeros" else module.padding_mode
        x = F.pad(x, pads, mode=mode)
    return x, k, dil, stride  # type: ignore[return-value]


class ConvRule(Rule):
    """``nn.Conv1d``/``nn.Conv2d`` (any stride, dilation, groups, padding mode).

    With the unfolded input ``A`` (d × L per group) and output gradient ``G`` (p × L), the per-sample
    gradient ``G Aᵀ`` costs p·d·L per sample and its ghost norm ``⟨AᵀA, GᵀG⟩`` costs L²·(p + d); the
    cheaper one is used (early layers: materialise; late layers with small feature maps: ghost).
    Materialised per-sample gradients come from one weight-gradient convolution with the batch folded
    into the groups, which runs on the platform's convolution kernels instead of unfold and a batched
    matrix product (about twice as fast on CPU).
    """

    def per_sample(self, module: nn.Module, call: Call) -> dict[str, Tensor]:
        assert isinstance(module, nn.Conv1d | nn.Conv2d)
        x, k, dil, stride = _conv_geometry(module, call.args[0])
        b = x.shape[0]
        g = call.grad if isinstance(module, nn.Conv2d) else call.grad.unsqueeze(2)
        own = trainable(module)
        out = {}
        if "weight" in own:
            c_out, c_in = g.shape[1], x.shape[1]
            shape = (b * c_out, c_in // module.groups, *k)
            w = torch.ops.aten.convolution_backward(
                g.reshape(1, b * c_out, *g.shape[2:]),
                x.reshape(1, b * c_in, *x.shape[2:]),
                own["weight"].new_empty(1).expand(shape),  # only its shape is read
                None,
                list(stride),
                [0, 0],
                list(dil),
                False,
                [0, 0],
                b * module.groups,
                [False, True, False],
            )[1]
            out["weight"] = w.reshape(b, *own["weight"].shape)
        if "bias" in own:
            out["bias"] = g.flatten(2).sum(-1)
        return out

    def norms_and_sum(self, module: nn.Module, calls: Sequence[Call]) -> tuple[Tensor, ClippedSum]:
        assert isinstance(module, nn.Conv1d | nn.Conv2d)
        grad = calls[0].grad
        length = grad[0, 0].numel()
        p = grad.shape[1] // module.groups
        d = module.weight[0].numel()
        if len(calls) > 1 or length * (d + p) >= p * d:
            return super().norms_and_sum(module, calls)
        x, k, dil, stride = _conv_geometry(module, calls[0].args[0])
        b, groups = x.shape[0], module.groups
        a = F.unfold(x, k, dilation=dil, stride=stride).view(b, groups, d, length)
        g = grad.reshape(b, groups, p, length)
        own = trainable(module)
        norms = a.new_zeros(b)
        if "weight" in own:
            aa = torch.einsum("bgdl,bgdm->bglm", a, a)
            gg = torch.einsum("bgpl,bgpm->bglm", g, g)
            norms = norms + (aa * gg).sum((1, 2, 3))
        if "bias" in own:
            norms = norms + g.sum(-1).pow(2).sum((1, 2))

        def clipped(c: Tensor) -> dict[str, Tensor]:
            gc = g * c.to(g.dtype).view(-1, 1, 1, 1)
            out = {}
            if "weight" in own:
                out["weight"] = torch.einsum("bgpl,bgdl->gpd", gc, a).reshape(own["weight"].shape)
            if "bias" in own:
                out["bias"] = gc.sum((0, 3)).flatten()
            return out

        return norms, clipped


class EmbeddingRule(Rule):
    """``nn.Embedding``: a sample's gradient row for token v is the sum of its output gradients at v.

    Norm: ``Σ_ts [i_t = i_s] g_t·g_s`` (T×T per sample, never the vocabulary-sized gradient); clipped
    sum: one ``index_add`` of the scaled output gradients. Calls of a shared table join into one sequence.
    """

    def _tokens(self, module: nn.Module, calls: Sequence[Call]) -> tuple[Tensor, Tensor]:
        assert isinstance(module, nn.Embedding)
        b = calls[0].grad.shape[0]
        idx = torch.cat([c.args[0].reshape(b, -1) for c in calls], 1)
        g = torch.cat([_rows(c.grad, b) for c in calls], 1)
        if module.padding_idx is not None:  # the padding row never receives a gradient
            g = g * (idx != module.padding_idx).unsqueeze(-1).to(g.dtype)
        return idx, g

    def per_sample(self, module: nn.Module, call: Call) -> dict[str, Tensor]:
        idx, g = self._tokens(module, [call])
        assert isinstance(module, nn.Embedding)
        b, dim = g.shape[0], g.shape[2]
        out = g.new_zeros(b, module.num_embeddings, dim)
        out.scatter_add_(1, idx.unsqueeze(-1).expand(-1, -1, dim), g)
        return {"weight": out}

    def norms_and_sum(self, module: nn.Module, calls: Sequence[Call]) -> tuple[Tensor, ClippedSum]:
        idx, g = self._tokens(module, calls)
        same = (idx.unsqueeze(2) == idx.unsqueeze(1)).to(g.dtype)
        norms = (same * torch.bmm(g, g.transpose(1, 2))).sum((1, 2))
        weight = trainable(module)["weight"]

        def clipped(c: Tensor) -> dict[str, Tensor]:
            gc = (g * c.to(g.dtype).view(-1, 1, 1)).reshape(-1, g.shape[-1])
            return {"weight": torch.zeros_like(weight).index_add_(0, idx.reshape(-1), gc)}

        return norms, clipped


class NormRule(Rule):
    """``nn.LayerNorm`` / ``nn.GroupNorm`` affine parameters: sums of ``g·x̂`` and ``g`` per sample."""

    def per_sample(self, module: nn.Module, call: Call) -> dict[str, Tensor]:
        a, g = call.args[0], call.grad
        b = a.shape[0]
        if isinstance(module, nn.LayerNorm):
            shape = tuple(module.normalized_shape)
            xhat = F.layer_norm(a, shape, eps=module.eps)
            reduce: Callable[[Tensor], Tensor] = lambda t: t.reshape(b, -1, *shape).sum(1)  # noqa: E731
        else:
            assert isinstance(module, nn.GroupNorm)
            xhat = F.group_norm(a, module.num_groups, eps=module.eps)
            reduce = lambda t: t.reshape(b, t.shape[1], -1).sum(-1)  # noqa: E731
        own = trainable(module)
        out = {}
        if "weight" in own:
            out["weight"] = reduce(g * xhat)
        if "bias" in own:
            out["bias"] = reduce(g)
        return out


class FuncRule(Rule):
    """Any other layer: ``vmap`` over samples of the ``vjp`` of the layer alone, on its recorded call.

    The layer is re-run one sample at a time (batched by ``vmap``) with its own parameters as the
    differentiated inputs, so parameters and buffers of its children stay as they are. Every tensor
    argument whose first axis is the batch is split per sample; the rest are passed whole.
    """

    def per_sample(self, module: nn.Module, call: Call) -> dict[str, Tensor]:
        from torch.func import functional_call, vjp, vmap

        params = {n: p.detach() for n, p in trainable(module).items()}
        b = call.grad.shape[0]
        batched = [isinstance(x, Tensor) and x.ndim > 0 and x.shape[0] == b for x in call.args]
        split = [x for x, is_b in zip(call.args, batched, strict=True) if is_b]

        def one(g_i: Tensor, *xs: Tensor) -> dict[str, Tensor]:
            it = iter(xs)
            args = tuple(next(it).unsqueeze(0) if is_b else x for x, is_b in zip(call.args, batched, strict=True))
            pull = vjp(lambda p: functional_call(module, p, args, call.kwargs), params)[1]
            grads: dict[str, Tensor] = pull(g_i.unsqueeze(0))[0]
            return grads

        result: dict[str, Tensor] = vmap(one)(call.grad, *split)
        return result


FALLBACK = FuncRule()
RULES: dict[type[nn.Module], Rule] = {
    nn.Linear: LinearRule(),
    nn.Conv1d: ConvRule(),
    nn.Conv2d: ConvRule(),
    nn.Embedding: EmbeddingRule(),
    nn.LayerNorm: NormRule(),
    nn.GroupNorm: NormRule(),
}


def rule_for(module: nn.Module) -> Rule:
    """The rule for ``module``'s exact type (a subclass may change ``forward``, so it gets the fallback)."""
    return RULES.get(type(module), FALLBACK)
