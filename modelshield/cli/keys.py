"""``modelshield keys``: issue, list, rotate and revoke gateway API keys; a key's secret is printed once, at creation."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from modelshield.cli._options import RedisPrefixOption
from modelshield.core.errors import InputError

if TYPE_CHECKING:
    from modelshield.serve.apikeys import ApiKeyStore

keys_app = typer.Typer(help="Gateway API keys: create, list, rotate, revoke.", no_args_is_help=True)

DbOption = Annotated[
    str | None,
    typer.Option("--db", envvar="MODELSHIELD_DB_URL", help="Database URL (default: SQLite in $MODELSHIELD_HOME)."),
]
PepperOption = Annotated[
    Path | None,
    typer.Option(
        "--pepper-file",
        envvar="MODELSHIELD_KEY_PEPPER_FILE",
        help="Server-side HMAC key file (default: $MODELSHIELD_HOME/apikey-pepper, created 0600 while no key needs "
        "an earlier one). Must match the gateway's.",
    ),
]
RedisOption = Annotated[
    str | None,
    typer.Option(
        "--redis",
        envvar="MODELSHIELD_REDIS_URL",
        help="Redis URL: publish revocations to every gateway replica at once.",
    ),
]
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float | None:
    """``90d``, ``12h``, ``30m``, ``45s``, ``2w`` -> seconds; ``never`` -> None."""
    if text.strip().lower() == "never":
        return None
    m = _DURATION.fullmatch(text.strip().lower())
    if m is None or float(m.group(1)) <= 0:
        raise InputError(f"{text!r} is not a duration (examples: 30d, 12h, 15m, 45s, 2w, never)")
    return float(m.group(1)) * _UNIT[m.group(2)]


def _open(
    db: str | None, pepper_file: Path | None, redis_url: str | None = None, prefix: str = "modelshield"
) -> ApiKeyStore:
    from modelshield.serve.apikeys import ApiKeyStore, RevocationFeed, revocation_channel

    feed = RevocationFeed(redis_url, revocation_channel(prefix)) if redis_url else None
    store = ApiKeyStore.open(db, pepper_file=pepper_file, revocations=feed)
    foreign = store.foreign_keys()
    if foreign:
        typer.echo(
            f"warning: {foreign} usable keys in this store were made under another pepper than {store.pepper_id}; "
            "the gateway refuses them unless it holds their pepper file (is --pepper-file the right one?)",
            err=True,
        )
    return store


def _when(ts: float | None) -> str:
    return "-" if ts is None else dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@keys_app.command("create")
def create(
    subject: Annotated[str, typer.Option("--subject", help="Who the key is for (user or service name).")],
    role: Annotated[
        list[str], typer.Option("--role", help="Role (repeatable): predictor, model-manager, auditor, admin.")
    ],
    tenant: Annotated[str | None, typer.Option(help="Tenant the key belongs to.")] = None,
    scope: Annotated[
        list[str], typer.Option("--scope", help="Limit the key to these scopes, e.g. predict:digits (repeatable).")
    ] = [],  # noqa: B006
    clearance: Annotated[
        str, typer.Option(help="Data clearance: public, internal, confidential or restricted.")
    ] = "internal",
    expires: Annotated[str, typer.Option(help="Lifetime: 90d, 12h, 30m ... or 'never'.")] = "90d",
    db: DbOption = None,
    pepper_file: PepperOption = None,
) -> None:
    """Issue a key and print it ONCE (only a keyed hash is stored; it cannot be shown again)."""
    from modelshield.serve.policy import SENSITIVITY_LEVELS

    if clearance not in SENSITIVITY_LEVELS:
        raise InputError(f"clearance must be one of {', '.join(SENSITIVITY_LEVELS)}")
    store = _open(db, pepper_file)
    try:
        issued = store.create(
            subject,
            role,
            tenant=tenant,
            scopes=scope,
            expires_in=parse_duration(expires),
            attributes={"clearance": clearance},
        )
    finally:
        store.close()
    typer.echo(issued.plaintext)
    typer.echo(
        f"created key {issued.key_id} for {subject} (roles: {', '.join(role)}); store it now, it is not shown again",
        err=True,
    )


@keys_app.command("list")
def list_keys(
    subject: Annotated[str | None, typer.Option(help="Only this subject's keys.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    db: DbOption = None,
    pepper_file: PepperOption = None,
) -> None:
    """List keys with their status; secrets are never shown (they are not stored)."""
    store = _open(db, pepper_file)
    try:
        infos = store.list(subject)
    finally:
        store.close()
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {
                        **{k: v for k, v in vars(i).items() if k != "attributes"},
                        "attributes": dict(i.attributes),
                        "roles": list(i.roles),
                        "scopes": list(i.scopes),
                        "status": i.status(),
                    }
                    for i in infos
                ],
                indent=2,
            )
        )
        return
    for i in infos:
        extra = f" -> {i.replaced_by}" if i.replaced_by else ""
        typer.echo(
            f"{i.key_id}  {i.status():8}{extra}  {i.subject}  roles={','.join(i.roles)}  tenant={i.tenant or '-'}  "
            f"scopes={','.join(i.scopes) or '-'}  expires={_when(i.expires_at)}  last_used={_when(i.last_used_at)}"
        )


@keys_app.command("rotate")
def rotate(
    key_id: Annotated[str, typer.Argument(help="Id of the key to replace.")],
    overlap: Annotated[str, typer.Option(help="How long the old key keeps working: 1h, 15m, 0s ...")] = "1h",
    db: DbOption = None,
    pepper_file: PepperOption = None,
) -> None:
    """Issue a successor key (printed once); the old one works until the overlap ends."""
    seconds = parse_duration(overlap) if overlap.strip() not in ("0", "0s") else 0.0
    if seconds is None:
        raise InputError("the overlap must be a duration, not 'never'")
    store = _open(db, pepper_file)
    try:
        plaintext = store.rotate(key_id, overlap_seconds=seconds)
    finally:
        store.close()
    typer.echo(plaintext)
    typer.echo(f"rotated {key_id} -> {plaintext.split('_')[1]}; the old key stops working in {overlap}", err=True)


@keys_app.command("revoke")
def revoke(
    key_id: Annotated[str, typer.Argument(help="Id of the key to revoke.")],
    db: DbOption = None,
    pepper_file: PepperOption = None,
    redis_url: RedisOption = None,
    redis_prefix: RedisPrefixOption = "modelshield",
) -> None:
    """Revoke a key now (gateways using the same Redis drop it at once, others within their cache TTL)."""
    store = _open(db, pepper_file, redis_url, redis_prefix)
    try:
        store.revoke(key_id)
    finally:
        store.close()
    typer.echo(f"revoked {key_id}")


def register(app: typer.Typer) -> None:
    """Add `modelshield keys ...`."""
    app.add_typer(keys_app, name="keys", help="Gateway API keys: create, list, rotate, revoke (secrets shown once).")
