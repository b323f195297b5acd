"""Book-keeping clipping: per-sample norms and clipped sums equal torch.func's per-sample gradients.

Every model runs on real digits images or digit-derived token sequences; sizes are chosen so that each
rule takes both of its paths (ghost norm and materialised per-sample gradients).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from modelshield.core.datasets import sklearn_dataset
from modelshield.core.errors import InputError
from modelshield.privacy.dp import BookKeeping, per_sample_cross_entropy, replace_batchnorm
from modelshield.privacy.dp.rules import RULES, ConvRule, LinearRule, rule_for


def reference(model: nn.Module, x: Tensor, y: Tensor) -> dict[str, Tensor]:
    """Per-sample gradients the slow, obvious way: vmap(grad) of each sample's loss."""
    params = {k: v.detach() for k, v in model.named_parameters()}

    def loss(p: dict[str, Tensor], xi: Tensor, yi: Tensor) -> Tensor:
        out = functional_call(model, p, (xi.unsqueeze(0),))
        return per_sample_cross_entropy(out, yi.unsqueeze(0)).sum()

    grads: dict[str, Tensor] = vmap(grad(loss), in_dims=(None, 0, 0))(params, x, y)
    return grads


def norms_of(grads: dict[str, Tensor]) -> Tensor:
    return torch.stack([g.flatten(1).pow(2).sum(1) for g in grads.values()]).sum(0).sqrt()


class Residual(nn.Module):
    """A ResNet basic block with GroupNorm and torchvision's in-place add and ReLU."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.gn1 = nn.GroupNorm(4, c)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.gn2 = nn.GroupNorm(4, c)

    def forward(self, x: Tensor) -> Tensor:
        identity = x
        out = self.relu(self.gn1(self.conv1(x)))
        out = self.gn2(self.conv2(out))
        out += identity
        return self.relu(out)


class TokenModel(nn.Module):
    """Embedding (with a padding row), LayerNorm, one Linear applied twice, a PReLU (no rule: torch.func)."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(17, 48, padding_idx=0)
        self.norm = nn.LayerNorm(48)
        self.mix = nn.Linear(48, 48)
        self.act = nn.PReLU()
        self.head = nn.Linear(48, 10)

    def forward(self, tokens: Tensor) -> Tensor:
        h = self.norm(self.emb(tokens))
        h = self.mix(self.act(self.mix(h)))
        return self.head(h.mean(1))


def _images(n: int = 24) -> tuple[Tensor, Tensor]:
    d = sklearn_dataset("digits", "train")
    return d.x[:n], d.y[:n]


def _tokens(n: int = 24) -> tuple[Tensor, Tensor]:
    """Each digit image read row by row as a sequence of 8 pixel intensities 0..16 (0 = padding)."""
    x, y = _images(n)
    return (x[:, 0, :4, :] * 16).round().long().reshape(n, -1)[:, :8], y


def _cases() -> dict[str, tuple[Callable[[], nn.Module], Callable[[], tuple[Tensor, Tensor]]]]:
    def linear() -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 10))

    def sequence_linear() -> nn.Module:  # (B, 8 rows, 8 pixels) → Linear per row: the sequence ghost norm
        return nn.Sequential(
            nn.Flatten(1, 2), nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 64), nn.Flatten(), nn.Linear(512, 10)
        )

    def conv() -> nn.Module:  # stride, groups, 'same' reflect padding, and a late conv on a 2×2 map (ghost path)
        return nn.Sequential(
            nn.Conv2d(1, 8, 3, stride=2, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(8, 64, 3, padding="same", padding_mode="reflect", groups=2),
            nn.GroupNorm(8, 64),
            nn.ReLU(),
            nn.AvgPool2d(2),
            nn.Conv2d(64, 64, 2),
            nn.Flatten(),
            nn.Linear(64, 10),
        )

    def residual() -> nn.Module:
        return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), Residual(16), nn.Flatten(), nn.Linear(16 * 64, 10))

    return {
        "linear": (linear, _images),
        "linear-sequence": (sequence_linear, _images),
        "conv-groupnorm": (conv, _images),
        "inplace-residual": (residual, _images),
        "embedding-layernorm-shared-fallback": (TokenModel, _tokens),
    }


CASES = _cases()


@pytest.mark.parametrize("name", list(CASES))
def test_norms_and_clipped_sum_match_torch_func(name: str) -> None:
    make, data = CASES[name]
    torch.manual_seed(0)
    model, (x, y) = make(), data()
    ref = reference(model, x, y)
    expected = norms_of(ref)
    clip = float(expected.median())  # about half of the samples are clipped
    with BookKeeping(model, max_grad_norm=clip) as bk:
        batch = bk.clipped(x, y)
    torch.testing.assert_close(batch.norms, expected, rtol=1e-4, atol=1e-6)
    factor = (clip / (expected + 1e-6)).clamp(max=1.0)
    assert (factor < 1).any() and (factor == 1).any()
    for pname, p in model.named_parameters():
        torch.testing.assert_close(
            batch.grads[p], torch.einsum("b,b...->...", factor, ref[pname]), rtol=1e-4, atol=1e-5
        )


