"""`RemoteModel` against the demo gateway in a child process, whose guard abstains on the inputs it flags: with
``abstentions="count"`` an abstention is label -1 and counted (never an attack's success), by default it is a
one-line error, and `modelshield assess` on the guarded endpoint finishes and says how many queries it withheld."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from modelshield.attacks.losses import is_adversarial
from modelshield.core.adapters import RemoteModel
from modelshield.core.adapters.remote import ABSTAIN
from modelshield.core.datasets import sklearn_dataset
from modelshield.core.errors import RemoteModelError

RunMain = Callable[..., tuple[int, str, str]]  # the root conftest's run_main fixture


@pytest.fixture(scope="module")
def gateway(guarded_demo_gateway: tuple[str, str]) -> tuple[str, str]:
    return guarded_demo_gateway


def _remote(gateway: tuple[str, str], **kwargs: object) -> RemoteModel:
    url, key = gateway
    return RemoteModel(url, input_shape=(1, 8, 8), num_classes=10, headers={"X-API-Key": key}, **kwargs)  # type: ignore[arg-type]


def test_abstentions_are_counted_as_label_minus_one(gateway: tuple[str, str]) -> None:
    test = sklearn_dataset("digits", "test", seed=0)
    model = _remote(gateway, abstentions="count", batch_size=64)
    assert model.labels_from_scores
    labels = model.predict(test.x)
    withheld = labels == ABSTAIN
    # the guard flags about 6 % of clean test digits at its 5 % false-positive target
    assert 0 < int(withheld.sum()) == model.abstained < 0.15 * len(test)
    assert not model.labels_from_scores  # attacks now confirm a success with predict
    assert float((labels[~withheld] == test.y[~withheld]).float().mean()) > 0.8
    assert not is_adversarial(labels, test.y, False)[withheld].any()  # an abstention is never a success
    scores = model.logits(test.x[:64])  # to a score-based attack: the uniform answer
    rows = labels[:64] == ABSTAIN
    assert torch.allclose(scores[rows], torch.full_like(scores[rows], -torch.log(torch.tensor(10.0))))
    model.close()


def test_by_default_an_abstention_is_a_one_line_error(gateway: tuple[str, str]) -> None:
    test = sklearn_dataset("digits", "test", seed=0)
    model = _remote(gateway, batch_size=225)
    with pytest.raises(RemoteModelError, match=r"abstained on \d+ of 225 inputs .*abstentions='count'") as info:
        model.predict(test.x)
    assert "\n" not in str(info.value) and gateway[1] not in str(info.value)
    model.close()


def test_assess_on_the_guarded_endpoint_reports_the_abstentions(
    gateway: tuple[str, str], run_main: RunMain, tmp_path: Path
) -> None:
    url, key = gateway
    out = tmp_path / "report"
    code, stdout, stderr = run_main(
        "assess", "--model", url, "--header", f"X-API-Key: {key}", "--data", "sklearn:digits", "--samples", "40",
        "--attacks", "square", "--queries", "20", "--eps", "0.2", "--out", str(out),
    )  # fmt: skip
    assert code == 0, stderr
    report = json.loads((out / "report.json").read_text())
    abstained = report["model"]["abstained"]
    assert abstained > 0 and {a["attack"] for a in report["attacks"]} == {"square"} and not report["errors"]
    (finding,) = [f for f in report["findings"] if f["id"] == "MS-ASSESS-002"]
    assert finding["value"] == abstained and f"abstained on {abstained} queries" in finding["description"]
    square = report["attacks"][0]
    assert square["claimed"] == square["verified"]  # claims are confirmed with predict, where -1 is no success
    assert key not in (out / "report.json").read_text()
