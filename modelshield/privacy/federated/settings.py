"""What one federated run is: the task, the clients, the privacy and the experiments, checked in one place.

A run's settings travel to Flower's processes as one JSON file (the Deployment Engine starts the
ServerApp and ClientApps in processes of its own and hands them only ``run_config`` values), so
everything here is plain data: strings, numbers and lists.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from modelshield.core.errors import InputError, MissingFileError

AGGREGATORS = ("fedavg", "krum", "trimmed-mean", "median", "bulyan")
ATTACKS = ("none", "label-flip", "backdoor", "model-replacement", "sign-flip", "gaussian")
DP_MODES = ("none", "fixed", "adaptive")
PARTITIONS = ("iid", "dirichlet")
#: attacks that change the client's training data; the rest change the update it sends
DATA_ATTACKS = ("label-flip", "backdoor", "model-replacement")
TARGETED_ATTACKS = ("backdoor", "model-replacement")
DEFAULT_ARCH = "modelshield.privacy.federated.task:DigitsMLP"


@dataclass(frozen=True)
class Experiment:
    """One training run inside a federated session: an aggregator facing an attack."""

    aggregator: str = "fedavg"
    attack: str = "none"
    malicious_fraction: float = 0.0
    #: Byzantine clients the robust rules assume (Krum's and Bulyan's f); None: the malicious count, at least 1
    byzantine: int | None = None


@dataclass(frozen=True)
class FederatedSettings:
    """Everything a federated run needs; ``check()`` raises ``InputError`` naming the first bad value."""

    clients: int = 10
    rounds: int = 10
    #: fraction of clients sampled each round (client-level DP's sampling rate q)
    fraction_fit: float = 1.0
    train: str = "sklearn:digits:train"
    test: str = "sklearn:digits:test"
    arch: str = DEFAULT_ARCH
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    partition: str = "iid"
    alpha: float = 0.5
    local_epochs: int = 2
    batch_size: int = 32
    lr: float = 0.05
    dp: str = "none"
    noise_multiplier: float = 1.0
    clip: float = 1.0
    target_epsilon: float | None = None
    delta: float | None = None
    accountant: str = "rdp"
    secagg: bool = False
    experiments: tuple[Experiment, ...] = (Experiment(),)
    seed: int = 0
    #: where the ServerApp writes its results (JSON)
    out: str = ""

    @property
    def per_round(self) -> int:
        """Clients sampled each round."""
        return max(1, math.floor(self.fraction_fit * self.clients))

    @property
    def dp_delta(self) -> float:
        """δ of the client-level guarantee: given, or 1/clients^1.1 (below 1/n, the usual convention)."""
        return self.delta if self.delta is not None else min(1e-5, 1.0 / self.clients**1.1)

    def check(self) -> FederatedSettings:
        """Raise ``InputError`` for the first value that cannot work; return self."""
        if self.clients < 2:
            raise InputError(f"--clients must be at least 2, got {self.clients}")
        if self.rounds < 1:
            raise InputError(f"--rounds must be at least 1, got {self.rounds}")
        if not 0 < self.fraction_fit <= 1:
            raise InputError(f"--fraction-fit must lie in (0, 1], got {self.fraction_fit}")
        if self.partition not in PARTITIONS:
            raise InputError(f"--partition must be one of {', '.join(PARTITIONS)}, not {self.partition!r}")
        if not self.alpha > 0:
            raise InputError(f"--alpha must be positive, got {self.alpha}")
        if self.local_epochs < 1 or self.batch_size < 1 or not self.lr > 0:
            raise InputError("--local-epochs, --batch-size and --lr must be positive")
        if self.dp not in DP_MODES:
            raise InputError(f"--dp must be one of fixed, adaptive, not {self.dp!r}")
        if self.dp != "none":
            if not self.noise_multiplier > 0:
                raise InputError(f"--noise-multiplier must be positive, got {self.noise_multiplier}")
            if not self.clip > 0:
                raise InputError(f"--clip must be positive, got {self.clip}")
            if self.target_epsilon is not None and not self.target_epsilon > 0:
                raise InputError(f"--target-epsilon must be positive, got {self.target_epsilon}")
            if not 0 < self.dp_delta < 1:
                raise InputError(f"--delta must lie in (0, 1), got {self.dp_delta}")
            if self.accountant not in ("rdp", "pld"):
                raise InputError(f"--accountant must be rdp or pld, not {self.accountant!r}")
            if self.secagg and self.dp == "adaptive":
                raise InputError(
                    "adaptive clipping needs each client's update norm on the server, which SecAgg+ hides",
                    hint="use --dp fixed with --secagg (clients clip, the server adds the noise)",
                )
        if self.secagg and self.per_round < 3:
            raise InputError("SecAgg+ needs at least 3 clients per round")
        if not self.experiments:
            raise InputError("a run needs at least one experiment")
        for e in self.experiments:
            self._check_experiment(e)
        return self

    def _check_experiment(self, e: Experiment) -> None:
        if e.aggregator not in AGGREGATORS:
            raise InputError(f"--aggregator must be one of {', '.join(AGGREGATORS)}, not {e.aggregator!r}")
        if e.attack not in ATTACKS:
            raise InputError(f"--attack must be one of {', '.join(ATTACKS[1:])}, not {e.attack!r}")
        if not 0 <= e.malicious_fraction < 1:
            raise InputError(f"--malicious-fraction must lie in [0, 1), got {e.malicious_fraction}")
        if e.attack != "none" and self.malicious(e) == 0:
            raise InputError(
                f"--malicious-fraction {e.malicious_fraction} of {self.clients} clients is no client",
                hint="raise --malicious-fraction or --clients",
            )
        if e.aggregator != "fedavg" and self.dp != "none":
            raise InputError(
                f"client-level DP is accounted for the clipped mean (sensitivity C/m), not for {e.aggregator}",
                hint="use --aggregator fedavg with --dp",
            )
        if e.aggregator != "fedavg" and self.secagg:
            raise InputError(
                f"{e.aggregator} must see each client's update, and SecAgg+ shows the server only their sum",
                hint="use --aggregator fedavg with --secagg",
            )
        f, n = self.byzantine(e), self.per_round
        need = {"krum": 2 * f + 3, "bulyan": 4 * f + 3}.get(e.aggregator, 0)
        if n < need:
            raise InputError(
                f"{e.aggregator} with {f} Byzantine client(s) needs at least {need} clients per round, got {n}"
            )

    def malicious(self, e: Experiment) -> int:
        """How many clients (partition ids 0..k-1) attack in experiment ``e``."""
        return round(e.malicious_fraction * self.clients) if e.attack != "none" else 0

    def byzantine(self, e: Experiment) -> int:
        """f for Krum and Bulyan: as given, else the malicious clients among those sampled, at least 1."""
        if e.byzantine is not None:
            return e.byzantine
        return max(1, math.ceil(self.malicious(e) * self.per_round / self.clients))

    def with_out(self, out: str) -> FederatedSettings:
        """The same settings writing their results to ``out``."""
        return replace(self, out=out)

    def to_json(self) -> str:
        """Plain JSON, read back by ``from_json`` in Flower's processes."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> FederatedSettings:
        """Settings from ``to_json``'s text."""
        raw = json.loads(text)
        raw["experiments"] = tuple(Experiment(**e) for e in raw.get("experiments", [{}]))
        return cls(**raw)

    @classmethod
    def from_file(cls, path: str) -> FederatedSettings:
        """Settings from a JSON file (the ``settings-file`` run-config value)."""
        p = Path(path)
        if not p.is_file():
            raise MissingFileError(f"federated settings file {path} does not exist")
        return cls.from_json(p.read_text())
