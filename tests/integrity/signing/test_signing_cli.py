"""`modelshield sign-keygen / sign / verify` as a user runs them: 0 verified, 1 refused, 2 bad input."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from model_signing import verifying as ms_verifying

from modelshield.integrity.signing import sign_model

if TYPE_CHECKING:
    from conftest import RunMain


def test_keygen_sign_verify_tamper(model_dir: Path, tmp_path: Path, run_main: RunMain) -> None:
    key = tmp_path / "release.pem"
    code, out, _ = run_main("sign-keygen", "--type", "ec-p384", "--out", str(key))
    assert code == 0 and "release.pub.pem" in out
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    public = tmp_path / "release.pub.pem"

    code, out, _ = run_main("sign", str(model_dir), "--key", str(key))
    assert code == 0 and (model_dir / "model.sig").is_file()
    ms_verifying.Config().use_elliptic_key_verifier(public_key=public).verify(model_dir, model_dir / "model.sig")

    code, out, err = run_main("verify", str(model_dir), "--key", str(public))
    assert code == 0 and "verified" in out and "4 files" in out and not err

    (model_dir / "config.json").write_text('{"hidden": 33}')
    code, out, err = run_main("verify", str(model_dir), "--key", str(public))
    assert (
        code == 1
        and err.strip() == f"verification failed: model {model_dir} does not match its signature: changed config.json"
    )


def test_bad_input_exits_2_with_one_line(
    model_dir: Path, keys: dict[str, tuple[Path, Path]], tmp_path: Path, run_main: RunMain
) -> None:
    private, public = keys["ed25519"]
    not_pem = tmp_path / "not-a-key.pem"
    not_pem.write_text("{}")
    not_pem.chmod(0o600)
    cases = [
        (["verify", str(model_dir), "--key", str(public)], "signature"),  # not signed yet
        (["sign", str(model_dir), "--key", str(tmp_path / "no.pem")], "does not exist"),
        (["sign", str(model_dir), "--key", str(model_dir / "config.json")], "accessible to others (mode 0644)"),
        (["sign", str(model_dir), "--key", str(not_pem)], "not a PEM private key"),
        (["sign", str(model_dir), "--key", str(private), "--ignore", "/etc"], "outside the model folder"),
        (["sign-keygen", "--out", str(private)], "already exists"),
    ]
    for args, message in cases:
        code, _, err = run_main(*args)
        assert code == 2 and err.startswith("error:") and message in err and err.count("\n") == 1, (args, err)


def test_the_installed_command_refuses_a_wrong_key(model_dir: Path, keys: dict[str, tuple[Path, Path]]) -> None:
    sign_model(model_dir, keys["ec-p256"][0], model_dir / "release.sig")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "modelshield",
            "verify",
            str(model_dir),
            "--key",
            str(keys["other-p256"][1]),
            "--signature",
            str(model_dir / "release.sig"),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1 and "signed by a different key" in done.stderr and "Traceback" not in done.stderr
