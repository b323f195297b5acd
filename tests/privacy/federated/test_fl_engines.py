"""Federated runs on Flower's real engines, as a user starts them through ``modelshield federated run``.

The default run starts the Deployment Engine once (a SuperLink, two SuperNodes and ``flwr run`` as real
processes on loopback, one round); Ray simulations with DP, SecAgg+ and attacks are marked slow.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

pytest.importorskip("flwr")

if TYPE_CHECKING:
    from conftest import RunMain


def test_deployment_engine_trains_with_real_superlink_and_supernodes(tmp_path: Path, run_main: RunMain) -> None:
    import numpy as np

    from modelshield.core.datasets import sklearn_dataset

    # the digits training split as a file: the same data, but not an sklearn:digits spec, so the CLI leaves out
    # its gradient-inversion probe (a third of this test's time; test_fl_inversion_probe.py covers it)
    train = sklearn_dataset("digits", "train")
    np.savez(tmp_path / "train.npz", x=train.x.numpy(), y=train.y.numpy())
    code, out, err = run_main(
        "federated", "run", "--engine", "deployment", "--clients", "2", "--rounds", "1",
        "--train", str(tmp_path / "train.npz"), "--out", str(tmp_path),
    )  # fmt: skip
    assert code == 0, err
    report = json.loads((tmp_path / "federated.json").read_text())
    assert [r["round"] for r in report["rounds"]] == [1]
    assert report["rounds"][0]["accuracy"] > 0.3  # one round of two clients, from 10 % at random initialisation
    assert report["rounds"][0]["epsilon"] is None and report["secure_aggregation"] is False
    assert "<img" in (tmp_path / "federated.html").read_text()
    assert "accuracy" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--aggregator", "mean"], "--aggregator must be one of"),
        (["--engine", "cloud"], "--engine must be"),
        (["--attack", "poison"], "--attack must be one of"),
        (["--dp", "fixed", "--secagg", "--aggregator", "krum"], "clipped mean"),
        (["--dp", "fixed", "--noise-multiplier", "0.05", "--target-epsilon", "0.5", "--rounds", "3"], "one round"),
        (["--partition", "shards"], "--partition must be"),
    ],
)
def test_bad_flags_are_one_line_and_exit_2(tmp_path: Path, run_main: RunMain, args: list[str], message: str) -> None:
    code, _, err = run_main("federated", "run", "--out", str(tmp_path), *args)
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1


def test_flower_error_lines_lose_ansi_colours_and_ray_timeout_names_the_remedy() -> None:
    import importlib.util

    from modelshield.privacy.federated.engines import _ANSI, _hint

    line = "\x1b[91mERROR \x1b[0m:     An exception occured!! The current node timed out during startup."
    clean = _ANSI.sub("", line)
    assert "\x1b" not in clean and clean.startswith("ERROR :")
    if importlib.util.find_spec("rfc3987_syntax") is not None:
        assert "pip uninstall rfc3987-syntax" in _hint(clean)
    assert _hint("ValueError: bad settings") == "run with --verbose"


@pytest.mark.slow
def test_simulation_with_client_dp_under_secagg_reports_epsilon_per_round(tmp_path: Path, run_main: RunMain) -> None:
    code, _, err = run_main(
        "federated", "run", "--clients", "5", "--rounds", "30", "--dp", "fixed", "--noise-multiplier", "1.0",
        "--clip", "1.0", "--target-epsilon", "20", "--secagg", "--out", str(tmp_path),
    )  # fmt: skip
    assert code == 0, err
    report = json.loads((tmp_path / "federated.json").read_text())
    eps = [r["epsilon"] for r in report["rounds"]]
    assert report["secure_aggregation"] is True
    assert 0 < len(eps) < 30 and report["privacy"]["stopped_at_target_epsilon"]  # cut at the target ε
    assert all(a < b for a, b in zip(eps, eps[1:], strict=False)) and eps[-1] <= 20


@pytest.mark.slow
def test_simulation_krum_resists_model_replacement_that_fedavg_lets_in(tmp_path: Path) -> None:
    from modelshield.privacy.federated import Experiment, FederatedSettings, run_simulation
    from modelshield.privacy.federated.report import attack_table

    experiments = tuple(
        Experiment(aggregator=a, attack=att, malicious_fraction=0.1)
        for a in ("fedavg", "krum")
        for att in ("none", "model-replacement")
    )
    result = run_simulation(FederatedSettings(clients=10, rounds=5, experiments=experiments))
    asr = {r["aggregator"]: r["attack_success_rate"] for r in attack_table(result["experiments"])}
    assert asr["fedavg"] > 0.5 > asr["krum"]
