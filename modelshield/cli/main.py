"""Entry point: one typer app, one module per command group, errors as one line and exit 2.

Each module in `modelshield.cli` that defines `register(app)` adds its own commands, so a new command
group is one new file. Those modules keep heavy imports (torch, fastapi) inside their commands so that
`modelshield --help` stays fast.
"""

from __future__ import annotations

import os
import sys

import typer
from rich.console import Console

import modelshield
import importlib
import pkgutil

import modelshield.cli as cli_package
from modelshield.core.errors import ModelShieldError

app = typer.Typer(
    name="modelshield",
    help="Secure machine-learning systems: assess, harden, ship, serve, watch, respond, govern.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _register_command_groups(target: typer.Typer) -> None:
    """Let every `modelshield.cli` module with a `register(app)` function add its commands."""
    for info in sorted(pkgutil.iter_modules(cli_package.__path__), key=lambda m: m.name):
        if info.name in {"main"} or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{cli_package.__name__}.{info.name}")
        register = getattr(module, "register", None)
        if callable(register):
            register(target)


_register_command_groups(app)


@app.command("version")
def version() -> None:
    """Print the installed modelshield version."""
    typer.echo(modelshield.__version__)


def main() -> None:
    """Run the CLI; turn library errors into one line on stderr and exit code 2, never a traceback."""
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        app()
    except ModelShieldError as exc:
        err.print(f"error: {exc.diagnostics()}", markup=False)
        sys.exit(2)
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        err.print(f"error: {exc.strerror or exc}{where}", markup=False)
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("interrupted", markup=False)
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - the last line of defence against tracebacks
        if os.environ.get("MODELSHIELD_DEBUG"):
            raise
        err.print(f"internal error: {type(exc).__name__}: {exc} (set MODELSHIELD_DEBUG=1 for a traceback)", markup=False)
        sys.exit(3)


if __name__ == "__main__":
    main()
