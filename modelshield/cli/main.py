"""Entry point: one typer app, one module per command group, errors as one line and exit 2."""

from __future__ import annotations

import os
import sys

import typer
from rich.console import Console

import modelshield
from modelshield.cli.assess import assess_command
from modelshield.cli.crypto import crypto_app
from modelshield.cli.provenance import provenance_app
from modelshield.cli.sbom import sbom_command
from modelshield.cli.scan import scan_command
from modelshield.core.errors import ModelShieldError

app = typer.Typer(
    name="modelshield",
    help="Secure machine-learning systems: assess, harden, ship, serve, watch, respond, govern.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("assess")(assess_command)
app.command("scan")(scan_command)
app.command("sbom")(sbom_command)
app.add_typer(crypto_app, name="crypto", help="Encrypt, decrypt and re-key model checkpoints (AES-256-GCM envelopes).")
app.add_typer(provenance_app, name="provenance", help="Pin third-party weights and datasets by digest; verify before use.")


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
