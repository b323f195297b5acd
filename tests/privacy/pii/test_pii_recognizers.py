"""PII in free text and tables: Faker-made values found, look-alikes left alone, one masker for CLI and gateway."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pytest
from faker import Faker

from modelshield.core.errors import InputError
from modelshield.privacy.pii import BUILTIN, Masker, find_pii, redact
from modelshield.privacy.pii.corpus import labelled_corpus, score
from modelshield.serve import masking

if TYPE_CHECKING:
    from conftest import RunMain


def _entities(text: str) -> list[tuple[str, str]]:
    return [(f.entity, f.text) for f in find_pii(text)]


def test_a_generated_corpus_is_found_with_high_precision() -> None:
    scores = score(labelled_corpus(400, seed=3), find_pii)
    for entity in ("CREDIT_CARD", "IBAN", "EMAIL", "NATIONAL_ID"):
        assert scores.precision(entity) == 1.0 and scores.recall(entity) == 1.0, entity
    assert scores.precision("PHONE") == 1.0 and scores.recall("PHONE") > 0.85
    # the gazetteer is small: names outside it are missed, names in it are never confused with other words
    assert scores.precision("PERSON") == 1.0 and scores.recall("PERSON") > 0.2


def test_checksums_and_context_decide_what_counts() -> None:
    fake = Faker("nl_NL")
    fake.seed_instance(5)
    bsn = fake.ssn()
    assert _entities(f"BSN {bsn}") == [("NATIONAL_ID", bsn)]
    assert _entities(f"zending {bsn} onderweg") == []  # a bare 9-digit number needs its keyword
    assert [f.entity for f in find_pii(bsn, hint="bsn_nummer")] == ["NATIONAL_ID"]  # a column name is context
    assert _entities("Order 4111111111111112 shipped") == []  # Luhn fails
    assert _entities("pay 4111 1111 1111 1111.") == [("CREDIT_CARD", "4111 1111 1111 1111")]
    assert _entities("IBAN GB82 WEST 1234 5698 7654 32 ok") == [("IBAN", "GB82 WEST 1234 5698 7654 32")]
    # wrong check digits: not an IBAN (the broad phone rule still takes a run of digit groups inside it)
    assert "IBAN" not in [e for e, _ in _entities("IBAN GB83 WEST 1234 5698 7654 32 ok")]
    assert _entities("ref 666-12-3456") == []
    assert _entities("DNI 12345678Z y 12345678A") == [("NATIONAL_ID", "12345678Z")]


def test_names_come_from_the_gazetteer() -> None:
    text = "Contact Mary Smith, Dr. Jansen or James Earl Jones. Will Do. Grant Street."
    assert [f.text for f in find_pii(text) if f.entity == "PERSON"] == ["Mary Smith", "Dr. Jansen", "James Earl Jones"]


def test_the_gateway_masks_with_the_same_rules_minus_names_and_bare_ids() -> None:
    line = "user Mary Smith mary@example.com paid 4111-1111-1111-1111, BSN 111222333"
    assert masking.Masker is Masker  # one implementation
    assert masking.Masker().mask_text(line) == "user Mary Smith [EMAIL] paid [CARD], BSN 111222333"
    assert redact(line, BUILTIN) == "user [PERSON] [EMAIL] paid [CARD], BSN [NATIONAL_ID]"
    enabled = Masker.from_config({"enable": ["person", "nl_bsn"], "disable": ["email"]})
    assert enabled.mask_text(line) == "user [PERSON] mary@example.com paid [CARD], BSN [NATIONAL_ID]"
    with pytest.raises(InputError, match="no built-in rules"):
        Masker.from_config({"enable": ["passport"]})


def test_pii_scan_and_mask_on_a_csv_written_by_pandas(tmp_path: Path, run_main: RunMain) -> None:
    fake = Faker("en_US")
    fake.seed_instance(9)
    n = 40
    frame = pd.DataFrame(
        {
            "customer": [fake.email() for _ in range(n)],
            "card": [fake.credit_card_number(card_type="visa16") for _ in range(n)],
            "bsn": [Faker("nl_NL").ssn() for _ in range(n)],
            "order_id": [str(fake.random_int(10**8, 10**9 - 1)) for _ in range(n)],
            "note": ["call " + fake.phone_number() for _ in range(n)],
        }
    )
    frame.to_csv(tmp_path / "t.csv", index=False)
    code, out, _ = run_main("pii", "scan", str(tmp_path / "t.csv"), "--format", "json")
    report = json.loads(out)
    assert code == 1 and report["rows"] == n
    assert report["columns"]["customer"] == {"EMAIL": n} and report["columns"]["card"] == {"CREDIT_CARD": n}
    assert report["columns"]["bsn"] == {"NATIONAL_ID": n}  # the column name is the context
    assert "order_id" not in report["columns"]
    code, out, _ = run_main("pii", "mask", str(tmp_path / "t.csv"))
    masked = pd.read_csv(io.StringIO(out), dtype=str)
    assert code == 0 and set(masked["card"]) == {"[CARD]"} and set(masked["bsn"]) == {"[NATIONAL_ID]"}
    assert list(masked["order_id"]) == list(frame["order_id"])
    frame.to_parquet(tmp_path / "t.parquet", index=False)  # the same table as Parquet: the same report and masks
    code, out, _ = run_main("pii", "scan", str(tmp_path / "t.parquet"), "--format", "json")
    assert code == 1 and json.loads(out) == report
    code, _, _ = run_main("pii", "mask", str(tmp_path / "t.parquet"), "--out", str(tmp_path / "m.parquet"))
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "m.parquet"), masked)
    (tmp_path / "clean.txt").write_text("nothing to see here\n")
    assert run_main("pii", "scan", str(tmp_path / "clean.txt"))[0] == 0
    code, _, err = run_main("pii", "scan", str(tmp_path / "missing.txt"))
    assert code == 2 and "no such file" in err


@pytest.mark.slow
def test_presidio_pattern_engine_runs_without_a_spacy_model() -> None:
    pytest.importorskip("presidio_analyzer")
    from modelshield.privacy.pii.presidio import presidio_findings

    found = presidio_findings("Card 4111 1111 1111 1111, mail ann@example.com, IBAN GB82 WEST 1234 5698 7654 32")
    assert [f.entity for f in found] == ["CREDIT_CARD", "EMAIL", "IBAN"]
