"""`modelshield monitor` through the real entry point: the drift verb's JSON contract and its exit codes
(0 no drift, 1 drift, 2 bad input on one line), on CSV and Parquet files of scikit-learn's wine data."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_wine

RunMain = Callable[..., tuple[int, str, str]]

CONTRACT = {
    "type": "object",
    "required": ["drift", "features"],
    "properties": {
        "drift": {"type": "boolean"},
        "features": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["feature", "test", "statistic", "p_value", "drift"],
                "properties": {
                    "feature": {"type": "string"},
                    "test": {"enum": ["ks", "chi2", "psi", "js", "wasserstein", "missing"]},
                    "statistic": {"type": "number"},
                    "p_value": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
                    "drift": {"type": "boolean"},
                },
            },
        },
    },
}


@pytest.fixture(scope="module")
def tables(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Wine, shuffled and halved: reference.csv, same.parquet (the other half), shifted.parquet (alcohol +1.5 %
    by volume, the other features as they were) and a CSV with a text column."""
    folder = tmp_path_factory.mktemp("wine")
    bunch = load_wine()
    frame = pd.DataFrame(bunch.data, columns=bunch.feature_names)
    frame["cultivar"] = np.array(["barolo", "grignolino", "barbera"])[bunch.target]
    frame = frame.sample(frac=1.0, random_state=0).reset_index(drop=True)
    ref, cur = frame.iloc[:89], frame.iloc[89:].copy()
    paths = {name: folder / name for name in ("reference.csv", "same.parquet", "shifted.parquet", "text.csv")}
    ref.to_csv(paths["reference.csv"], index=False)
    cur.to_parquet(paths["same.parquet"])
    cur["alcohol"] += 1.5
    cur.to_parquet(paths["shifted.parquet"])
    cur.assign(alcohol="not measured").to_csv(paths["text.csv"], index=False)  # text; "n/a" would read as missing
    return paths


def _drift(run_main: RunMain, *args: str) -> tuple[int, dict[str, Any], str]:
    code, out, err = run_main("monitor", "drift", *args, "--format", "json")
    return code, (json.loads(out) if out.strip() else {}), err


def test_contract_and_exit_codes(run_main: RunMain, tables: dict[str, Path]) -> None:
    ref = str(tables["reference.csv"])
    code, report, _ = _drift(run_main, "--reference", ref, "--current", str(tables["same.parquet"]))
    jsonschema.validate(report, CONTRACT)
    assert code == 0 and report["drift"] is False and len(report["features"]) == 14

    code, report, _ = _drift(run_main, "--reference", ref, "--current", str(tables["shifted.parquet"]))
    jsonschema.validate(report, CONTRACT)
    assert code == 1 and report["drift"] is True
    assert [f["feature"] for f in report["features"] if f["drift"]] == ["alcohol"]
    cultivar = next(f for f in report["features"] if f["feature"] == "cultivar")
    assert cultivar["test"] == "chi2" and 0 <= cultivar["p_value"] <= 1


def test_saved_sketch_gives_the_same_answer(run_main: RunMain, tables: dict[str, Path], tmp_path: Path) -> None:
    sketch = tmp_path / "ref.sketch.json"
    code, out, _ = run_main("monitor", "sketch", "--reference", str(tables["reference.csv"]), "--out", str(sketch))
    assert code == 0 and "89 rows × 14 features" in out and "sha256:" in out
    shifted = str(tables["shifted.parquet"])
    code_a, from_sketch, _ = _drift(run_main, "--reference", str(sketch), "--current", shifted)
    code_b, from_data, _ = _drift(run_main, "--reference", str(tables["reference.csv"]), "--current", shifted)
    assert code_a == code_b == 1
    assert from_sketch["features"] == from_data["features"]

    code, out, _ = run_main("monitor", "drift", "--reference", str(sketch), "--current", shifted)
    assert code == 1 and "alcohol" in out and "DRIFT" in out  # the human table


def test_bad_input_is_one_line_exit_2(run_main: RunMain, tables: dict[str, Path], tmp_path: Path) -> None:
    ref, same = str(tables["reference.csv"]), str(tables["same.parquet"])
    sketch = tmp_path / "ref.sketch.json"
    run_main("monitor", "sketch", "--reference", ref, "--out", str(sketch))
    data = json.loads(sketch.read_text())
    data["rows"] += 1
    tampered = tmp_path / "tampered.sketch.json"
    tampered.write_text(json.dumps(data))
    not_a_table = tmp_path / "weights.bin"
    not_a_table.write_bytes(bytes(range(256)) * 4)
    cases = [
        (["--reference", str(tmp_path / "missing.csv"), "--current", same], "does not exist"),
        (["--reference", str(tampered), "--current", same], "digest"),
        (["--reference", ref, "--current", str(tables["text.csv"])], "alcohol"),
        (["--reference", ref, "--current", str(not_a_table)], "not a CSV"),
        (["--reference", ref, "--current", same, "--alpha", "2"], "alpha"),
    ]
    for args, words in cases:
        code, out, err = run_main("monitor", "drift", *args, "--format", "json")
        assert code == 2 and out == "", args
        assert len(err.strip().splitlines()) == 1 and err.startswith("error: ") and words in err, err
