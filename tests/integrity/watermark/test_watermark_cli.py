"""`modelshield watermark`: keygen, embed, verify end to end; exit 0 detected, 1 not detected, 2 bad input.

CliRunner runs see library errors as exceptions; the real entry point (``run_main``, in process) turns them into
one line on stderr and exit 2.
"""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from typer.testing import CliRunner

from modelshield.cli.main import app
from modelshield.core.loading import save_torch_model
from modelshield.core.model import TorchModel

if TYPE_CHECKING:
    from conftest import RunMain

ARCH = ["--arch", "modelshield.demo:DigitsCNN", "--input-shape", "1,8,8"]


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("keys")
    runner = CliRunner()
    for name in ("owner", "other"):
        result = runner.invoke(app, ["watermark", "keygen", "--out", str(folder / f"{name}.key")])
        assert result.exit_code == 0, result.output
    return folder / "owner.key", folder / "other.key"


def test_keygen_writes_a_private_key_and_never_shows_it(keys: tuple[Path, Path], run_main: RunMain) -> None:
    owner, _ = keys
    assert stat.S_IMODE(owner.stat().st_mode) == 0o600 and owner.stat().st_size == 32
    secret = owner.read_bytes()
    code, out, err = run_main("watermark", "keygen", "--out", str(owner))
    assert code == 2 and err.startswith("error: ") and "never overwritten" in err and len(err.splitlines()) == 1
    assert owner.read_bytes() == secret
    for shown in (secret.hex(), base64.b64encode(secret).decode()):
        assert shown not in out + err


def test_embed_then_verify_from_files(tmp_path: Path, keys: tuple[Path, Path], digits_model: TorchModel) -> None:
    owner, other = keys
    original = save_torch_model(digits_model, tmp_path / "model.safetensors")
    marked = tmp_path / "marked.safetensors"
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "watermark",
            "embed",
            "--model",
            str(original),
            "--data",
            "sklearn:digits:train",
            "--test-data",
            "sklearn:digits:test",
            "--arch",
            "modelshield.demo:DigitsCNN",
            "--key",
            str(owner),
            "--kind",
            "weights",
            "--out",
            str(marked),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "weights watermark detected" in result.output and "held-out accuracy" in result.output
    assert owner.read_bytes().hex() not in result.output

    verified = runner.invoke(app, ["watermark", "verify", "--model", str(marked), *ARCH, "--key", str(owner), "--json"])
    assert verified.exit_code == 0, verified.output
    report = json.loads(verified.output)
    assert report["detected"] and [v["kind"] for v in report["verdicts"]] == ["weights", "trigger"]
    assert all(v["fpr"] == pytest.approx(5e-4) for v in report["verdicts"])  # 1e-3 split over two tests

    wrong_key = runner.invoke(app, ["watermark", "verify", "--model", str(marked), *ARCH, "--key", str(other)])
    assert wrong_key.exit_code == 1 and "not detected" in wrong_key.output
    unmarked = runner.invoke(
        app, ["watermark", "verify", "--model", str(original), *ARCH, "--key", str(owner), "--kind", "weights"]
    )
    assert unmarked.exit_code == 1 and "weights watermark not detected" in unmarked.output

    again = runner.invoke(
        app,
        [
            "watermark",
            "embed",
            "--model",
            str(original),
            "--data",
            "sklearn:digits:train",
            "--arch",
            "modelshield.demo:DigitsCNN",
            "--key",
            str(owner),
            "--kind",
            "weights",
            "--out",
            str(marked),
        ],
    )
    assert again.exit_code != 0 and "already exists" in str(again.exception)


def test_demo_trigger_embed(
    tmp_path: Path, keys: tuple[Path, Path], digits: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner, _ = keys
    monkeypatch.setattr("modelshield.demo.demo_model_and_data", lambda seed=0: digits)  # trained once per session
    out = tmp_path / "demo-trigger.safetensors"
    result = CliRunner().invoke(
        app, ["watermark", "embed", "--demo", "--key", str(owner), "--kind", "trigger", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "trigger watermark detected" in result.output and out.is_file()
    verify = CliRunner().invoke(
        app, ["watermark", "verify", "--model", str(out), *ARCH, "--key", str(owner), "--kind", "trigger"]
    )
    assert verify.exit_code == 0 and "trigger watermark detected" in verify.output


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--fpr", "1.5"], "strictly between 0 and 1"),
        (["--layer", "nope"], "no conv or linear layer named"),
        (["--input-shape", "1,8.5,8"], "positive integers"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, keys: tuple[Path, Path], digits_model: TorchModel, extra: list[str], message: str, run_main: RunMain
) -> None:
    model = save_torch_model(digits_model, tmp_path / "m.safetensors")
    code, _, err = run_main(
        "watermark", "verify", "--model", str(model), *ARCH, "--key", str(keys[0]), "--kind", "weights", *extra
    )
    assert code == 2 and err.startswith("error: ") and message in err and len(err.splitlines()) == 1, err


def test_world_readable_key_is_refused(
    tmp_path: Path, keys: tuple[Path, Path], digits_model: TorchModel, run_main: RunMain
) -> None:
    leaked = tmp_path / "leaked.key"
    leaked.write_bytes(keys[0].read_bytes())
    leaked.chmod(0o644)
    model = save_torch_model(digits_model, tmp_path / "m.safetensors")
    code, _, err = run_main("watermark", "verify", "--model", str(model), *ARCH, "--key", str(leaked))
    assert code == 2 and "accessible to others" in err and "chmod 600" in err and len(err.splitlines()) == 1


def test_cli_default_rate_is_the_library_default() -> None:
    from modelshield.cli import watermark as cli_watermark
    from modelshield.integrity.watermark import DEFAULT_FPR

    assert cli_watermark.DEFAULT_FPR == DEFAULT_FPR
