"""The --privacy and --poisoning sections: in report.json (valid against the schema), report.html and report.md."""

from __future__ import annotations

import base64
import io
import json
import re
from importlib.resources import files

import numpy as np
import pytest
from jsonschema import Draft202012Validator
from matplotlib.image import imread
from sklearn.metrics import roc_curve

from modelshield.assess.results import AssessmentResult, PoisoningRecord, PrivacyRecord, RocCurve
from modelshield.report import RENDERERS

SCHEMA = json.loads(files("modelshield.report").joinpath("schemas/report.schema.json").read_text())


def _roc(model: str, shift: float) -> RocCurve:
    rng = np.random.default_rng(0)
    scores = np.r_[rng.normal(shift, 1, 300), rng.normal(0, 1, 300)]
    fpr, tpr, _ = roc_curve(np.r_[np.ones(300), np.zeros(300)], scores)
    return RocCurve(attack="loss", model=model, fpr=fpr.tolist(), tpr=tpr.tolist())


@pytest.fixture(scope="module")
def filled(image_result: AssessmentResult) -> AssessmentResult:
    privacy = [
        PrivacyRecord.model_validate(
            {
                "attack": "loss",
                "model": "baseline",
                "epsilon": None,
                "auc": 0.81,
                "tpr_at_fpr_0.001": 0.043,
                "tpr_at_fpr_0.01": 0.12,
                "epsilon_lower_bound": 1.37,
                "delta": 1e-5,
            }
        ),
        PrivacyRecord(
            attack="loss",
            model="dp",
            epsilon=3.0,
            auc=0.51,
            tpr_at_fpr_0001=0.0,
            tpr_at_fpr_001=0.013,
            epsilon_lower_bound=0.0,
            delta=1e-5,
        ),
    ]
    poisoning = [
        PoisoningRecord(
            attack="badnets",
            poison_rate=0.1,
            clean_accuracy=0.96,
            attack_success_rate=0.99,
            defence="spectral-signatures",
            defended_attack_success_rate=0.04,
            defended_clean_accuracy=0.95,
            detection_precision=0.91,
            detection_recall=0.97,
            detection_f1=0.94,
        ),
        PoisoningRecord(
            attack="random-flip <b>",
            poison_rate=0.2,
            clean_accuracy=0.88,
            attack_success_rate=0.12,
            defence=None,
        ),
    ]
    # the evasion numbers are dropped so each render draws only the ROC plot
    return image_result.model_copy(
        update={
            "attacks": [],
            "query_curves": [],
            "perturbation_l2": {},
            "privacy": privacy,
            "privacy_roc": [_roc("baseline", 1.5), _roc("dp", 0.05)],
            "poisoning": poisoning,
        }
    )


@pytest.fixture(scope="module")
def html(filled: AssessmentResult) -> str:
    return RENDERERS["html"].render(filled)


def test_both_sections_validate_against_the_schema_and_round_trip(filled: AssessmentResult) -> None:
    document = json.loads(RENDERERS["json"].render(filled))
    Draft202012Validator(SCHEMA).validate(document)
    assert document["privacy"][0]["tpr_at_fpr_0.001"] == 0.043
    assert set(document["privacy"][1]) >= {
        "attack",
        "model",
        "epsilon",
        "auc",
        "tpr_at_fpr_0.001",
        "tpr_at_fpr_0.01",
        "epsilon_lower_bound",
    }
    assert document["poisoning"][1]["defence"] is None
    assert AssessmentResult.model_validate(document) == filled


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [("privacy", "model", "twin"), ("privacy", "auc", 1.2), ("poisoning", "detection_f1", -0.1)],
)
def test_schema_rejects_bad_rows(filled: AssessmentResult, section: str, key: str, value: object) -> None:
    document = json.loads(RENDERERS["json"].render(filled))
    document[section][0][key] = value
    assert not Draft202012Validator(SCHEMA).is_valid(document)


def test_a_report_without_them_leaves_both_sections_out(filled: AssessmentResult) -> None:
    plain = filled.model_copy(update={"privacy": [], "privacy_roc": [], "poisoning": []})
    html = RENDERERS["html"].render(plain)
    assert 'id="privacy"' not in html and 'id="poisoning"' not in html
    assert "Membership" not in RENDERERS["markdown"].render(plain)


def test_html_shows_the_privacy_table_and_a_log_scale_roc(html: str) -> None:
    section = html[html.index('id="privacy"') : html.index('id="poisoning"')]
    assert "none (not private)" in section and ">1.37<" in section and "4.3%" in section
    uri = re.search(r'<img src="data:image/png;base64,([^"]+)" alt="Membership-inference ROC', section)
    assert uri is not None
    pixels = imread(io.BytesIO(base64.b64decode(uri.group(1))), format="png")
    assert pixels.shape[0] > 300 and pixels[..., :3].std() > 0.05  # a drawn figure, not a blank canvas


def test_html_shows_the_poisoning_table_escaped(html: str) -> None:
    section = html[html.index('id="poisoning"') :]
    assert "spectral-signatures" in section and "99.0%" in section and "0.94" in section
    assert "random-flip &lt;b&gt;" in section and "<b>" not in section.split("</table>")[0]


def test_html_marks_a_lower_bound_above_the_accountant(filled: AssessmentResult) -> None:
    broken = filled.model_copy(deep=True)
    broken.privacy[1].epsilon_lower_bound = 4.2
    broken.privacy_roc = []
    html = RENDERERS["html"].render(broken)
    assert 'class="n bad">4.20<' in html


def test_markdown_lists_both_tables(filled: AssessmentResult) -> None:
    text = RENDERERS["markdown"].render(filled)
    assert "| loss | dp | 3.00 | 0.00 | 0.510 | 0.0% | 1.3% |" in text
    assert "| loss | baseline | — | 1.37 | 0.810 |" in text
    assert "| badnets | 10.0% | 96.0% | 99.0% | spectral-signatures | 95.0% | 4.0% | 91.0% / 97.0% / 0.94 |" in text
    assert "random-flip <b>" not in text
