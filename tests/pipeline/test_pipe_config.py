"""pipeline.yaml mistakes are one line naming the place, exit 2; CI templates validate against the published
GitHub Actions and GitLab CI schemas (as check-jsonschema vendors them)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml

from modelshield.core.errors import InputError
from modelshield.pipeline import parse_pipeline

if TYPE_CHECKING:
    from conftest import RunMain

GOOD = {
    "name": "p",
    "artifacts": {"data": "d.csv", "ref": "r.csv"},
    "stages": [
        {"name": "ingest", "kind": "ingest", "inputs": {"data": "data", "reference": "ref"},
         "outputs": {"accepted": "clean"}, "policy": {"max_quarantined_fraction": 0.05}},
        {"name": "scan", "kind": "scan", "inputs": {"x": "clean"}},
    ],
}  # fmt: skip


def _with(**change: object) -> dict[str, object]:
    doc = yaml.safe_load(yaml.safe_dump(GOOD))
    stage = doc["stages"][0]
    stage.update(change)
    return doc  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (
            _with(policy={"max_quarantined_fraction": 2}),
            "stages[0]: policy.max_quarantined_fraction: Input should be less than or equal to 1",
        ),
        (_with(policy={"max_quarantine": 0.1}), "stages[0]: policy.max_quarantine: Extra inputs are not permitted"),
        (_with(kind="deploy-now"), "stages[0].kind: Input should be"),
        (_with(inputs={"data": "data"}), "stages[0]: kind ingest takes inputs ['data', 'reference'], got ['data']"),
        (_with(inputs={"data": "nope", "reference": "ref"}), "inputs ['nope'] are neither artifacts"),
        (_with(outputs={"accepted": "data"}), "output 'data' is already an artefact"),
        (_with(name="scan"), "the name 'scan' is used twice"),
    ],
)
def test_mistakes_are_one_line_naming_the_place(doc: dict[str, object], message: str) -> None:
    with pytest.raises(InputError) as info:
        parse_pipeline(doc, "pipeline.yaml")
    text = info.value.diagnostics()
    assert message in text and "\n" not in text and text.startswith("pipeline.yaml: ")


def test_deploy_needs_a_register_stage_before_it() -> None:
    doc = yaml.safe_load(yaml.safe_dump(GOOD))
    doc["stages"].append({"name": "deploy", "kind": "deploy"})
    with pytest.raises(InputError, match="a deploy stage promotes what a register stage before it registered"):
        parse_pipeline(doc, "pipeline.yaml")


def test_cli_bad_input_exits_2(tmp_path: Path, run_main: RunMain) -> None:
    bad = tmp_path / "pipeline.yaml"
    bad.write_text("name: p\nstages: [\n")
    code, _, err = run_main("pipeline", "run", str(bad))
    assert code == 2 and "is not valid YAML at line" in err
    code, _, err = run_main("pipeline", "run", str(tmp_path / "missing.yaml"))
    assert code == 2 and "does not exist" in err
    code, _, err = run_main("pipeline", "run", "--plant", "pickle", str(bad))
    assert code == 2 and "--plant goes with --demo" in err


@pytest.mark.parametrize(("template", "schema"), [("github", "github-workflows"), ("gitlab", "gitlab-ci")])
def test_ci_templates_validate_against_the_published_schemas(
    template: str, schema: str, tmp_path: Path, run_main: RunMain
) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    ruamel = pytest.importorskip("ruamel.yaml")
    import json
    from importlib.util import find_spec

    spec = find_spec("check_jsonschema")  # located, not imported: the package's CLI imports take seconds
    if spec is None or spec.origin is None:
        pytest.skip("check-jsonschema (which vendors the CI schemas) is not installed")
    vendored = Path(spec.origin).parent / "builtin_schemas/vendor" / f"{schema}.json"

    out = tmp_path / "ci.yml"
    code, stdout, _ = run_main("pipeline", "init", "--template", template, "--out", str(out))
    assert code == 0 and f"wrote {out}" in stdout
    doc = ruamel.YAML(typ="safe").load(out.read_text())  # YAML 1.2, as the CIs read it: `on:` is a key, not True
    published = json.loads(vendored.read_text())
    jsonschema.validators.validator_for(published)(published).validate(doc)
    assert "modelshield pipeline run pipeline.yaml" in out.read_text()
    code, _, err = run_main("pipeline", "init", "--template", template, "--out", str(out))
    assert code == 2 and "already exists" in err
