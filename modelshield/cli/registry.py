"""``modelshield registry``: register model versions by digest, promote, pin, retire and re-verify them."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from modelshield.cli._options import RedisPrefixOption
from modelshield.core.errors import InputError, IntegrityError

if TYPE_CHECKING:
    from modelshield.registry import ModelVersion, Registry

registry_app = typer.Typer(
    help="Model registry: register, list, show, pin, promote, retire, verify.", no_args_is_help=True
)

DbOption = Annotated[
    str | None,
    typer.Option("--db", envvar="MODELSHIELD_DB_URL", help="Database URL (default: SQLite in $MODELSHIELD_HOME)."),
]
NameArg = Annotated[str, typer.Argument(help="Model name (a-z, 0-9, '.', '_', '-').")]
VersionArg = Annotated[int, typer.Argument(min=1, help="Version number.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]
RedisOption = Annotated[
    str | None,
    typer.Option(
        "--redis",
        envvar="MODELSHIELD_REDIS_URL",
        help="Redis URL: tell every gateway replica at once (else they see the change at their next poll).",
    ),
]


def _open(db: str | None) -> Registry:
    from modelshield.registry import Registry

    return Registry.open(db)


class _Announce:
    """After a change that alters what serves: publish the store's new generation on the gateways' controls channel.

    The feed is made before the change, so a malformed URL fails before anything changes; a Redis error after it
    is one warning, since the change is committed and replicas still apply it at their next poll.
    """

    def __init__(self, db: str | None, redis_url: str | None, prefix: str) -> None:
        from modelshield.serve.feed import RedisFeed, controls_channel

        self.db = db
        try:
            self.feed = RedisFeed(redis_url, controls_channel(prefix)) if redis_url else None
        except ValueError as exc:
            raise InputError(f"--redis: {exc}") from None

    def __call__(self) -> None:
        if self.feed is None:
            return
        from modelshield.core import generation
        from modelshield.core.storage import open_engine

        engine = open_engine(self.db)
        try:
            gen = generation.current(engine)
        finally:
            engine.dispose()
        failure: list[str] = []  # the feed's own error log, folded into the one warning line printed here
        feed_log = logging.getLogger("modelshield.serve.feed")

        def fold(record: logging.LogRecord) -> bool:
            failure.append(record.getMessage())
            return False

        feed_log.addFilter(fold)
        try:
            published = self.feed.publish(str(gen))
        finally:
            feed_log.removeFilter(fold)
        if not published:
            cause = failure[0] if failure else f"could not publish to Redis channel {self.feed.channel}"
            typer.echo(f"warning: {cause} (the change is in the store: replicas apply it at their next poll)", err=True)


def _line(mv: ModelVersion) -> str:
    flags = " pinned" * mv.pinned + (f" canary={mv.canary_percent:g}%" if mv.canary_percent is not None else "")
    signed = " signed" if mv.signature_path else ""
    return f"{mv.name}:{mv.version}  {mv.status}{flags}{signed}  {mv.digest}  owner={mv.owner}  {mv.path}"


@registry_app.command("register")
def register_command(
    name: NameArg,
    path: Annotated[Path, typer.Argument(help="Model file or folder.")],
    owner: Annotated[str, typer.Option(help="Team or person accountable for this model.")],
    dataset: Annotated[list[str], typer.Option("--dataset", help="Training data reference (repeatable).")] = [],  # noqa: B006
    signature: Annotated[
        Path | None,
        typer.Option(
            help="OpenSSF model-signing signature (default: the model's model.sig when --public-key is given)."
        ),
    ] = None,
    public_key: Annotated[
        Path | None, typer.Option("--public-key", help="Public key the signature must verify with.")
    ] = None,
    meta: Annotated[list[str], typer.Option("--meta", help="KEY=VALUE metadata (repeatable).")] = [],  # noqa: B006
    db: DbOption = None,
) -> None:
    """Hash a model and register it as the next version of NAME (its signature verified first, if given)."""
    pairs = [m.partition("=") for m in meta]
    if any(not k or not sep for k, sep, _ in pairs):
        raise InputError("--meta takes KEY=VALUE")
    with _open(db) as reg:
        mv = reg.register(
            name,
            path,
            owner=owner,
            datasets=dataset,
            signature=signature,
            public_key=public_key,
            metadata={k: v for k, _, v in pairs},
        )
    typer.echo(
        f"registered {mv.name}:{mv.version} {mv.digest}" + (" (signature verified)" if mv.signature_path else "")
    )


@registry_app.command("list")
def list_command(
    name: Annotated[str | None, typer.Argument(help="Only this model.")] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Every registered version: name:version, status, digest, owner, path."""
    with _open(db) as reg:
        found = reg.list(name)
    if as_json:
        typer.echo(json.dumps([mv.to_dict() for mv in found], indent=2))
    for mv in found if not as_json else ():
        typer.echo(_line(mv))


