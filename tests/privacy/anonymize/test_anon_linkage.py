"""The linkage attack pins down most unique people in a raw release and nobody in a 5-anonymous one."""

from __future__ import annotations

import numpy as np
import pytest
from anon_tables import people

from modelshield.core.errors import InputError
from modelshield.privacy.anonymize import Criteria, anonymize_frame, link

QI = ["birth_year", "zip", "sex"]


def test_uniques_are_reidentified_before_and_not_after() -> None:
    hospital = people(4000)  # the table a hospital would release: quasi-identifiers, diagnosis, and (kept aside) who
    voters = hospital.sample(1500, random_state=1)[["person", *QI]]  # a public register naming people
    unique = ~hospital.duplicated(QI, keep=False)
    share_unique = unique[voters.index].mean()
    assert share_unique > 0.5  # the setting of the attack: most people are unique on the three

    before = link(hospital, voters, QI, truth="person")
    assert before.reidentified == pytest.approx(share_unique)  # every unique voter is pinned down …
    assert before.correct == pytest.approx(before.reidentified)  # … and correctly

    released, report = anonymize_frame(hospital, QI, Criteria(5), sensitive="diagnosis")
    after = link(released, voters, QI, truth="person")
    assert after.matched == 1.0  # the voters are still all in the released table
    assert after.reidentified == 0.0 and after.correct == 0.0
    assert after.guessed <= 1 / 5 + 1e-9 and after.mean_candidates >= 5
    assert report["risk_after"]["prosecutor_highest"] <= 0.2 < report["risk_before"]["prosecutor_highest"]


def test_labels_and_ranges_match_the_raw_values() -> None:
    hospital = people(600, seed=3)
    released, _ = anonymize_frame(hospital, QI, Criteria(3))
    one = hospital.iloc[[0]][QI]
    result = link(released, one, QI)
    assert result.matched == 1.0 and result.mean_candidates >= 3
    far = one.assign(birth_year=1800)
    assert link(released, far, QI).matched == 0.0


def test_missing_join_column_is_an_input_error() -> None:
    hospital = people(50)
    with pytest.raises(InputError, match="auxiliary table has no column 'zip'"):
        link(hospital, hospital.drop(columns=["zip"]), QI)
    with pytest.raises(InputError, match="not a number or a range"):
        link(hospital.assign(birth_year="old"), hospital, QI)
    assert np.isfinite(link(hospital, hospital, QI).mean_candidates)
