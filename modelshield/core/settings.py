"""Settings from ``modelshield.toml`` and ``MODELSHIELD_*`` environment variables.

Precedence, highest first: command-line options, environment variables, the TOML file
(``$MODELSHIELD_CONFIG`` or ``./modelshield.toml``), built-in defaults. A team keeps its
assessment policy (ε sweep, gate) in the TOML file next to the model code, so CI and laptops
run the same assessment.
"""

from __future__ import annotations

import os
from pathlib import Path

import tomllib
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from modelshield.core.errors import InputError


class AssessDefaults(BaseModel):
    """The ``[assess]`` table: defaults for ``modelshield assess`` options."""

    model_config = ConfigDict(extra="forbid")

    eps: list[float] | None = None
    eps_l2: list[float] | None = None
    gating_eps: float | None = None
    fail_under: float | None = Field(default=None, ge=0.0, le=1.0)
    attacks: list[str] | None = None
    samples: int | None = Field(default=None, ge=1)
    steps: int | None = Field(default=None, ge=1)
    queries: int | None = Field(default=None, ge=1)


class Settings(BaseModel):
    """Everything configurable outside the command line."""

    model_config = ConfigDict(extra="forbid")

    device: str | None = None
    assess: AssessDefaults = Field(default_factory=AssessDefaults)


def load_settings(path: str | Path | None = None) -> Settings:
    """Read the TOML file (if any), then apply ``MODELSHIELD_DEVICE`` from the environment."""
    explicit = path or os.environ.get("MODELSHIELD_CONFIG")
    file = Path(explicit) if explicit else Path("modelshield.toml")
    data: dict[str, object] = {}
    if file.is_file():
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"{file}: not valid TOML ({exc})") from None
    elif explicit:
        raise InputError(f"settings file {file} does not exist")
    if os.environ.get("MODELSHIELD_DEVICE"):
        data["device"] = os.environ["MODELSHIELD_DEVICE"]
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InputError(f"{file}: {where}: {first['msg']}") from None