@registry_app.command("show")
def show(
    name: NameArg,
    version: Annotated[int | None, typer.Argument(help="Default: the version served.")] = None,
    db: DbOption = None,
) -> None:
    """One version in full, as JSON (default: the pinned or production version, the one the gateway serves)."""
    with _open(db) as reg:
        typer.echo(json.dumps(reg.get(name, version).to_dict(), indent=2))


@registry_app.command("pin")
def pin(
    name: NameArg,
    version: Annotated[int | None, typer.Argument(min=1, help="Version to pin.")] = None,
    digest: Annotated[str | None, typer.Option(help="Pin the version with this digest (sha256:<hex>).")] = None,
    db: DbOption = None,
    redis_url: RedisOption = None,
    redis_prefix: RedisPrefixOption = "modelshield",
) -> None:
    """Serve exactly one version (one digest) of NAME, whatever is in production."""
    if (version is None) == (digest is None):
        raise InputError("give a VERSION or --digest, not both")
    announce = _Announce(db, redis_url, redis_prefix)
    with _open(db) as reg:
        mv = reg.pin(name, version) if version is not None else reg.pin_digest(name, digest or "")
    typer.echo(f"pinned {mv.ref} {mv.digest}")
    announce()


@registry_app.command("unpin")
def unpin(
    name: NameArg,
    db: DbOption = None,
    redis_url: RedisOption = None,
    redis_prefix: RedisPrefixOption = "modelshield",
) -> None:
    """Serve the production version of NAME again."""
    announce = _Announce(db, redis_url, redis_prefix)
    with _open(db) as reg:
        reg.unpin(name)
    typer.echo(f"unpinned {name}")
    announce()


@registry_app.command("promote")
def promote(
    name: NameArg,
    version: VersionArg,
    to: Annotated[str | None, typer.Option(help="staged or production (default: the next stage).")] = None,
    canary: Annotated[
        float | None, typer.Option(help="Release to production as a canary taking this percent of traffic.")
    ] = None,
    db: DbOption = None,
    redis_url: RedisOption = None,
    redis_prefix: RedisPrefixOption = "modelshield",
) -> None:
    """registered -> staged -> production; --canary P makes it a production canary at P% of traffic."""
    announce = _Announce(db, redis_url, redis_prefix)
    with _open(db) as reg:
        current = reg.get(name, version)
        stage = to or ("production" if canary is not None or current.status != "registered" else "staged")
        mv = reg.promote(name, version, stage, canary=canary)
    typer.echo(f"{mv.ref} is now {mv.status}" + (f" (canary, {canary:g}% of traffic)" if canary is not None else ""))
    announce()


@registry_app.command("retire")
def retire(
    name: NameArg,
    version: VersionArg,
    db: DbOption = None,
    redis_url: RedisOption = None,
    redis_prefix: RedisPrefixOption = "modelshield",
) -> None:
    """Retire a version: unpinned, never served again."""
    announce = _Announce(db, redis_url, redis_prefix)
    with _open(db) as reg:
        mv = reg.retire(name, version)
    typer.echo(f"{mv.ref} is retired")
    announce()


@registry_app.command("verify")
def verify(
    name: NameArg,
    version: Annotated[int | None, typer.Argument(min=1, help="Default: every live version.")] = None,
    db: DbOption = None,
    redis_url: RedisOption = None,
    redis_prefix: RedisPrefixOption = "modelshield",
) -> None:
    """Re-hash versions (and re-check signatures): exit 0 if all match, 1 (and quarantine) on a mismatch."""
    from modelshield.registry.store import SERVABLE

    announce = _Announce(db, redis_url, redis_prefix)
    with _open(db) as reg:
        targets = (
            [reg.get(name, version)] if version is not None else [mv for mv in reg.list(name) if mv.status in SERVABLE]
        )
        if not targets:
            raise InputError(f"model {name!r} has no live version to verify")
        failed = []
        for mv in targets:
            try:
                reg.verify(mv)
                typer.echo(f"ok {mv.ref} {mv.digest}")
            except IntegrityError as exc:
                failed.append(exc)
                typer.echo(f"QUARANTINED {exc}")
    if failed:
        announce()  # a quarantine changes what serves
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add `modelshield registry ...`."""
    app.add_typer(registry_app, name="registry", help="Model registry: versions by digest, promote, pin, verify.")
