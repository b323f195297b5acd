"""Entry point: one typer app, one module per command group, errors as one line and exit 2.

Each module in `modelshield.cli` that defines `register(app)` adds its own commands, so a new command
group is one new file. `modelshield <command> ...` imports only the module behind `<command>` (looked
up in ``COMMANDS``), so a CI gate such as `modelshield scan` does not pay for every other group's
imports; `modelshield --help`, `version` and any name not in the table load every group. A test checks
``COMMANDS`` against what discovery finds, so a new module cannot be left out of it.
"""

from __future__ import annotations

import functools
import importlib
import os
import pkgutil
import sys
from typing import Any

import typer

import modelshield
from modelshield.core.errors import ModelShieldError

#: command (or command group) name → the `modelshield.cli` module whose register() adds it
COMMANDS: dict[str, str] = {
    "anonymize": "anonymize",
    "assess": "assess",
    "audit": "audit",
    "crypto": "crypto",
    "dashboard": "dashboard",
    "deps": "deps",
    "federated": "federated",
    "govern": "govern",
    "extract": "extract",
    "harden": "harden",
    "incident": "incident",
    "ingest": "ingest",
    "keys": "keys",
    "monitor": "monitor",
    "privacy": "privacy",
    "pii": "pii",
    "pipeline": "pipeline",
    "poison": "poison",
    "provenance": "provenance",
    "registry": "registry",
    "redteam": "redteam",
    "sandbox": "sandbox",
    "sanitize": "sanitize",
    "sbom": "sbom",
    "scan": "scan",
    "serve": "serve",
    "siem": "siem",
    "synth": "synth",
    "sign": "sign",
    "sign-keygen": "sign",
    "threat": "threat",
    "tokenize": "tokenize",
    "train": "train",
    "verify": "sign",
    "watermark": "watermark",
}


def version() -> None:
    """Print the installed modelshield version."""
    typer.echo(modelshield.__version__)


def command_modules() -> list[str]:
    """Every `modelshield.cli` module that may define register(app), by name, in order."""
    package = os.path.dirname(__file__)
    return sorted(m.name for m in pkgutil.iter_modules([package]) if m.name != "main" and not m.name.startswith("_"))


def build_app(modules: list[str] | None = None) -> typer.Typer:
    """A typer app with the `version` command and the commands of ``modules`` (default: every module).

    `version` is always there, so the app stays a group even with one module's single command in it:
    typer runs a lone command without its name, which would break `modelshield scan FILE`."""
    target = typer.Typer(
        name="modelshield",
        help="Secure machine-learning systems: assess, harden, ship, serve, watch, respond, govern.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
    )
    for name in command_modules() if modules is None else modules:
        register = getattr(importlib.import_module(f"{__package__}.{name}"), "register", None)
        if callable(register):
            register(target)
    target.command("version")(version)
    return target


@functools.cache
def full_app() -> typer.Typer:
    """The app with every command group, built once (for `--help`, tests and library callers)."""
    return build_app()


def __getattr__(name: str) -> Any:
    """`modelshield.cli.main.app` is the full app, built on first use rather than at import."""
    if name == "app":
        return full_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def app_for(args: list[str]) -> typer.Typer:
    """Only the command group the first argument names, when the table knows it; otherwise every group."""
    module = COMMANDS.get(args[0]) if args else None
    return build_app([module]) if module else full_app()


def _print_error(message: str) -> None:
    from rich.console import Console  # only on the error path: rich costs start-up time

    Console(stderr=True, highlight=False, soft_wrap=True).print(message, markup=False)


def main() -> None:
    """Run the CLI; turn library errors into one line on stderr and exit code 2, never a traceback."""
    try:
        app_for(sys.argv[1:])()
    except ModelShieldError as exc:
        _print_error(f"error: {exc.diagnostics()}")
        sys.exit(2)
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        _print_error(f"error: {exc.strerror or exc}{where}")
        sys.exit(2)
    except KeyboardInterrupt:
        _print_error("interrupted")
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - the last line of defence against tracebacks
        if os.environ.get("MODELSHIELD_DEBUG"):  # the traceback too, but never a different exit code
            import traceback

            traceback.print_exc()
            _print_error(f"internal error: {type(exc).__name__}: {exc}")
        else:
            _print_error(f"internal error: {type(exc).__name__}: {exc} (set MODELSHIELD_DEBUG=1 for a traceback)")
        sys.exit(3)


if __name__ == "__main__":
    main()
