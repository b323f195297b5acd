"""The rules file: the shipped example is valid; a bad file is refused with its line and rule, on one line."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from modelshield.core.errors import InputError
from modelshield.monitor.alerts.rules import load_rules, parse_rules

if TYPE_CHECKING:
    from conftest import RunMain

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "alerts.yaml"


def test_the_example_rules_file_is_valid(run_main: RunMain) -> None:
    rules = load_rules(EXAMPLE)
    assert {r.kind for r in rules.rules} == {"threshold", "rate", "absence"}
    assert rules.rule("poisoning-campaign").severity == "critical"
    code, out, err = run_main("monitor", "alerts", "check", str(EXAMPLE))
    assert code == 0 and out.strip().endswith(": ok") and err == ""


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("count: 20", "count: zero", r":\d+: rule 'denial-burst': count: Input should be a valid integer"),
        ('    op: ">="', '    opp: ">="', r":\d+: rule 'data-drift': opp: Extra inputs are not permitted"),
        ("{route: secops, after_s: 600}", "{route: pager, after_s: 600}", r"route 'pager' is not defined"),
        ("kind: rate", "kind: ratio", r"rule 'denial-burst': Input tag 'ratio' .* 'threshold', 'rate', 'absence'"),
        (
            "severity: medium\n\n  - name: extraction",
            "severity: low\n\n  - name: extraction",
            r"rule 'data-drift': severity 'low' has no escalation chain",
        ),
        ("- name: extraction ", "- name: data-drift ", r"rule 'data-drift' is defined twice"),
        ("secret_env: MODELSHIELD_WEBHOOK_SECRET", "secret_env: $(cat /etc/passwd)", r"route 'oncall': secret_env"),
        ("url: http://127.0.0.1:8099/alerts", "url: ftp://x", r"route 'oncall': url: String should match"),
        ("for_s: 900", "for_s: 900\n    group_by: [model]", r"absence rule cannot group_by"),
        ("version: 1", "version: 2", r"version: Input should be 1"),
        ("rules:\n", "rules: [\n", r"not valid YAML"),
    ],
)
def test_a_bad_rules_file_names_the_line_and_rule(old: str, new: str, expected: str, tmp_path: Path) -> None:
    text = EXAMPLE.read_text()
    assert old in text
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace(old, new, 1))
    with pytest.raises(InputError, match=expected) as info:
        load_rules(bad)
    assert str(info.value).startswith(f"{bad}")
    assert "\n" not in str(info.value)


def test_the_line_is_the_offending_one(tmp_path: Path) -> None:
    text = "version: 1\nroutes: {s: {type: syslog, host: h}}\nescalation: {high: [{route: s}]}\nrules:\n"
    text += "  - name: a\n    kind: threshold\n    signal: x\n    value: 1\n    severity: high\n"
    text += "  - name: b\n    kind: rate\n    signal: x\n    window_s: -1\n    count: 1\n    severity: high\n"
    with pytest.raises(InputError, match=r"^<rules>:13: rule 'b': window_s: Input should be greater than 0$"):
        parse_rules(text)
    with pytest.raises(InputError, match="a mapping"):
        parse_rules("- just\n- a list\n")


def test_check_exits_2_with_one_line(run_main: RunMain, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(EXAMPLE.read_text().replace("window_s: 60", "window_s: soon"))
    code, out, err = run_main("monitor", "alerts", "check", str(bad))
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "rule 'denial-burst': window_s" in err
    code, _, err = run_main("monitor", "alerts", "check", str(tmp_path / "missing.yaml"))
    assert code == 2 and "does not exist" in err
