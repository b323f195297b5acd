"""The assessment runner: numbers, gate, findings and sanity flags on the demo digits CNN."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from modelshield.assess.findings import robustness_severity
from modelshield.assess.runner import AssessConfig, assess
from modelshield.core.datasets import Dataset
from modelshield.core.errors import InputError
from modelshield.core.model import Model, ModelCallError, TorchModel

FAST = dict(
    eps_linf=(0.02, 0.1, 0.3),
    eps_l2=(0.5, 1.5),
    gating_eps=0.1,
    pgd_steps=10,
    apgd_steps=20,
    cw_steps=30,
    square_queries=200,
    hsj_budgets=(50, 150),
    hsj_samples=8,
)


@pytest.fixture(scope="module")
def small(digits_test: Dataset) -> Dataset:
    return digits_test.subset(120, seed=1)


@pytest.fixture(scope="module")
def result(digits_model: TorchModel, small: Dataset):  # type: ignore[no-untyped-def]
    return assess(digits_model, small, AssessConfig(**FAST))


def test_pgd_breaks_standard_model_and_curve_falls(result) -> None:  # type: ignore[no-untyped-def]
    res, _ = result
    assert res.clean_accuracy > 0.9
    pgd = {r.eps: r.robust_accuracy for r in res.attacks if r.attack == "pgd" and r.norm == "linf"}
    assert set(pgd) == {0.02, 0.1, 0.3}
    assert pgd[0.02] > 0.7 and pgd[0.3] < 0.05
    assert pgd[0.02] >= pgd[0.1] >= pgd[0.3]
    fgsm = {r.eps: r.robust_accuracy for r in res.attacks if r.attack == "fgsm"}
    assert all(pgd[e] <= fgsm[e] + 0.02 for e in pgd)


def test_every_attack_reported_with_required_fields(result) -> None:  # type: ignore[no-untyped-def]
    res, _ = result
    names = {r.attack for r in res.attacks}
    assert {"fgsm", "pgd", "apgd-ce", "apgd-dlr", "square", "hopskipjump"} <= names
    assert any(r.norm == "l2" and r.eps is not None for r in res.attacks)
    for r in res.attacks:
        assert 0.0 <= r.robust_accuracy <= 1.0 and 0.0 <= r.success_rate <= 1.0 and r.seconds >= 0
        assert (r.queries is not None) == (r.attack in ("square", "hopskipjump"))
    minimal = [r for r in res.attacks if r.eps is None and r.queries is None]
    assert {r.attack for r in minimal} >= {"deepfool"} and all(r.median_l2 for r in minimal)
    assert res.perturbation_l2 and all(v > 0 for vs in res.perturbation_l2.values() for v in vs)
    square = next(c for c in res.query_curves if c.attack == "square")
    assert square.success_rate == sorted(square.success_rate) and square.budgets[-1] == 200


def test_findings_carry_taxonomy_and_severity(result) -> None:  # type: ignore[no-untyped-def]
    res, examples = result
    by_id = {f.id: f for f in res.findings}
    f = by_id["MS-EVASION-001"]
    assert f.value is not None and f.severity == robustness_severity(f.value, res.clean_accuracy)
    assert f.severity.rank >= robustness_severity(0.79, 1.0).rank  # PGD at ε=0.1 costs the CNN over 20 points
    assert "AML.T0043.000" in f.atlas and f.owasp_ml == ["ML01:2023"]
    assert f.remediation
    assert "MS-EVASION-004" in by_id
    ranks = [f.severity.rank for f in res.findings]
    assert ranks == sorted(ranks, reverse=True)
    assert all(flag.passed for flag in res.sanity), [f for f in res.sanity if not f.passed]
    assert examples is not None and examples.clean.shape[1:] == (1, 8, 8)
    assert (examples.adv_pred != examples.true_labels).all()


def test_gate_fails_below_threshold(digits_model: TorchModel, small: Dataset) -> None:
    res, _ = assess(digits_model, small, AssessConfig(eps_linf=(0.1,), attacks=("pgd",), pgd_steps=5, fail_under=0.9))
    assert res.passed is False and res.gating["attack"] == "pgd"
    assert any(f.id == "MS-GATE-001" and f.threshold == 0.9 for f in res.findings)
    ok, _ = assess(digits_model, small, AssessConfig(eps_linf=(0.001,), attacks=("pgd",), pgd_steps=5, fail_under=0.5))
    assert ok.passed is True


class _Quantised(Model):
    """Rounds inputs to two levels before the CNN: gradients vanish, robustness is fake."""

    white_box = True

    def __init__(self, inner: TorchModel) -> None:
        super().__init__()
        self.inner, self.num_classes, self.input_shape = inner, inner.num_classes, inner.input_shape

    def _scores(self, x: Tensor) -> Tensor:
        return self.inner._scores(torch.round(x))


class _Noisy(_Quantised):
    """Adds fresh noise to every answer: a randomised defence."""

    def _scores(self, x: Tensor) -> Tensor:
        return self.inner._scores(x) + 0.5 * torch.randn(x.shape[0], self.num_classes)


class _Softmax(_Quantised):
    def _scores(self, x: Tensor) -> Tensor:
        return torch.softmax(self.inner._scores(x), dim=1)


class _Saturated(_Quantised):
    """Logits ×100, as defensive distillation's temperature leaves them: cross-entropy gradients underflow to zero."""

    def _scores(self, x: Tensor) -> Tensor:
        return 100 * self.inner._scores(x)


