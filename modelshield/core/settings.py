"""Settings from ``modelshield.toml`` and ``MODELSHIELD_*`` environment variables.

Precedence, highest first: command-line options, environment variables, the TOML file
(``$MODELSHIELD_CONFIG`` or ``./modelshield.toml``), built-in defaults. A team keeps its
assessment policy (ε sweep, gate) in the TOML file next to the model code, so CI and laptops
run the same assessment.

The ``[verify]`` table (and ``MODELSHIELD_VERIFY_*``) drives verification on load: ``load_model`` checks a
model's signature and provenance lock entry before reading it. Relative paths in the TOML file are relative
to the file's folder, so a committed ``modelshield.toml`` works from any working directory.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from modelshield.core.errors import InputError, validation_line


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


class VerifyDefaults(BaseModel):
    """The ``[verify]`` table: what ``load_model`` checks before it reads a model file."""

    model_config = ConfigDict(extra="forbid")

    public_key: Path | None = None
    signature: Path | None = None
    allow_unverified: bool = False
    require_signature: bool = False
    lock: Path | None = None


VERIFY_ENV = {
    "MODELSHIELD_VERIFY_KEY": "public_key",
    "MODELSHIELD_VERIFY_SIGNATURE": "signature",
    "MODELSHIELD_ALLOW_UNVERIFIED": "allow_unverified",
    "MODELSHIELD_REQUIRE_SIGNATURE": "require_signature",
    "MODELSHIELD_LOCK": "lock",
}
_PATH_FIELDS = ("public_key", "lock")  # ``signature`` is looked up beside the model, not the TOML


class Settings(BaseModel):
    """Everything configurable outside the command line."""

    model_config = ConfigDict(extra="forbid")

    device: str | None = None
    assess: AssessDefaults = Field(default_factory=AssessDefaults)
    verify: VerifyDefaults = Field(default_factory=VerifyDefaults)


def _verify_table(data: dict[str, object], base: Path) -> None:
    """Anchor the TOML's relative paths at its folder, then let ``MODELSHIELD_VERIFY_*`` override them."""
    table = data.get("verify")
    if isinstance(table, dict):
        for name in _PATH_FIELDS:
            if isinstance(table.get(name), str):
                given = Path(table[name]).expanduser()
                table[name] = str(given if given.is_absolute() else base / given)
    for env, name in VERIFY_ENV.items():
        if os.environ.get(env):
            if not isinstance(table, dict):
                table = data["verify"] = {}
            table[name] = os.environ[env]


def load_settings(path: str | Path | None = None) -> Settings:
    """Read the TOML file (if any), then apply ``MODELSHIELD_DEVICE`` and ``MODELSHIELD_VERIFY_*`` from the environment."""
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
    _verify_table(data, file.absolute().parent)
    if os.environ.get("MODELSHIELD_DEVICE"):
        data["device"] = os.environ["MODELSHIELD_DEVICE"]
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        where = ".".join(str(p) for p in exc.errors()[0]["loc"])
        from_env = [e for e, name in VERIFY_ENV.items() if where == f"verify.{name}" and os.environ.get(e)]
        raise InputError(f"{from_env[0] if from_env else file}: {validation_line(exc)}") from None
