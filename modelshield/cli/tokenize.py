"""``modelshield tokenize``: deterministic tokens for CSV columns (HMAC, AES-SIV, FF1), a key vault, rotation and
audited reveal. ``modelshield tokenize FILE.csv ...`` tokenizes; the subcommands manage keys and tokens."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated

import click
import typer
from typer.core import TyperGroup

from modelshield.core.errors import InputError
from modelshield.integrity.keys import ENV_PREFIX, Keyring
from modelshield.privacy.tokenize import Method, Tokenizer, Vault, reveal_csv, rotate_csv, tokenize_csv
from modelshield.privacy.tokenize.tokens import ALPHABETS


class _TableFirst(TyperGroup):
    """``tokenize FILE.csv ...`` runs the ``table`` command; a subcommand name runs that subcommand."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["table", *args]
        return super().parse_args(ctx, args)


tokenize_app = typer.Typer(
    cls=_TableFirst,
    help="Tokenize CSV columns keeping joins (HMAC, AES-SIV, FF1); manage token keys; rotate; reveal with an audit record.",
    no_args_is_help=True,
)
vault_app = typer.Typer(help="Token keys: create a vault, add (rotate in) a key, list keys.", no_args_is_help=True)
tokenize_app.add_typer(vault_app, name="vault")

VaultOption = Annotated[Path, typer.Option("--vault", help="Token key vault (JSON; keys wrapped by a KEK).")]
KeyringOption = Annotated[
    Path | None,
    typer.Option(
        "--keyring",
        envvar="MODELSHIELD_KEYRING",
        help=f"Keyring holding the vault's key-encryption key (modelshield crypto keygen); else ${ENV_PREFIX}<ID>.",
    ),
]
ColumnsOption = Annotated[str, typer.Option("--columns", help="Comma-separated column names to (de)tokenize.")]
MethodOption = Annotated[
    Method, typer.Option("--method", help="hmac (one-way), siv (AES-SIV) or ff1 (format-preserving).")
]
ContextOption = Annotated[
    str, typer.Option("--context", help="Domain separation (SIV associated data, FF1 tweak); same in tables that join.")
]
AlphabetOption = Annotated[
    str, typer.Option("--alphabet", help=f"FF1: which characters are encrypted ({', '.join(ALPHABETS)}).")
]


def _columns(text: str) -> list[str]:
    cols = [c.strip() for c in text.split(",") if c.strip()]
    if not cols:
        raise InputError("--columns needs at least one column name")
    return cols


def _open_vault(vault: Path, keyring: Path | None) -> Vault:
    ring = Keyring.load(keyring)
    return Vault.open(vault, ring.key)


def _tokenizer(v: Vault, key_id: str | None, method: Method, context: str, alphabet: str) -> tuple[str, Tokenizer]:
    chosen = v.resolve(key_id)
    return chosen, Tokenizer(v.material(chosen), method, context=context, alphabet=alphabet)


@tokenize_app.command("table")
def table(
    file: Annotated[Path, typer.Argument(help="CSV file with a header row.")],
    columns: ColumnsOption,
    vault: VaultOption,
    out: Annotated[Path, typer.Option("--out", help="Where the tokenized CSV goes.")],
    method: MethodOption = Method.siv,
    key_id: Annotated[
        str | None, typer.Option("--key-id", help="Token key id (default: the vault's current key).")
    ] = None,
    keyring: KeyringOption = None,
    context: ContextOption = "",
    alphabet: AlphabetOption = "digits",
) -> None:
    """Tokenize columns of a CSV file (also: modelshield tokenize FILE.csv ...); equal values, equal tokens."""
    chosen, tok = _tokenizer(_open_vault(vault, keyring), key_id, method, context, alphabet)
    summary = tokenize_csv(file, out, _columns(columns), tok)
    typer.echo(f"tokenized {summary.values} values in {summary.rows} rows ({method}, key {chosen}) -> {out}")