class _OneHot(torch.nn.Module):
    """A network that answers with a one-hot of its argmax, as deployed classifiers often do."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        return torch.nn.functional.one_hot(self.net(x).argmax(dim=1), 10).float()


class _FlakyEndpoint(_Quantised):
    """Fails once an attack has sent more than 5,000 queries, like an endpoint with a quota."""

    def _scores(self, x: Tensor) -> Tensor:
        if self.queries > 5000:
            raise ConnectionError("the endpoint closed the connection")
        return self.inner._scores(x)


def test_masked_gradients_make_the_verdict_untrusted(digits_model: TorchModel, small: Dataset) -> None:
    cfg = AssessConfig(eps_linf=(0.1,), attacks=("pgd", "square"), pgd_steps=5, square_queries=200)
    res, _ = assess(_Saturated(digits_model), small, cfg)
    failed = {f.name for f in res.sanity if not f.passed}
    assert {"zero-gradients", "black-box-beats-white-box"} <= failed
    assert res.verdict == "UNTRUSTED" and res.passed is False  # no --fail-under, yet no pass: exit 1
    sanity = [f for f in res.findings if f.id == "MS-SANITY-001"]
    assert sanity and all(f.severity.value == "high" for f in sanity)
    white = next(f for f in res.findings if f.id == "MS-EVASION-001")
    square = next(r for r in res.attacks if r.attack == "square")
    # PGD's figure is inflated by the masking; the finding must read as badly as Square's figure does.
    assert white.severity.rank >= robustness_severity(square.robust_accuracy, res.clean_accuracy).rank > 0
    assert "masked" in white.description
    allowed, _ = assess(_Saturated(digits_model), small, AssessConfig(**{**cfg.__dict__, "allow_untrusted": True}))
    assert allowed.verdict == "UNTRUSTED" and allowed.passed is True
    gated, _ = assess(
        _Saturated(digits_model), small, AssessConfig(**{**cfg.__dict__, "allow_untrusted": True, "fail_under": 0.9})
    )
    assert gated.verdict == "FAILED" and gated.passed is False  # the gate counts Square too


@pytest.mark.parametrize("masked", ["quantised", "one-hot"])
def test_model_without_gradients_gets_black_box_attacks_and_a_high_finding(
    digits_model: TorchModel, small: Dataset, masked: str
) -> None:
    model = (
        _Quantised(digits_model)
        if masked == "quantised"
        else TorchModel(_OneHot(digits_model.module), input_shape=(1, 8, 8), num_classes=10)
    )
    cfg = AssessConfig(
        eps_linf=(0.1,),
        attacks=("fgsm", "pgd", "apgd-ce", "deepfool", "square"),
        pgd_steps=5,
        apgd_steps=10,
        square_queries=100,
        fail_under=0.01,
    )
    res, _ = assess(model, small, cfg)
    assert {e.attack for e in res.errors} == {"fgsm", "pgd", "apgd-ce", "deepfool"}
    assert all(e.kind == "not-applicable" for e in res.errors)
    assert [r.attack for r in res.attacks] == ["square"]  # the black-box attack still ran
    unknown = next(f for f in res.findings if f.id == "MS-SANITY-002")
    assert unknown.severity.value == "high" and "deepfool" in unknown.description
    assert res.gating["attack"] == "square"
    assert res.verdict == "UNTRUSTED" and not res.passed


def test_black_box_only_run_on_a_model_without_gradients_is_not_untrusted(
    digits_model: TorchModel, small: Dataset
) -> None:
    """`--attacks square` on a quantised model: the gradient check must not crash, and masked gradients that no
    attack used do not make Square's figure untrustworthy."""
    cfg = AssessConfig(eps_linf=(0.1,), attacks=("square",), square_queries=50)
    res, _ = assess(_Quantised(digits_model), small, cfg)
    assert [r.attack for r in res.attacks] == ["square"] and res.errors == []
    assert "zero-gradients" in {f.name for f in res.sanity if not f.passed}
    assert res.verdict == "NO GATE" and res.passed


