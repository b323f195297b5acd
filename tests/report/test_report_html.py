"""report.html: one self-contained, escaped page that degrades gracefully when data is missing."""

from __future__ import annotations

import base64
import re

import numpy as np
import pytest

from modelshield.assess.results import AssessmentResult
from modelshield.core.errors import InputError
from modelshield.report import RENDERERS, ExampleGrid

ALLOWED_LINKS = (
    "https://atlas.mitre.org/techniques/",
    "https://owasp.org/www-project-machine-learning-security-top-10/",
)
PLOT = "<figure><h3>"


def _html(result: AssessmentResult, examples: ExampleGrid | None = None) -> str:
    return RENDERERS["html"].render(result, examples)


def _assert_self_contained(html: str) -> None:
    lowered = html.lower()
    assert "<script" not in lowered and "<link" not in lowered and "@import" not in lowered and "url(" not in lowered
    for attribute, target in re.findall(r'\b(src|href)="([^"]*)"', html):
        if attribute == "src":
            assert target.startswith("data:image/png;base64,")
        else:
            assert target.startswith("#") or target.startswith(ALLOWED_LINKS), target
    for url in re.findall(r"https?://[^\s\"'<>]+", html):
        assert url.startswith(ALLOWED_LINKS), url


@pytest.fixture(scope="module")
def full_html(image_result: AssessmentResult, examples: ExampleGrid) -> str:
    return _html(image_result, examples)


def test_full_report(full_html: str, image_result: AssessmentResult, examples: ExampleGrid) -> None:
    html = full_html
    _assert_self_contained(html)
    assert html.count(PLOT) == 3
    for uri in re.findall(r'src="data:image/png;base64,([^"]+)"', html):
        assert base64.b64decode(uri).startswith(b"\x89PNG")
    assert html.count('alt="amplified perturbation"') == len(examples.clean)
    assert html.count("(fooled)") == 3
    assert "FAILED" in html and image_result.command in html
    assert 'href="https://atlas.mitre.org/techniques/AML.T0043.000"' in html
    assert "1 of 2 sanity checks failed" in html
    assert "450,000" in html


def test_findings_sorted_by_severity(full_html: str) -> None:
    badges = re.findall(r'<span class="badge sev-(\w+)">', full_html)
    assert badges == ["critical", "critical", "high", "medium", "low", "info"]


def test_user_text_is_escaped(tabular_result: AssessmentResult, examples: ExampleGrid) -> None:
    hostile_model = {"name": "<script>alert(1)</script>", "path": '"><img src=x>'}
    hostile = tabular_result.model_copy(update={"model": hostile_model})
    names = [str(i) for i in range(9)] + ["<b onmouseover=alert(2)>nine</b>"]
    grid = ExampleGrid(**{**examples.__dict__, "class_names": names})
    html = _html(hostile, grid)
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img src=x>" not in html and "<b onmouseover" not in html
    _assert_self_contained(html)


def test_tabular_report_leaves_out_what_it_cannot_draw(tabular_result: AssessmentResult) -> None:
    html = _html(tabular_result)
    _assert_self_contained(html)
    assert html.count(PLOT) == 1
    assert 'id="examples"' not in html and "L2 budget" not in html


def test_bare_result_renders(image_result: AssessmentResult) -> None:
    bare = AssessmentResult(version="0.1.0", created="2025-11-25", model={}, data={}, clean_accuracy=0.9)
    html = _html(bare)
    assert PLOT not in html
    assert "NO GATE" in html and "PASSED" not in html
    assert "No findings." in html and "No attacks were run." in html


def test_rgb_examples(tabular_result: AssessmentResult) -> None:
    clean = np.full((2, 3, 4, 4), 0.5)
    grid = ExampleGrid(
        clean=clean,
        adversarial=clean,
        true_labels=np.array([0, 1]),
        clean_pred=np.array([0, 1]),
        adv_pred=np.array([0, 1]),
        attack="pgd",
        eps=None,
        bounds=(0.0, 1.0),
    )
    html = _html(tabular_result, grid)
    assert html.count('alt="amplified perturbation"') == 2 and "(fooled)" not in html


@pytest.mark.parametrize(
    "change",
    [
        {"adversarial": np.zeros((6, 1, 8, 7))},
        {"adv_pred": np.zeros(5)},
        {"clean": np.zeros((6, 8, 8))},
        {"bounds": (1.0, 0.0)},
    ],
)
def test_example_grid_rejects_inconsistent_arrays(examples: ExampleGrid, change: dict) -> None:
    with pytest.raises(InputError):
        ExampleGrid(**{**examples.__dict__, **change})


def test_untrusted_leads_the_page_and_lists_errors(untrusted_result: AssessmentResult) -> None:
    html = _html(untrusted_result)
    _assert_self_contained(html)
    verdict = html[html.index('<section id="verdict">') : html.index('<section id="sanity">')]
    assert '<div class="verdict warn">' in verdict and '<div class="stamp">UNTRUSTED</div>' in verdict
    assert "Worst finding:</strong> HIGH MS-SANITY-002" in verdict
    errors = html[html.index('id="errors"') :]
    assert errors.count("not applicable") == 2 and "TimeoutError: the endpoint did not answer" in errors


def test_single_eps_attacks_are_points_and_the_legend_matches_the_colours(
    image_result: AssessmentResult, examples: ExampleGrid
) -> None:
    from matplotlib.figure import Figure

    from modelshield.report import plots

    drawn: list = []
    original = Figure.savefig
    try:
        Figure.savefig = lambda fig, *a, **k: (drawn.append(fig), original(fig, *a, **k))[1]  # type: ignore[method-assign]
        plots.robust_accuracy_plot(image_result)
    finally:
        Figure.savefig = original  # type: ignore[method-assign]
    linf = drawn[0].axes[0]
    square = next(line for line in linf.get_lines() if line.get_label().startswith("square"))
    assert list(square.get_xdata()) == [8 / 255] and square.get_linestyle() == "None"
    assert square.get_label() == "square (ε = 8/255 only)"
    pgd = next(line for line in linf.get_lines() if line.get_label() == "pgd")
    assert list(pgd.get_xdata())[0] == 0.0 and len(pgd.get_xdata()) == 4
    page = _html(image_result, examples)
    assert "white is unchanged" in page and "grey is unchanged" not in page


def test_unchanged_pixels_are_white_in_the_perturbation_tile(examples: ExampleGrid) -> None:
    import io

    from matplotlib.image import imread

    from modelshield.report import plots

    adversarial = examples.clean.copy()
    adversarial[:, 0, 0, 0] += 0.03  # one pixel brightened, the rest unchanged
    grid = ExampleGrid(**{**examples.__dict__, "adversarial": adversarial})
    tiles, _ = plots.example_tiles(grid)
    rgba = imread(io.BytesIO(base64.b64decode(tiles[0].perturbation.split(",", 1)[1])))
    assert (rgba[1:, 1:, :3] > 0.95).all()  # white where δ = 0, as the caption says
    assert rgba[0, 0, 0] > 0.3 and rgba[0, 0, 2] < 0.3  # red where the pixel got brighter
