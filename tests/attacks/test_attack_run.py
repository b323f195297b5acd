"""``Attack.run``: whole data sets in batches, batch-size-independent results, verified successes."""

from __future__ import annotations

import pytest
import torch
from attack_helpers import LabelOnly
from torch import Tensor, nn

from modelshield.attacks.base import Attack, AttackResult
from modelshield.attacks.evasion import APGD, FGSM, PGD, CarliniWagnerL2, DeepFool, HopSkipJump, Square
from modelshield.attacks.losses import is_adversarial
from modelshield.core.datasets import Dataset
from modelshield.core.errors import InputError
from modelshield.core.model import ModelCallError, TorchModel

N, BATCH = 50, 20  # 2.5 batches

ATTACKS = {
    "fgsm": lambda: FGSM(0.1),
    "pgd-linf-restarts": lambda: PGD(0.1, steps=5, restarts=2, seed=3),
    "pgd-l2": lambda: PGD(1.0, norm="l2", steps=5, seed=3),
    "apgd-ce": lambda: APGD(0.1, steps=10, restarts=2, seed=3),
    "apgd-dlr-l2": lambda: APGD(1.0, norm="l2", steps=10, loss="dlr", seed=3),
    "cw": lambda: CarliniWagnerL2(steps=20, lr=0.1, binary_search_steps=2),
    "deepfool": lambda: DeepFool(steps=20),
    "square-linf": lambda: Square(0.1, n_queries=80, seed=3),
    "square-l2": lambda: Square(1.0, norm="l2", n_queries=80, seed=3),
    "hopskipjump": lambda: HopSkipJump(max_queries=120, init_evals=20, seed=3),
    "hopskipjump-linf-eps": lambda: HopSkipJump("linf", max_queries=120, init_evals=20, eps=0.3, seed=3),
}


class ResidualNet(nn.Module):
    """Written as users write CNNs: BatchNorm (eval), in-place ReLUs and a residual add."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(inplace=True))
        self.conv = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.head = nn.Linear(8, 10)

    def forward(self, x: Tensor) -> Tensor:
        h = self.stem(x)
        out = self.bn(self.conv(h))
        out += h
        out = torch.relu_(out)
        return self.head(out.mean(dim=(2, 3)))


@pytest.fixture(scope="module")
def data(digits_test: Dataset) -> tuple[Tensor, Tensor]:
    return digits_test.x[:N], digits_test.y[:N]


@pytest.fixture(scope="module")
def resnet() -> TorchModel:
    torch.manual_seed(1)
    net = ResidualNet()
    for m in net.modules():  # running statistics as after training, not the identity defaults
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    return TorchModel(net, input_shape=(1, 8, 8), num_classes=10)


def _same(a: AttackResult, b: AttackResult) -> None:
    """The same result: outcomes and counts exactly, points to float precision — the attack draws its randomness
    per sample, but on some CPUs (this Intel Xeon VM, not the AMD EPYC one) a batch's size changes BLAS blocking
    and so the model's own arithmetic in the last bit (L2 steps differed by 2e-7)."""
    torch.testing.assert_close(a.x_adv, b.x_adv, rtol=0, atol=1e-5)
    assert torch.equal(a.success, b.success) and torch.equal(a.claimed, b.claimed)
    assert (a.queries is None) == (b.queries is None)
    if a.queries is not None and b.queries is not None:
        assert torch.equal(a.queries, b.queries)
    assert a.total_queries == b.total_queries


@pytest.mark.parametrize("name", list(ATTACKS))
@pytest.mark.parametrize("which", ["digits-cnn", "residual-bn"])
def test_results_do_not_depend_on_the_batch_size(name: str, which: str, data, digits_model, resnet) -> None:
    model = digits_model if which == "digits-cnn" else resnet
    x, y = data
    attack = ATTACKS[name]()
    in_batches = attack.run(model, x, y, batch_size=BATCH)
    at_once = attack.run(model, x, y, batch_size=N)
    _same(in_batches, at_once)
    assert in_batches.x_adv.shape == x.shape and in_batches.success.shape == y.shape
    # Success is what the model's own labels say at the returned points.
    assert torch.equal(in_batches.success, is_adversarial(model.predict(in_batches.x_adv), y, False))
    if attack.black_box:
        q = in_batches.queries
        assert q is not None and q.shape == y.shape and int(q.min()) >= 1
        assert int(q.sum()) <= (in_batches.total_queries or 0)
    if attack.minimal:  # minimum-norm attacks hand back the clean input where they failed
        assert torch.equal(in_batches.x_adv[~in_batches.success], x[~in_batches.success])