def test_square_on_one_hot_scores_is_untrusted(digits_model: TorchModel, small: Dataset) -> None:
    """One-hot outputs starve Square's margin as well as the gradients: its figure overstates robustness."""
    model = TorchModel(_OneHot(digits_model.module), input_shape=(1, 8, 8), num_classes=10)
    res, _ = assess(model, small, AssessConfig(eps_linf=(0.1,), attacks=("square",), square_queries=50))
    assert [r.attack for r in res.attacks] == ["square"] and res.errors == []
    assert {"zero-gradients", "label-like-scores"} <= {f.name for f in res.sanity if not f.passed}
    assert res.verdict == "UNTRUSTED" and not res.passed


def test_a_model_that_raises_inside_one_attack_gets_an_error_record(digits_model: TorchModel, small: Dataset) -> None:
    cfg = AssessConfig(
        eps_linf=(0.1,), attacks=("fgsm", "square", "hopskipjump"), square_queries=200, hsj_budgets=(30,), hsj_samples=4
    )
    res, _ = assess(_FlakyEndpoint(digits_model), small, cfg)
    (error,) = res.errors
    assert (error.attack, error.kind, error.error) == ("square", "error", "ConnectionError")
    assert "closed the connection" in error.message
    assert {r.attack for r in res.attacks} == {"fgsm", "hopskipjump"}  # the run went on
    finding = next(f for f in res.findings if f.id == "MS-ASSESS-001")
    assert finding.severity.value == "medium" and "square" in finding.description
    assert res.verdict == "NO GATE" and res.passed
    # With a threshold, a gate that lost Square at its budget saw only FGSM: it cannot pass.
    gated, _ = assess(_FlakyEndpoint(digits_model), small, AssessConfig(**{**cfg.__dict__, "fail_under": 0.0}))
    assert gated.verdict == "UNTRUSTED" and not gated.passed


def test_no_threshold_means_no_gate(result) -> None:  # type: ignore[no-untyped-def]
    res, _ = result
    assert res.verdict == "NO GATE" and res.passed and res.gating["fail_under"] is None
    assert res.gating["robust_accuracy"] is not None  # measured, just not decided on


def test_pgd_settings_reach_the_attack(digits_model: TorchModel, small: Dataset) -> None:
    cfg = AssessConfig(
        eps_linf=(0.1,),
        attacks=("pgd",),
        pgd_steps=4,
        pgd_step=0.25,
        pgd_step_relative=True,
        random_start=False,
        restarts=2,
    )
    res, _ = assess(digits_model, small, cfg)
    (pgd,) = res.attacks
    assert pgd.params["alpha"] == pytest.approx(0.025) and pgd.params["random_start"] is False
    assert pgd.params["restarts"] == 2 and pgd.params["steps"] == 4
    absolute, _ = assess(
        digits_model, small, AssessConfig(**{**cfg.__dict__, "pgd_step": 0.01, "pgd_step_relative": False})
    )
    assert absolute.attacks[0].params["alpha"] == 0.01


def test_sanity_flags_catch_randomness_and_probabilities(digits_model: TorchModel, small: Dataset) -> None:
    cfg = AssessConfig(eps_linf=(0.1,), attacks=("fgsm",))
    noisy, _ = assess(_Noisy(digits_model), small, cfg)
    assert "randomised-outputs" in {f.name for f in noisy.sanity if not f.passed}
    soft, _ = assess(_Softmax(digits_model), small, cfg)
    assert "probability-outputs" in {f.name for f in soft.sanity if not f.passed}


