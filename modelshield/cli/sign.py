"""``modelshield sign`` / ``verify`` / ``sign-keygen``: OpenSSF model-signing signatures (0 ok, 1 refused, 2 error)."""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from modelshield.core.errors import IntegrityError

PASSWORD_ENV = "MODELSHIELD_SIGNING_KEY_PASSWORD"


class KeyKind(StrEnum):
    ec_p256 = "ec-p256"
    ec_p384 = "ec-p384"
    ed25519 = "ed25519"


def _password() -> bytes | None:
    """The private key's password comes from the environment only, never from argv (visible in ps)."""
    value = os.environ.get(PASSWORD_ENV)
    return value.encode("utf-8") if value else None


ModelArgument = Annotated[Path, typer.Argument(help="Model folder or single model file.")]
SignatureOption = Annotated[
    Path | None,
    typer.Option("--signature", help="Signature file (default: PATH/model.sig, or FILE.sig beside a single file)."),
]
IgnoreOption = Annotated[
    list[str],
    typer.Option("--ignore", help="Path inside the model folder to leave out (repeatable); .git* is always left out."),
]
WorkersOption = Annotated[int | None, typer.Option(help="Hashing threads (default: CPUs + 4).")]


def sign_command(
    path: ModelArgument,
    key: Annotated[Path, typer.Option("--key", help="Private key PEM (EC P-256/P-384/P-521 or Ed25519).")],
    signature: SignatureOption = None,
    ignore: IgnoreOption = [],  # noqa: B006 - typer needs a list default
    allow_symlinks: Annotated[
        bool,
        typer.Option("--allow-symlinks", help="Follow symlinks to files inside the model folder (refused by default)."),
    ] = False,
    workers: WorkersOption = None,
) -> None:
    """Sign every file of a model; the signature verifies with model-signing's `verify key` too (EC keys)."""
    from modelshield.integrity.signing import sign_model

    out = sign_model(path, key, signature, ignore, password=_password(), allow_symlinks=allow_symlinks, workers=workers)
    typer.echo(f"signed {path} -> {out}")


def verify_command(
    path: ModelArgument,
    key: Annotated[Path, typer.Option("--key", help="Public key PEM of the signer.")],
    signature: SignatureOption = None,
    ignore: IgnoreOption = [],  # noqa: B006 - typer needs a list default
    workers: WorkersOption = None,
) -> None:
    """Verify a model against its signature: exit 0 verified, 1 refused (tampered, wrong key), 2 bad input."""
    from modelshield.integrity.signing import verify_model

    try:
        result = verify_model(path, key, signature, ignore, workers=workers)
    except IntegrityError as exc:
        typer.echo(f"verification failed: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(
        f"verified {path}: {len(result.files)} files, {result.key_type} key {result.key_hint[:16]}, "
        f"sha256:{result.digest}"
    )


def keygen_command(
    out: Annotated[
        Path,
        typer.Option("--out", help="Private key file to write (mode 0600); the public key goes to OUT with .pub.pem."),
    ],
    kind: Annotated[KeyKind, typer.Option("--type", help="Key type.")] = KeyKind.ec_p256,
) -> None:
    """Create a signing key pair (PEM); set MODELSHIELD_SIGNING_KEY_PASSWORD to encrypt the private key."""
    from modelshield.integrity.signing import generate_key_pair

    private, public = generate_key_pair(kind.value, out, _password())
    typer.echo(f"wrote {private} (private, 0600) and {public} (public)")


def register(app: typer.Typer) -> None:
    """Add `modelshield sign`, `modelshield verify` and `modelshield sign-keygen`."""
    app.command("sign")(sign_command)
    app.command("verify")(verify_command)
    app.command("sign-keygen")(keygen_command)
