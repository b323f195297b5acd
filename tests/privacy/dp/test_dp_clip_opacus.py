"""Per-sample clipping against Opacus's on models written the way users write them.

Opacus (hooks mode) materialises per-sample gradients; clipping them by hand to C and summing is the
reference. Its hooks refuse in-place ops on a hooked layer's output (``out += identity``,
``ReLU(inplace=True)``), so it gets an out-of-place twin with the same weights; ours runs the in-place one.
C is the median norm, so half the samples are clipped and half are not.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn

from modelshield.privacy.dp import BookKeeping, replace_batchnorm


class ResBlock(nn.Module):
    def __init__(self, inplace: bool = True) -> None:
        super().__init__()
        self.inplace = inplace
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.norm = nn.BatchNorm2d(8)
        self.relu = nn.ReLU(inplace=inplace)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.fc = nn.Linear(8 * 8 * 8, 10)

    def forward(self, x: Tensor) -> Tensor:
        h = self.relu(self.norm(self.conv1(x)))
        out = self.conv2(h)
        if self.inplace:
            out += h
        else:
            out = out + h
        return self.fc(self.relu(out).flatten(1))


class TextNet(nn.Module):
    def __init__(self, inplace: bool = True) -> None:
        super().__init__()
        self.embed = nn.Embedding(100, 16, padding_idx=0)
        self.norm = nn.LayerNorm(16)
        self.conv = nn.Conv1d(16, 8, 3, stride=2, dilation=2, groups=2)
        self.fc = nn.Linear(8, 3)

    def forward(self, tokens: Tensor) -> Tensor:
        h = self.norm(self.embed(tokens)).transpose(1, 2)
        return self.fc(torch.tanh(self.conv(h)).mean(2))


def _opacus_clipped_sum(model: nn.Module, x: Tensor, y: Tensor, c: float) -> tuple[Tensor, list[Tensor]]:
    from opacus import GradSampleModule

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wrapped = GradSampleModule(model, loss_reduction="sum")
        nn.functional.cross_entropy(wrapped(x), y, reduction="sum").backward()
    samples: list[Tensor] = [p.grad_sample for p in model.parameters()]  # type: ignore[attr-defined]
    norms = torch.stack([g.flatten(1).norm(dim=1) for g in samples]).norm(dim=0)
    factor = (c / (norms + 1e-6)).clamp(max=1.0)
    return norms, [torch.einsum("i,i...->...", factor, g) for g in samples]


@pytest.mark.parametrize(
    ("make", "inputs"),
    [
        (ResBlock, lambda: torch.randn(16, 3, 8, 8)),
        (TextNet, lambda: torch.randint(0, 100, (16, 12))),
    ],
    ids=["resnet-block-inplace", "embedding-layernorm-conv1d"],
)
def test_clipped_sum_matches_opacus(make: Callable[..., nn.Module], inputs: Callable[[], Tensor]) -> None:
    torch.manual_seed(0)
    ours_model = replace_batchnorm(make(inplace=True))
    theirs_model = replace_batchnorm(make(inplace=False))
    theirs_model.load_state_dict(ours_model.state_dict())
    x = inputs()
    y = torch.randint(0, 3, (16,))
    with BookKeeping(ours_model, max_grad_norm=1.0) as bk:
        c = float(bk.clipped(x, y).norms.median())
    with BookKeeping(ours_model, max_grad_norm=c) as bk:
        ours = bk.clipped(x, y)
    norms, theirs = _opacus_clipped_sum(theirs_model, x, y, c)
    torch.testing.assert_close(ours.norms, norms, rtol=1e-4, atol=1e-6)
    assert 0 < int((norms > c).sum()) < len(norms)
    for p, ref in zip(ours_model.parameters(), theirs, strict=True):
        torch.testing.assert_close(ours.grads[p], ref, rtol=1e-4, atol=1e-5 * float(ref.abs().max()))


class _Pair(nn.Module):
    """A user's layer with its own weight that returns a tuple, like an RNN cell."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(4, 4))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = x @ self.weight
        return h, h.tanh()


class _Tower(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.ModuleDict({"cell": _Pair()})
        self.head = nn.Linear(4, 2)

    def forward(self, x: Tensor) -> Tensor:
        h, _ = self.encoder["cell"](x)
        return self.head(h)


def test_an_unsupported_layer_is_named_by_its_path() -> None:
    """Opacus added module names to its validation errors (PR #823) because a bare class name did not say
    which of many layers failed; ours names the path too."""
    from modelshield.core.errors import InputError

    with BookKeeping(_Tower(), max_grad_norm=1.0) as bk, pytest.raises(InputError, match=r"encoder\.cell"):
        bk.clipped(torch.randn(8, 4), torch.randint(0, 2, (8,)))