def test_black_box_model_gets_only_black_box_attacks(small: Dataset) -> None:
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    from modelshield.core.adapters import SklearnModel
    from modelshield.core.datasets import sklearn_dataset

    train = sklearn_dataset("digits", "train")
    with threadpool_limits(1):  # multi-threaded BLAS is far slower than one thread on this tiny fit
        clf = LogisticRegression(max_iter=300).fit(train.x.flatten(1).numpy(), train.y.numpy())
    model = SklearnModel(clf, input_shape=(1, 8, 8), num_classes=10)
    cfg = AssessConfig(eps_linf=(0.1,), square_queries=100, hsj_budgets=(40,), hsj_samples=5)
    res, _ = assess(model, small, cfg)
    assert {r.attack for r in res.attacks} == {"square", "hopskipjump"}
    square = next(r for r in res.attacks if r.attack == "square")
    assert square.queries is not None and 0 < square.queries <= 100 * len(small) + len(small)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(eps_linf=(-0.1,)), "positive"),
        (dict(attacks=("pgd", "nope")), "unknown attacks"),
        (dict(fail_under=1.5), "fraction"),
        (dict(pgd_steps=0), "--steps"),
        (dict(restarts=0), "--restarts"),
        (dict(pgd_step=-1.0), "--pgd-step"),
        (dict(eps_linf=(0.1, 2.0)), r"--eps \[2.0\] exceed the input range \[0, 1\]"),
        (dict(eps_linf=(0.1,), gating_eps=1.5), r"--eps \[1.5\] exceed"),
    ],
)
def test_bad_config_is_refused(digits_model: TorchModel, small: Dataset, kwargs: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        assess(digits_model, small, AssessConfig(**kwargs))


def test_bad_data_is_refused(digits_model: TorchModel, small: Dataset) -> None:
    nan = small.x.clone()
    nan[0, 0, 0, 0] = float("nan")
    with pytest.raises(InputError, match="NaN"):
        assess(digits_model, Dataset(nan, small.y, "nan"))
    with pytest.raises(InputError, match="labels"):
        assess(digits_model, Dataset(small.x, small.y + 10, "labels"))
    with pytest.raises(InputError, match="shape"):
        assess(digits_model, Dataset(small.x.flatten(1), small.y, "flat"))


def test_empty_data_is_refused(digits_model: TorchModel, small: Dataset) -> None:
    with pytest.raises(InputError, match="empty"):
        assess(digits_model, Dataset(small.x[:0], small.y[:0], "empty"))


def test_budget_check_catches_an_attack_that_cheats(result, digits_model: TorchModel, small: Dataset) -> None:  # type: ignore[no-untyped-def]
    from modelshield.assess.sanity import SanityContext, budget_respected
    from modelshield.attacks.evasion import PGD

    res, _ = result
    honest = PGD(eps=0.1, steps=3)
    x_adv = honest(digits_model, small.x, small.y)
    ok = budget_respected(SanityContext(digits_model, small.x, small.y, res, [(honest, small.x, x_adv)]))
    assert ok.passed
    cheat = (small.x + 0.2).clamp(0, 1)  # claims ε = 0.1 but moves pixels by 0.2
    bad = budget_respected(SanityContext(digits_model, small.x, small.y, res, [(honest, small.x, cheat)]))
    assert not bad.passed and "pgd/linf@0.1" in bad.detail


def test_numbers_do_not_depend_on_the_batch_size(digits_model: TorchModel, small: Dataset) -> None:
    """Batches are an implementation detail: per-sample state and randomness survive any split."""
    cfg = dict(
        eps_linf=(0.1,),
        attacks=("pgd", "square", "hopskipjump"),
        pgd_steps=5,
        square_queries=100,
        hsj_budgets=(40,),
        hsj_samples=12,
        seed=3,
    )
    whole, _ = assess(digits_model, small, AssessConfig(**cfg, batch_size=512))  # type: ignore[arg-type]
    split, _ = assess(digits_model, small, AssessConfig(**cfg, batch_size=7))  # type: ignore[arg-type]
    key = [(r.attack, r.eps, r.robust_accuracy, r.queries, r.verified) for r in whole.attacks]
    assert key == [(r.attack, r.eps, r.robust_accuracy, r.queries, r.verified) for r in split.attacks]
    assert whole.query_curves == split.query_curves


class _SmallBatches(torch.nn.Module):
    """A network that, like many deployed ones, refuses batches larger than it was exported for."""

    def __init__(self, net: torch.nn.Module, limit: int) -> None:
        super().__init__()
        self.net, self.limit = net, limit

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[0] > self.limit:
            raise ValueError("batch too big")
        return self.net(x)


def test_a_model_taking_small_batches_is_assessed_at_that_batch_size(digits_model: TorchModel, small: Dataset) -> None:
    """Every query the assessment makes (sanity probes included) respects --batch-size."""
    model = TorchModel(_SmallBatches(digits_model.module, 16), input_shape=(1, 8, 8), num_classes=10)
    cfg = AssessConfig(attacks=("fgsm", "pgd", "square"), eps_linf=(0.1,), pgd_steps=3, square_queries=20)
    res, _ = assess(model, small, AssessConfig(**{**cfg.__dict__, "batch_size": 16}))
    assert not res.errors and {r.attack for r in res.attacks} == {"fgsm", "pgd", "square"}
    assert {f.name for f in res.sanity} >= {"zero-gradients", "randomised-outputs", "probability-outputs"}
    with pytest.raises(ModelCallError, match="batch too big") as caught:
        assess(model, small, cfg)
    assert "--batch-size" in caught.value.hint


def test_data_the_model_gets_all_wrong_raises_no_false_sanity_failure(digits_model: TorchModel, small: Dataset) -> None:
    """With no correctly classified sample, minimum-norm attacks have nothing to fool: not a sanity failure."""
    wrong = Dataset(small.x[:30], (digits_model.predict(small.x[:30]) + 1) % 10, "wrong")
    res, _ = assess(digits_model, wrong, AssessConfig(attacks=("fgsm", "cw", "deepfool"), eps_linf=(0.1,), cw_steps=5))
    assert res.clean_accuracy == 0.0 and {r.attack for r in res.attacks} == {"fgsm", "cw-l2", "deepfool"}
    assert all(f.passed for f in res.sanity), [f.detail for f in res.sanity if not f.passed]


class _LabelsOnly(_Quantised):
    """A prediction API that answers labels only (no scores), as many deployed endpoints do."""

    white_box = False
    has_scores = False

    def _labels(self, x: Tensor) -> Tensor:
        self.queries += int(x.shape[0])
        return self.inner._scores(x).argmax(dim=1)


def test_square_on_a_labels_only_model_is_recorded_as_not_applicable(small: Dataset, digits_model: TorchModel) -> None:
    """Square was asked for but has no scores to search: an error record says so, and it is not gradient masking."""
    cfg = AssessConfig(eps_linf=(0.1,), attacks=("square", "hopskipjump"), hsj_budgets=(30,), hsj_samples=4)
    res, _ = assess(_LabelsOnly(digits_model), small, cfg)
    (error,) = res.errors
    assert (error.attack, error.kind, error.error) == ("square", "not-applicable", "CapabilityError")
    assert "labels only" in error.message
    assert [r.attack for r in res.attacks] == ["hopskipjump"]
    assert "MS-SANITY-002" not in {f.id for f in res.findings}  # not "white-box robustness unknown"
    assert res.verdict == "NO GATE" and res.passed


def test_budgets_tiny_against_the_input_range_are_a_finding(digits_model: TorchModel, small: Dataset) -> None:
    """Pixels in 0..255 with ε = 0.1: every report carries the units note as a finding, not only the terminal."""
    raw_model = TorchModel(digits_model.module, input_shape=(1, 8, 8), num_classes=10, bounds=(0.0, 255.0), std=255.0)
    raw = Dataset(small.x[:40] * 255, small.y[:40], "raw pixels", (0.0, 255.0))
    res, _ = assess(raw_model, raw, AssessConfig(eps_linf=(0.1,), attacks=("fgsm",)))
    (finding,) = [f for f in res.findings if f.id == "MS-SANITY-003"]
    assert finding.severity.value == "medium" and "0.04% of that range" in finding.description
    assert finding.value == pytest.approx(0.1 / 255)
    scaled, _ = assess(
        digits_model, Dataset(small.x[:40], small.y[:40], "scaled"), AssessConfig(eps_linf=(0.1,), attacks=("fgsm",))
    )
    assert "MS-SANITY-003" not in {f.id for f in scaled.findings}