@tokenize_app.command("rotate")
def rotate(
    file: Annotated[Path, typer.Argument(help="A CSV file tokenized under --from-key.")],
    columns: ColumnsOption,
    vault: VaultOption,
    from_key: Annotated[str, typer.Option("--from-key", help="Key id the tokens were made with.")],
    out: Annotated[Path, typer.Option("--out", help="Where the re-tokenized CSV goes.")],
    to_key: Annotated[
        str | None, typer.Option("--to-key", help="New key id (default: the vault's current key).")
    ] = None,
    method: MethodOption = Method.siv,
    keyring: KeyringOption = None,
    context: ContextOption = "",
    alphabet: AlphabetOption = "digits",
) -> None:
    """Re-tokenize from an old key to a new one; a value gets the same new token in every table (joins kept)."""
    v = _open_vault(vault, keyring)
    old_id, old = _tokenizer(v, from_key, method, context, alphabet)
    new_id, new = _tokenizer(v, to_key, method, context, alphabet)
    if old_id == new_id:
        raise InputError(f"--from-key and the new key are both {old_id!r}; add a key first: tokenize vault add-key")
    summary = rotate_csv(file, out, _columns(columns), old, new)
    typer.echo(f"rotated {summary.values} tokens in {summary.rows} rows: {old_id} -> {new_id} -> {out}")


@tokenize_app.command("reveal")
def reveal(
    file: Annotated[Path, typer.Argument(help="A tokenized CSV file.")],
    columns: ColumnsOption,
    vault: VaultOption,
    key_id: Annotated[str, typer.Option("--key-id", help="Key id the tokens were made with.")],
    out: Annotated[Path, typer.Option("--out", help="Where the revealed CSV goes (mode 0600).")],
    audit_db: Annotated[str, typer.Option("--audit-db", help="Audit log URL; the reveal is recorded there first.")],
    reason: Annotated[str, typer.Option("--reason", help="Why the values are needed (ticket, case); audited.")] = "",
    actor: Annotated[str | None, typer.Option("--actor", help="Who asks (default: the login name).")] = None,
    method: MethodOption = Method.siv,
    keyring: KeyringOption = None,
    context: ContextOption = "",
    alphabet: AlphabetOption = "digits",
) -> None:
    """Turn tokens back into values (SIV, FF1), after recording who, why and what in the audit log."""
    from modelshield.audit import AuditLog

    if not reason.strip():
        raise InputError("revealing tokens needs --reason TEXT (it is recorded in the audit log)")
    chosen, tok = _tokenizer(_open_vault(vault, keyring), key_id, method, context, alphabet)
    with AuditLog.open(audit_db) as log:
        summary, event = reveal_csv(
            file,
            out,
            _columns(columns),
            tok,
            key_id=chosen,
            actor=actor or getpass.getuser(),
            reason=reason,
            record=lambda e: log.append(e.to_event()),
        )
    typer.echo(
        f"revealed {summary.values} values in {summary.rows} rows -> {out} (audited: {event.actor}, {event.time})"
    )


@vault_app.command("init")
def vault_init(
    vault: VaultOption,
    keyring: KeyringOption = None,
    kek_id: Annotated[
        str | None, typer.Option("--kek-id", help="KEK id in the keyring (default: its default).")
    ] = None,
) -> None:
    """Create a vault whose keys are wrapped by a KEK, with a first token key."""
    chosen, kek = Keyring.load(keyring).resolve(kek_id)
    v = Vault.create(vault, chosen, kek)
    key = v.add_key()
    typer.echo(f"created vault {vault} (KEK {chosen}) with token key {key}")


@vault_app.command("add-key")
def vault_add_key(
    vault: VaultOption,
    keyring: KeyringOption = None,
    key_id: Annotated[str | None, typer.Option("--key-id", help="Id of the new key (default: tok-<version>).")] = None,
) -> None:
    """Add a token key and make it current (the previous one is kept, retired, for rotation and reveal)."""
    v = _open_vault(vault, keyring)
    previous = v.default_id
    key = v.add_key(key_id)
    typer.echo(
        f"added token key {key} (current; {previous or 'none'} retired): rotate tables with --from-key {previous}"
    )


@vault_app.command("list")
def vault_list(vault: VaultOption, keyring: KeyringOption = None) -> None:
    """List token keys: id, version, created, retired (never key material)."""
    v = _open_vault(vault, keyring)
    typer.echo(f"vault {vault} (KEK {v.kek_id})")
    for k in v.keys():
        mark = "*" if k.default else " "
        typer.echo(f"{mark} {k.key_id:12} v{k.version:<3} created {k.created}  retired {k.retired or '-'}")


def register(app: typer.Typer) -> None:
    """Add `modelshield tokenize ...`."""
    app.add_typer(
        tokenize_app,
        name="tokenize",
        help="Tokenize PII keeping joins (modelshield tokenize FILE.csv --columns a,b --vault V --out OUT); "
        "key vault, rotation, audited reveal.",
    )
