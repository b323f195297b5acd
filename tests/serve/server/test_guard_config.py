"""A bad ``[guard]`` table stops ``modelshield serve --config`` with one line on stderr and exit 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from modelshield.core.errors import InputError
from modelshield.serve.config import parse_config
from tests.serve.server.conftest import ARCH, make_state
from tests.serve.server.conftest import ONE_THREAD_ENV as ENV


def _toml(state, weights, guard: str) -> str:
    path, digest = weights
    return (
        f'[models.digits]\npath = "{path}"\ndigest = "{digest}"\narch = "{ARCH["arch"]}"\ninput_shape = [1, 8, 8]\n\n'
        f'[server]\nstore_url = "{state.db_url}"\n\n[auth]\napi_key_pepper_file = "{state.pepper}"\n\n'
        f'[audit]\ndb_url = "{state.db_url}"\nsigning_key_file = "{state.private_key}"\n\n[guard]\n{guard}\n'
    )


@pytest.mark.parametrize(
    ("guard", "says"),
    [
        ('detector = "magic"\ncalibration_data = "sklearn:digits:train"', "guard.detector"),
        ('detector = "energy"\ncalibration_data = "missing.npz"', "guard.calibration_data"),
    ],
)
def test_bad_guard_table_is_one_line_and_exit_2(tmp_path, weights, guard, says):
    state = make_state(tmp_path / "state", {})
    config = tmp_path / "serve.toml"
    config.write_text(_toml(state, weights, guard))
    done = subprocess.run(
        [sys.executable, "-m", "modelshield", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=60,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    lines = [ln for ln in done.stderr.strip().splitlines() if not ln.startswith('{"time"')]  # start-up JSON logs
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], done.stderr


def test_guard_table_names_served_models_and_default_needs_a_label():
    models = {"digits": {"path": "/m.safetensors", "digest": "0" * 64}}
    guard = {"detector": "energy", "calibration_data": "sklearn:digits:train"}
    with pytest.raises(InputError, match="guard.models names other"):
        parse_config({"models": models, "guard": {**guard, "models": ["other"]}})
    with pytest.raises(InputError, match="default_label"):
        parse_config({"models": models, "guard": {**guard, "fallback": "default"}})
    settings = parse_config({"models": models, "guard": guard}, base=None).guards()
    assert settings["digits"].fpr == 0.01 and settings["digits"].fallback == "reject"


def test_options_the_detector_does_not_take_are_refused_before_calibration(weights):
    from modelshield.integrity.safe_load import load_model
    from modelshield.serve.config import GuardConfig
    from modelshield.serve.guarding import build_guard

    model = load_model(weights[0], arch=ARCH["arch"], input_shape=(1, 8, 8))
    setting = GuardConfig(detector="energy", calibration_data="sklearn:digits:train", detector_options={"bits": 2})
    with pytest.raises(InputError, match="not options of the energy detector"):
        build_guard("digits", model, setting)
    with pytest.raises(InputError, match="default_label 10 is not one of its 10 classes"):
        build_guard("digits", model, setting.model_copy(update={"fallback": "default", "default_label": 10}))
