"""``modelshield crypto``: encrypt checkpoints at rest, rotate their keys, inspect them; keys are never printed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from modelshield.core.errors import InputError
from modelshield.integrity.encrypt import DEFAULT_CHUNK_SIZE, decrypt_file, encrypt_file, read_header, rotate_file
from modelshield.integrity.keys import ENV_PREFIX, Keyring

SUFFIX = ".msenc"

crypto_app = typer.Typer(
    help="Encrypted checkpoints: AES-256-GCM envelope encryption, streamed, with key rotation.",
    no_args_is_help=True,
)

KeyringOption = Annotated[
    Path | None,
    typer.Option(
        "--keyring",
        envvar="MODELSHIELD_KEYRING",
        help=f"Keyring file (JSON, mode 0600). Keys not in it are read from ${ENV_PREFIX}<ID> (base64).",
    ),
]


@crypto_app.command("keygen")
def keygen(
    keyring: Annotated[
        Path, typer.Option("--keyring", envvar="MODELSHIELD_KEYRING", help="Keyring file to create or add to.")
    ],
    key_id: Annotated[
        str | None, typer.Option("--id", help="Id of the new key (default: kek-<date>-<random>).")
    ] = None,
) -> None:
    """Add a random 256-bit key-encryption key to a keyring; it becomes the default for encrypt."""
    ring = Keyring.generate(keyring, key_id)
    typer.echo(f"added key {ring.default_id} to {keyring} (mode 0600, now the default)")


@crypto_app.command("encrypt")
def encrypt(
    file: Annotated[Path, typer.Argument(help="File to encrypt (any size; read chunk by chunk).")],
    keyring: KeyringOption = None,
    key_id: Annotated[str | None, typer.Option("--key-id", help="KEK id (default: the keyring's default).")] = None,
    out: Annotated[Path | None, typer.Option(help=f"Output file (default: FILE{SUFFIX}).")] = None,
    chunk_size: Annotated[int, typer.Option(help="Plaintext bytes per authenticated chunk.")] = DEFAULT_CHUNK_SIZE,
) -> None:
    """Encrypt a file under a fresh data key wrapped by a key-encryption key."""
    dst = out or file.with_name(file.name + SUFFIX)
    header = encrypt_file(file, dst, Keyring.load(keyring), key_id, chunk_size=chunk_size)
    typer.echo(f"encrypted {file} -> {dst} (key {header.kek_id}, {header.chunks} chunks)")


@crypto_app.command("decrypt")
def decrypt(
    file: Annotated[Path, typer.Argument(help=f"Encrypted file ({SUFFIX}).")],
    keyring: KeyringOption = None,
    out: Annotated[Path | None, typer.Option(help=f"Output file (default: FILE without {SUFFIX}).")] = None,
) -> None:
    """Decrypt and authenticate a file; the output appears only if every chunk authenticates."""
    if out is None and file.suffix != SUFFIX:
        raise InputError(f"{file} does not end in {SUFFIX}; say where the plaintext goes with --out")
    dst = out or file.with_suffix("")
    header = decrypt_file(file, dst, Keyring.load(keyring))
    typer.echo(f"decrypted {file} -> {dst} ({header.plaintext_size} bytes, key {header.kek_id})")


@crypto_app.command("rotate")
def rotate(
    files: Annotated[list[Path], typer.Argument(help="Encrypted files to re-wrap.")],
    to: Annotated[str, typer.Option("--to", help="Id of the new key-encryption key.")],
    keyring: KeyringOption = None,
) -> None:
    """Re-wrap each file's data key under a new KEK; payloads are not re-encrypted."""
    ring = Keyring.load(keyring)
    for path in files:
        old = read_header(path).kek_id
        rotate_file(path, ring, to)
        typer.echo(f"rotated {path}: {old} -> {to}")


@crypto_app.command("inspect")
def inspect(
    file: Annotated[Path, typer.Argument(help=f"Encrypted file ({SUFFIX}).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the header as JSON.")] = False,
) -> None:
    """Show an encrypted file's header: format, key id, chunking and sizes (no key material, nothing decrypted)."""
    info = read_header(file).describe()
    if as_json:
        typer.echo(json.dumps(info, indent=2))
    else:
        width = max(map(len, info))
        for name, value in info.items():
            typer.echo(f"{name:{width}}  {value}")


def register(app: typer.Typer) -> None:
    """Add `modelshield crypto ...`."""
    app.add_typer(
        crypto_app, name="crypto", help="Encrypt, decrypt and re-key model checkpoints (AES-256-GCM envelopes)."
    )
