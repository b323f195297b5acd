"""Hierarchy files: what they describe is what the release uses; every mistake is one line naming the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from anon_tables import ADULT_QI, EDUCATION_YAML, adult_table

from modelshield.core.errors import InputError, MissingFileError
from modelshield.privacy.anonymize import Criteria, IntervalHierarchy, anonymize_frame, load_hierarchies


def _load(tmp_path: Path, text: str) -> dict:
    path = tmp_path / "h.yaml"
    path.write_text(text, encoding="utf-8")
    return load_hierarchies(path)


def test_tree_and_intervals_are_read(tmp_path: Path) -> None:
    found = _load(tmp_path, EDUCATION_YAML)
    tree = found["education"]
    assert tree.path("Masters") == ("Masters", "Graduate", "Higher", "*")
    assert tree.lca("Masters", "Bachelors") == "Higher" and tree.leaf_count("School") == 9
    ages = found["age"]
    assert isinstance(ages, IntervalHierarchy) and ages.height == 5
    low, high = ages.bounds(np.array([37.0]), 2)
    assert (low[0], high[0]) == (30.0, 39.0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("age: [1, 2\n", "not valid YAML at line"),
        ("- a\n- b\n", "expected a mapping"),
        ("age: {type: interval, widths: [5, 7]}\n", "each a multiple of the one before"),
        ("age: {type: interval}\n", "needs widths"),
        ('edu: {"*": {A: [x, y], B: [y]}}\n', "the label 'y' appears twice"),
        ('edu: {"*": [a], other: [b]}\n', "give one root mapping"),
        ('edu: {"*": {A: 3}}\n', "give a mapping or a list"),
    ],
)
def test_mistakes_are_one_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(InputError) as caught:
        _load(tmp_path, text)
    line = caught.value.diagnostics()
    assert message in line and "h.yaml" in line and "\n" not in line


def test_a_value_missing_from_the_tree_is_named(tmp_path: Path) -> None:
    found = _load(tmp_path, 'education: {"*": {School: [HS-grad, 11th]}}\n')
    with pytest.raises(InputError, match="the hierarchy of 'education' has no leaf") as caught:
        anonymize_frame(adult_table(), ADULT_QI, Criteria(5), hierarchies=found)
    assert "\n" not in caught.value.diagnostics()
    with pytest.raises(MissingFileError):
        load_hierarchies(tmp_path / "absent.yaml")


def test_lattice_uses_the_levels_and_respects_the_suppression_limit(tmp_path: Path) -> None:
    adult = adult_table()
    found = _load(tmp_path, EDUCATION_YAML)
    qi = ["age", "sex", "education"]
    strict, none_left_out = anonymize_frame(adult, qi, Criteria(10), hierarchies=found, algorithm="lattice")
    loose, some_left_out = anonymize_frame(
        adult, qi, Criteria(10), hierarchies=found, algorithm="lattice", max_suppression=0.05
    )
    assert none_left_out["suppressed_rows"] == 0 and len(strict) == len(adult)
    assert (
        0 < some_left_out["suppressed_rows"] <= 0.05 * len(adult)
        and len(loose) == len(adult) - some_left_out["suppressed_rows"]
    )
    # a larger feasible set cannot make the optimum worse
    assert some_left_out["information_loss"]["ncp"] <= none_left_out["information_loss"]["ncp"]
    for released in (strict, loose):
        assert released.groupby(qi).size().min() >= 10
    levels = some_left_out["levels"]
    assert set(levels) == set(qi) and some_left_out["nodes_evaluated"] <= some_left_out["lattice_nodes"]
    education = loose["education"].unique()
    tree = found["education"]
    assert {tree.level(leaf, levels["education"]) for leaf in adult["education"]} >= set(education)
    assert (
        pd.Series(education)
        .isin(["*", "Higher", "School", "Graduate", "Undergraduate", "Secondary", "Primary", *tree.leaves])
        .all()
    )
