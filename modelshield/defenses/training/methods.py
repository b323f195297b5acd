"""The methods by name, as the CLI and configuration files choose them."""

from __future__ import annotations

from collections.abc import Callable

from modelshield.core.errors import InputError
from modelshield.defenses.training.adversarial import FastTraining, PGDTraining, StandardTraining
from modelshield.defenses.training.distillation import Distillation
from modelshield.defenses.training.free import FreeTraining
from modelshield.defenses.training.trades import TRADES
from modelshield.defenses.training.trainer import Trainer

METHODS: dict[str, Callable[..., Trainer]] = {  # each method's own keyword arguments, checked by make_trainer
    "standard": StandardTraining,
    "pgd": PGDTraining,
    "trades": TRADES,
    "fast": FastTraining,
    "free": FreeTraining,
    "distill": Distillation,
}


def make_trainer(
    method: str,
    *,
    eps: float | None = None,
    steps: int | None = None,
    beta: float | None = None,
    replays: int | None = None,
    temperature: float | None = None,
) -> Trainer:
    """Build a method from its name and the options that apply to it; unused options are refused."""
    if method not in METHODS:
        raise InputError(f"unknown training method {method!r}; choose one of {', '.join(METHODS)}")
    given = {"steps": steps, "beta": beta, "replays": replays, "temperature": temperature}
    accepted = {
        "pgd": {"steps"},
        "trades": {"steps", "beta"},
        "free": {"replays"},
        "distill": {"temperature"},
        "standard": set(),
        "fast": set(),
    }[method]
    stray = sorted(k for k, v in given.items() if v is not None and k not in accepted)
    if stray:
        raise InputError(f"method {method} takes no {', '.join(stray)}")
    kwargs = {k: v for k, v in given.items() if v is not None}
    if method in ("standard", "distill"):
        return METHODS[method](**kwargs)
    if eps is None:
        raise InputError(f"method {method} needs eps, the perturbation budget it trains against")
    return METHODS[method](eps, **kwargs)
