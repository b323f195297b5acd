"""Which models DP-SGD can train: every layer's output for a sample must depend on that sample alone.

BatchNorm normalises with statistics of the whole batch, so one sample's gradient depends on all the
others and clipping it bounds nothing; it is refused (as Opacus's ``ModuleValidator`` does) and
:func:`replace_batchnorm` swaps it for GroupNorm, which normalises each sample on its own.
"""

from __future__ import annotations

from torch import nn

from modelshield.core.errors import InputError

_RECURRENT = (nn.RNNBase,)


def check_module(module: nn.Module) -> None:
    """Raise ``InputError`` naming the first layer that mixes samples or that per-sample clipping cannot handle."""
    for name, m in module.named_modules():
        where = name or "the model"
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            raise InputError(
                f"{where} is {type(m).__name__}, which mixes the samples of a batch, so per-sample gradients "
                "and DP-SGD's guarantee do not exist",
                hint="use GroupNorm or LayerNorm instead (modelshield.privacy.dp.replace_batchnorm converts it)",
            )
        if isinstance(m, nn.Embedding) and m.scale_grad_by_freq:
            raise InputError(
                f"{where} scales gradients by token frequency in the batch, which mixes samples",
                hint="build the Embedding with scale_grad_by_freq=False",
            )
        if isinstance(m, _RECURRENT) and any(p.requires_grad for p in m.parameters()):
            raise InputError(
                f"{where} is {type(m).__name__}, whose output is a tuple; per-sample clipping here covers layers "
                "that return one tensor",
                hint="freeze it, or build the recurrence from nn.Linear cells",
            )
    if not any(p.requires_grad for p in module.parameters()):
        raise InputError("the model has no trainable parameters")


def replace_batchnorm(module: nn.Module, max_groups: int = 32) -> nn.Module:
    """Replace every BatchNorm layer in place with GroupNorm (the largest group count ≤ ``max_groups``
    that divides its channels), keeping its affine setting; returns ``module``."""
    for name, child in module.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            c = child.num_features
            groups = max(g for g in range(1, min(max_groups, c) + 1) if c % g == 0)
            setattr(module, name, nn.GroupNorm(groups, c, eps=child.eps, affine=child.affine))
        else:
            replace_batchnorm(child, max_groups)
    return module