def test_square_query_counts_cover_every_batch(data, digits_model) -> None:
    """The crash this replaced: per-sample counts of only the last batch (28 of 540)."""
    x, y = data
    attack = Square(0.1, n_queries=50, seed=0)
    digits_model.reset_queries()
    result = attack.run(digits_model, x, y, batch_size=BATCH)
    assert result.queries is not None and result.queries.shape == (N,)
    assert attack.queries_per_sample.shape == (N,)
    # Square counts every query against a sample, so the counts add up to what the attack spent.
    assert int(result.queries.sum()) == result.total_queries
    assert digits_model.queries == result.total_queries + N  # plus one verification query per sample
    assert bool((result.queries[~result.claimed] == 50).all())


def test_seed_none_draws_its_seed_from_the_global_rng(data, digits_model) -> None:
    x, y = data
    runs = []
    for _ in range(2):
        torch.manual_seed(7)
        runs.append(PGD(0.1, steps=3).run(digits_model, x, y, batch_size=BATCH))
    _same(runs[0], runs[1])
    torch.manual_seed(8)
    assert not torch.equal(PGD(0.1, steps=3).run(digits_model, x, y).x_adv, runs[0].x_adv)


def test_a_sample_gets_the_same_random_start_in_any_batch(data, digits_model) -> None:
    """Sample i of a call draws the noise keyed by (seed, i): the first sample of a later batch matches a lone call on it."""
    x, y = data
    attack = PGD(0.1, steps=1, seed=5)
    whole = attack.run(digits_model, x, y, batch_size=BATCH).x_adv
    alone = attack(digits_model, x[:1], y[:1])
    assert torch.equal(whole[0], alone[0])
    assert not torch.equal(whole[BATCH], attack(digits_model, x[BATCH : BATCH + 1], y[BATCH : BATCH + 1])[0])


def test_claims_are_verified_with_the_models_own_labels(data, digits_model) -> None:
    """A model with random noise on its scores (a common "defence"): some claims do not survive a fresh look."""

    class NoisyScores(nn.Module):
        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: Tensor) -> Tensor:
            z = self.inner(x)
            return z + 3.0 * torch.randn_like(z)

    model = TorchModel(NoisyScores(digits_model.module), input_shape=(1, 8, 8), num_classes=10)
    x, y = data
    torch.manual_seed(0)
    result = APGD(0.05, steps=10, seed=0).run(model, x, y, batch_size=BATCH)
    assert result.n_verified == int((result.claimed & result.success).sum())
    assert result.n_verified < result.n_claimed


def test_label_only_models_run_black_box_attacks(data, digits_model) -> None:
    x, y = data
    result = HopSkipJump(max_queries=60, init_evals=10, seed=0).run(LabelOnly(digits_model), x, y, batch_size=BATCH)
    assert result.n_verified == result.n_claimed > 0


def test_bad_batch_size_is_refused(data, digits_model) -> None:
    x, y = data
    with pytest.raises(InputError, match="batch size"):
        FGSM(0.1).run(digits_model, x, y, batch_size=0)


def test_every_attack_is_an_attack() -> None:
    assert all(isinstance(make(), Attack) for make in ATTACKS.values())


class _RefusesBrightInputs(nn.Module):
    """A model with its own input check in forward: it raises on inputs an attack may well produce."""

    def __init__(self, inner: nn.Module, limit: float) -> None:
        super().__init__()
        self.inner, self.limit = inner, limit

    def forward(self, x: Tensor) -> Tensor:
        if bool((x.flatten(1).mean(dim=1) > self.limit).any()):
            raise ValueError("input looks over-exposed")
        return self.inner(x)


@pytest.mark.parametrize("make", [lambda: PGD(0.3, steps=5, seed=0), lambda: Square(0.3, n_queries=40, seed=0)])
def test_a_model_that_raises_gives_a_typed_error(make, data, digits_model) -> None:
    x, y = data
    limit = float(x.flatten(1).mean(dim=1).max()) + 0.01  # the clean inputs pass the model's check
    model = TorchModel(_RefusesBrightInputs(digits_model.module, limit), input_shape=(1, 8, 8), num_classes=10)
    with pytest.raises(ModelCallError, match="ValueError on .* inputs: input looks over-exposed"):
        make().run(model, x, y, batch_size=BATCH)


def test_an_attack_written_against_the_old_contract_still_runs(data, digits_model) -> None:
    """Third-party attacks implemented ``__call__``; ``run`` batches them and judges them by the model."""

    class Noise(Attack):
        name, norm, eps = "noise", "linf", 0.2

        def __call__(self, model, x, y):
            return (x + self.eps * torch.sign(torch.randn_like(x))).clamp(0, 1)

    x, y = data
    result = Noise().run(digits_model, x, y, batch_size=BATCH)
    assert result.x_adv.shape == x.shape and torch.equal(result.claimed, result.success)
    assert torch.equal(result.success, digits_model.predict(result.x_adv) != y)

    class Nothing(Attack):
        name, norm = "nothing", "linf"

    with pytest.raises(TypeError, match="must implement _attack"):
        Nothing().run(digits_model, x, y)
