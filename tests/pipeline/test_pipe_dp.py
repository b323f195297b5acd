"""The DP half of train: DP-SGD through privacy.dp records its budget with the model, and the privacy gate holds
the model to a smaller ε than it spent."""

from __future__ import annotations

from pathlib import Path

from modelshield.pipeline import load_pipeline, run_pipeline

DP = """name: dp
artifacts: {data: data/reference.csv, test: data/test.csv, base: base-model}
stages:
  - name: train
    kind: train
    inputs: {data: data, base: base}
    outputs: {model: model}
    policy: {method: dp, epsilon: 4, epochs: 1, batch_size: 128, label: label, input_shape: [1, 8, 8]}
  - name: privacy
    kind: privacy
    inputs: {model: model, members: data, non_members: test}
    policy: {max_epsilon: 2, samples: 100, label: label}
"""


def test_dp_training_spends_its_budget_and_the_privacy_gate_refuses_a_larger_one(demo: Path, tmp_path: Path) -> None:
    (demo / "dp.yaml").write_text(DP)
    config, base = load_pipeline(demo / "dp.yaml")
    outcome = run_pipeline(config, base, run_dir=tmp_path / "run")
    train, privacy = outcome.stages
    assert train["status"] == "passed" and 0 < train["details"]["epsilon"] <= 4  # type: ignore[index,operator]
    assert outcome.stopped_at == "privacy" and "DP budget spent ε=" in outcome.reason and "> 2" in outcome.reason
    assert privacy["details"]["epsilon_claimed"] == train["details"]["epsilon"]  # type: ignore[index]
