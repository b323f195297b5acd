"""Options and option parsers shared by the command groups: numbers (ε as k/255), bounds, shapes, steps, HTTP
headers, the gateways' Redis prefix; and library errors reworded to name the flags a command-line user types."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any

import typer

from modelshield.core.errors import InputError, ModelShieldError

RedisPrefixOption = Annotated[
    str,
    typer.Option(
        "--redis-prefix",
        envvar="MODELSHIELD_REDIS_PREFIX",
        help="The gateways' rate_limits.redis_prefix (one per deployment sharing a Redis).",
    ),
]


def parse_floats(text: str, what: str) -> list[float]:
    """Parse '0.01,0.03,8/255' into floats; fractions are accepted since ε is often k/255."""
    out = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            num, _, den = part.partition("/")
            value = float(num) / float(den) if den else float(num)
        except (ValueError, ZeroDivisionError):
            raise InputError(f"{what}: {part!r} is not a number (use e.g. 0.03 or 8/255)") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise InputError(f"{what}: {part!r} is not a finite number")
        out.append(value)
    if not out:
        raise InputError(f"{what}: no values given")
    return out


def parse_bounds(text: str) -> tuple[float, float]:
    """'lo,hi' for the valid input range, lo < hi."""
    lo_hi = parse_floats(text, "--bounds")
    if len(lo_hi) != 2 or lo_hi[0] >= lo_hi[1]:
        raise InputError("--bounds takes 'lo,hi' with lo < hi")
    return lo_hi[0], lo_hi[1]


def parse_headers(pairs: list[str]) -> dict[str, str]:
    """'Name: value' pairs from repeated --header options; values are sent, never printed."""
    headers = {}
    for pair in pairs:
        name, sep, value = pair.partition(":")
        if not sep or not name.strip():
            raise InputError(f"--header {pair.split(':')[0]!r}...: use 'Name: value'")
        headers[name.strip()] = value.strip()
    return headers


def parse_arch_kwargs(text: str | None) -> dict[str, Any] | None:
    """``--arch-kwargs``: a JSON object of keyword arguments for ``--arch`` (None when not given)."""
    if not text:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(
            f"--arch-kwargs is not JSON ({e.msg}): give an object, e.g. '{{\"num_classes\": 10}}'"
        ) from None
    if not isinstance(value, dict):
        raise InputError("--arch-kwargs must be a JSON object, e.g. '{\"num_classes\": 10}'")
    return value


def parse_shape(text: str, what: str) -> tuple[int, ...]:
    """'C,H,W' (or any number of dimensions) as positive integers."""
    dims = parse_floats(text, what)
    if any(d != int(d) or d < 1 for d in dims):
        raise InputError(f"{what} takes positive integers like 3,32,32, not {text!r}")
    return tuple(int(d) for d in dims)


def parse_step(text: str) -> tuple[float, bool]:
    """PGD's step: absolute ('0.01', '2/255') or relative to ε ('eps/4', '0.25*eps', '2.5*eps/10').

    Returns (value, relative); a relative step is that fraction of each attack's ε.
    """
    bad = InputError(f"--pgd-step: {text!r} is not a step (use e.g. 0.01, 2/255, eps/4 or 0.25*eps)")
    cleaned = text.replace(" ", "").lower()
    relative = "eps" in cleaned
    if cleaned.count("eps") > 1 or "," in cleaned:
        raise bad
    value = 1.0
    for op, token in _terms(cleaned.replace("eps", "1")):
        try:
            number = float(token)
            value = value * number if op == "*" else value / number
        except (ValueError, ZeroDivisionError):
            raise bad from None
    if not 0 < value < float("inf"):
        raise bad
    return value, relative


def _terms(expr: str) -> list[tuple[str, str]]:
    """'1/4*2' → [('*', '1'), ('/', '4'), ('*', '2')]: a product of numbers, left to right."""
    out, op, token = [], "*", ""
    for ch in expr:
        if ch in "*/":
            out.append((op, token))
            op, token = ch, ""
        else:
            token += ch
    out.append((op, token))
    return out


#: Python argument names in library messages, as the flags a CLI user types instead.
_FLAG_WORDS = (
    (re.compile(r"\barch='([^']*)'"), r"--arch \1"),
    (re.compile(r"\btrusted_types=\[\.\.\.\]"), "--trust-type MODULE.CLASS (once per type)"),
    (re.compile(r"\binput_shape=\(([^)]*)\)"), lambda m: "--input-shape " + m.group(1).replace(" ", "")),
    (re.compile(r"\bnum_classes=(\w+)"), r"--num-classes \1"),
    (
        re.compile(r"\b(arch_kwargs|label_column|input_shape|image_size|num_classes)\b"),
        lambda m: "--" + m.group(1).replace("_", "-"),
    ),
    (re.compile(r"(?<![-\w])arch\b(?! \d)"), "--arch"),
    (re.compile(r"\bmean/std\b"), "--mean/--std"),
)


def flag_words(exc: ModelShieldError) -> ModelShieldError:
    """The same error, its message and hint naming command-line flags instead of Python arguments."""

    def words(text: str) -> str:
        for pattern, repl in _FLAG_WORDS:
            text = pattern.sub(repl, text)
        return text

    if type(exc).__init__ is not ModelShieldError.__init__:
        return exc
    return type(exc)(words(str(exc)), hint=words(exc.hint))


def default_command_group(default: str) -> type[Any]:
    """A typer group class whose first argument, when it names no subcommand, is the input of ``default``:
    ``modelshield anonymize IN.csv ...`` runs ``anonymize run IN.csv ...`` while ``anonymize risk`` stays a verb."""
    import click
    from typer.core import TyperGroup

    class DefaultCommandGroup(TyperGroup):
        def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
            if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
                args = [default, *args]
            return super().parse_args(ctx, args)

    return DefaultCommandGroup


def emit_text(text: str, out: Path | None, what: str = "") -> None:
    """A rendered document to stdout, or written whole to ``out`` (atomically: a failed run leaves no torn file),
    saying on stderr what was written where."""
    import typer

    if out is None:
        typer.echo(text, nl=not text.endswith("\n"))
        return
    from modelshield.core.files import atomic_output

    with atomic_output(out, mode=0o644) as f:
        f.write(text.encode("utf-8"))
    if what:
        typer.echo(f"{what} written to {out}", err=True)