def test_both_paths_of_the_linear_and_conv_rules_are_taken() -> None:
    """The mixed choice: ghost norm where T² or L² is small against the weight, materialised elsewhere."""
    conv, lin = RULES[nn.Conv2d], RULES[nn.Linear]
    assert isinstance(conv, ConvRule) and isinstance(lin, LinearRule)
    x, _ = _images(4)
    late, early = nn.Conv2d(64, 64, 2), nn.Conv2d(1, 8, 3)
    seen: list[str] = []
    base = ConvRule.per_sample

    def spy(self: ConvRule, module: nn.Module, call: object) -> dict[str, Tensor]:
        seen.append("materialised" if module is early else "late-materialised")
        return base(self, module, call)  # type: ignore[arg-type]

    ConvRule.per_sample = spy  # type: ignore[method-assign]
    try:
        model = nn.Sequential(
            early, nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Conv2d(8, 64, 1), late, nn.Flatten(), nn.Linear(64, 10)
        )
        with BookKeeping(model, max_grad_norm=1.0) as bk:
            bk.clipped(x, torch.zeros(4, dtype=torch.long))
    finally:
        ConvRule.per_sample = base  # type: ignore[method-assign]
    assert "materialised" in seen and "late-materialised" not in seen
    assert rule_for(nn.PReLU()) is not rule_for(nn.Linear(2, 2))


def test_mean_of_clipped_gradients_is_the_sigma_zero_update() -> None:
    """Σ_i clip(g_i) / B is exactly the mean of per-sample-clipped gradients: DP-SGD's update before noise."""
    torch.manual_seed(1)
    make, data = CASES["conv-groupnorm"]
    model, (x, y) = make(), data()
    ref = reference(model, x, y)
    per_sample_clipped = {
        k: g * (0.5 / (norms_of(ref) + 1e-6)).clamp(max=1).view(-1, *[1] * (g.ndim - 1)) for k, g in ref.items()
    }
    with BookKeeping(model, max_grad_norm=0.5) as bk:
        grads = bk.clipped(x, y).grads
    for name, p in model.named_parameters():
        torch.testing.assert_close(grads[p] / len(x), per_sample_clipped[name].mean(0), rtol=1e-4, atol=1e-6)
        assert per_sample_clipped[name].flatten(1).norm(dim=1).max() <= 0.5 + 1e-4


def test_batchnorm_is_refused_with_the_fix_named() -> None:
    model = nn.Sequential(nn.Conv2d(1, 8, 3), nn.BatchNorm2d(8), nn.Flatten(), nn.Linear(8 * 36, 10))
    with pytest.raises(InputError) as err:
        BookKeeping(model, max_grad_norm=1.0)
    text = err.value.diagnostics()
    assert "1 is BatchNorm2d" in text and "GroupNorm" in text and "\n" not in text
    fixed = replace_batchnorm(model)
    assert fixed is model and isinstance(model[1], nn.GroupNorm) and model[1].num_groups == 8
    x, y = _images(8)
    with BookKeeping(fixed, max_grad_norm=1.0) as bk:
        assert bk.per_sample_norms(x, y).shape == (8,)


def test_a_parameter_used_outside_its_layer_is_caught() -> None:
    """``F.linear(x, self.fc.weight)`` in a parent would silently lose fc's gradient; check() refuses it."""

    class Sneaky(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(64, 10)

        def forward(self, x: Tensor) -> Tensor:
            return nn.functional.linear(x.flatten(1), self.fc.weight, self.fc.bias)

    x, y = _images(8)
    with BookKeeping(Sneaky(), max_grad_norm=1.0) as bk, pytest.raises(InputError, match="do not add up"):
        bk.check(x, y)
    with BookKeeping(CASES["inplace-residual"][0](), max_grad_norm=1.0) as bk:
        bk.check(x, y)  # a sound model passes


def test_hooks_are_removed_and_loss_must_be_per_sample() -> None:
    model = CASES["linear"][0]()
    x, y = _images(8)
    with BookKeeping(model, max_grad_norm=1.0) as bk, pytest.raises(InputError, match="one value per sample"):
        bk.clipped(x, y, lambda out, t: nn.functional.cross_entropy(out, t))
    assert all(not m._forward_hooks for m in model.modules())
