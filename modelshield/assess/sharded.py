"""Run an assessment's per-sample attacks on Ray workers, each over a contiguous range of samples.

``RayShards`` is an ``AttackRunner`` for ``assess(..., runner=...)``: every attack that works sample by
sample (FGSM, PGD, APGD, C&W, DeepFool, Square, HopSkipJump on its subset) is cut into contiguous sample
ranges, one per worker; each worker runs ``assess.runner.run_attack``, the code a single process runs,
with the ranges' global sample indices, so each sample draws the random numbers it draws in one process
(``attacks.noise``) and the ranges put back together are the single run's per-sample outcome. Everything
that needs the whole set (clean accuracy, curves, certification, detectors, sanity checks, findings)
stays on the driver, in ``assess.runner``.

A guarded endpoint (``RemoteModel(abstentions="count")``) counts the queries it abstained on in each copy of
the model: each worker's copy starts an attack from the driver's count (so it reads labels as the driver's copy
would: ``labels_from_scores`` is False once anything was withheld) and hands back what it saw, which is added to
the driver's count, so the report's ``model.abstained`` is the single process's. When the first abstention of
the whole run comes inside a sharded attack, the ranges after the one it came in ran as if nothing had been
withheld, where one process would have known: they run once more, knowing (this happens at most once a run).

Workers never receive a model object: Ray ships arguments with (cloud)pickle, and a model that came from
an untrusted file must not travel, or be unpickled, that way. Each worker calls a ``loader`` (a
module-level function with plain arguments: paths, architecture, shapes) and loads the model from the same
source the driver was given, through the same safe loaders.
"""

from __future__ import annotations

import math
import re
import socket
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from modelshield.assess.results import AttackError
from modelshield.assess.runner import run_attack
from modelshield.attacks.base import Attack, AttackResult
from modelshield.core.errors import DependencyError, InputError
from modelshield.core.model import Model

if TYPE_CHECKING:
    from numpy.typing import NDArray

ModelLoader = Callable[[], Model]
"""Loads the model on a worker from its source; must pickle by reference (a module-level function or a
``functools.partial`` of one with plain arguments), never by value."""

_ADDRESS = re.compile(r"^(local|auto|ray://[^\s:/]+:\d{1,5}|[^\s:/]+:\d{1,5})$")


def check_address(address: str) -> str:
    """The address as given, if it is one Ray can take: ``local``, ``auto``, ``ray://host:port`` or ``host:port``."""
    if not _ADDRESS.match(address):
        raise InputError(
            f"--ray {address!r} is not a Ray address",
            hint="use local (start Ray here), auto (the cluster `ray start` began here), ray://host:port or host:port",
        )
    return address


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """Refuse a ``host:port`` (or ``ray://host:port``) nothing answers at, in seconds: Ray itself retries
    an unreachable head for minutes, logging as it goes."""
    if address in ("local", "auto"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise InputError(
            f"--ray {address}: nothing answers there ({exc.strerror or type(exc).__name__})",
            hint="start the head with `ray start --head`, or use --ray local",
        ) from None


def shard_ranges(n: int, workers: int, batch_size: int) -> list[range]:
    """Cut ``n`` samples into at most ``workers`` contiguous, non-empty ranges, as even as possible.

    Cuts fall on batch boundaries when there are at least as many batches as workers, so every worker
    sends the model exactly the batches one process sends; with fewer batches the cuts fall between them
    (the numbers do not depend on the batch size, only the float order of a batch's kernels might).
    """
    if n < 1 or workers < 1:
        return [range(0, n)] if n else []
    batches = math.ceil(n / batch_size)
    unit, units = (batch_size, batches) if batches >= workers else (1, n)
    k = min(workers, units)
    cuts = [min(n, round(i * units / k) * unit) for i in range(k + 1)]
    return [range(a, b) for a, b in zip(cuts, cuts[1:], strict=False) if b > a]


@dataclass
class _Shard:
    """One worker's per-sample outcome on its range, as arrays (cheap to ship back)."""

    x_adv: NDArray[Any]
    success: NDArray[np.bool_]
    claimed: NDArray[np.bool_]
    queries: NDArray[np.int64] | None
    total_queries: int | None
    abstained: int = 0


def abstained_so_far(model: Model | None) -> int:
    """How many queries a guarded endpoint's model has seen withheld (0 for a model that never abstains)."""
    return int(getattr(model, "abstained", 0) or 0)


def add_abstentions(driver: Model | None, shards: list[_Shard | AttackError]) -> None:
    """Count on the driver's copy of a guarded endpoint the abstentions its workers' copies saw."""
    if driver is not None and hasattr(driver, "abstained"):
        driver.abstained = abstained_so_far(driver) + sum(s.abstained for s in shards if isinstance(s, _Shard))


def run_shards(
    launch: Callable[[int, range, int], Any],
    gather: Callable[[list[Any]], list[_Shard | AttackError]],
    ranges: list[range],
    driver: Model | None,
) -> list[_Shard | AttackError]:
    """Each range's outcome: ``launch(i, range, abstained)`` starts worker ``i`` on its range, ``gather`` waits
    for what was launched; a guarded endpoint's abstentions are counted on ``driver`` as one process counts them."""
    seen = abstained_so_far(driver)
    shards = gather([launch(i, r, seen) for i, r in enumerate(ranges)])
    first = next((i for i, s in enumerate(shards) if isinstance(s, _Shard) and s.abstained), None)
    if seen == 0 and first is not None and first + 1 < len(shards):  # later ranges ran without knowing: again
        known = sum(s.abstained for s in shards[: first + 1] if isinstance(s, _Shard))
        shards[first + 1 :] = gather([launch(i, r, known) for i, r in enumerate(ranges) if i > first])
    add_abstentions(driver, shards)
    return shards


def merge_shards(shards: list[_Shard | AttackError]) -> AttackResult | AttackError:
    """The whole set's outcome from its ranges in order; the first range's error (as one process would stop at)."""
    for shard in shards:
        if isinstance(shard, AttackError):
            return shard
    parts = [s for s in shards if isinstance(s, _Shard)]
    queries = [s.queries for s in parts if s.queries is not None]
    totals = [s.total_queries for s in parts if s.total_queries is not None]
    return AttackResult(
        x_adv=torch.from_numpy(np.concatenate([s.x_adv for s in parts])),
        success=torch.from_numpy(np.concatenate([s.success for s in parts])),
        claimed=torch.from_numpy(np.concatenate([s.claimed for s in parts])),
        queries=torch.from_numpy(np.concatenate(queries)) if len(queries) == len(parts) else None,
        total_queries=sum(totals) if len(totals) == len(parts) else None,
    )


class ShardWorker:
    """A Ray actor: loads the model once, then attacks the ranges it is given."""

    def __init__(self, loader: ModelLoader, threads: int, batch_size: int, seed: int) -> None:
        torch.set_num_threads(max(1, threads))  # its CPU share: more threads than cores only spin
        self.model, self.batch_size, self.seed = loader(), batch_size, seed
        _ = self.model.has_scores  # an endpoint asked for its output kind here, as the driver's is, not in an attack

    def run(
        self, attack: Attack, x: NDArray[Any], y: NDArray[Any], start: int, stop: int, abstained: int = 0
    ) -> _Shard | AttackError:
        """Attack samples ``start:stop`` of the set ``x`` with their global indices; ``abstained`` is the driver's
        count of a guarded endpoint's abstentions so far, which this worker's copy starts from."""
        counts = hasattr(self.model, "abstained")
        if counts:
            self.model.abstained = abstained  # type: ignore[attr-defined]
        device = self.model.device
        xs = torch.from_numpy(np.ascontiguousarray(x[start:stop])).to(device)
        ys = torch.from_numpy(np.ascontiguousarray(y[start:stop])).to(device)
        res = run_attack(self.model, attack, xs, ys, batch_size=self.batch_size, seed=self.seed, first_index=start)
        if isinstance(res, AttackError):
            return res
        return _Shard(
            x_adv=res.x_adv.detach().cpu().numpy(),
            success=res.success.cpu().numpy(),
            claimed=res.claimed.cpu().numpy(),
            queries=None if res.queries is None else res.queries.cpu().numpy(),
            total_queries=res.total_queries,
            abstained=abstained_so_far(self.model) - abstained if counts else 0,
        )


class RayShards:
    """Runs each attack on ``workers`` Ray actors over contiguous sample ranges (an ``AttackRunner``).

    ``address`` is ``local`` (start Ray in this process with ``workers × cpus_per_worker`` CPUs), ``auto``
    or a cluster address; a process that is already a Ray driver keeps its own cluster. Use it as a context
    manager: on exit the actors end, and Ray too if it was started here. ``driver`` is the model the assessment
    runs on here: the abstentions a guarded endpoint gave the workers are counted on it.
    """

    def __init__(
        self,
        loader: ModelLoader,
        *,
        address: str,
        workers: int = 2,
        batch_size: int = 512,
        seed: int = 0,
        cpus_per_worker: int = 1,
        gpus_per_worker: float = 0.0,
        driver: Model | None = None,
    ) -> None:
        if workers < 1 or cpus_per_worker < 1 or gpus_per_worker < 0:
            raise InputError("--ray-workers and the CPUs per worker must be at least 1, GPUs per worker ≥ 0")
        self.loader, self.address = loader, check_address(address)
        self.workers, self.batch_size, self.seed = workers, batch_size, seed
        self.cpus, self.gpus = cpus_per_worker, gpus_per_worker
        self.driver = driver
        self._actors: list[Any] = []
        self._started = False
        self._data: tuple[Tensor, Any, Any] | None = None

    def __enter__(self) -> RayShards:
        ray = _ray()
        if not ray.is_initialized():  # else this process is already a Ray driver (a notebook, a test): its cluster
            check_reachable(self.address)
            self._start(ray)
        actor = ray.remote(num_cpus=self.cpus, num_gpus=self.gpus)(ShardWorker)
        self._actors = [actor.remote(self.loader, self.cpus, self.batch_size, self.seed) for _ in range(self.workers)]
        try:  # every worker has loaded the model: a source it cannot load fails here, in one line
            ray.get([a.__ray_ready__.remote() for a in self._actors])
        except ray.exceptions.RayActorError as exc:
            self.__exit__()
            raise DependencyError(f"a Ray worker could not load the model: {_one_line(exc)}") from None
        return self

    def __exit__(self, *_exc: object) -> None:
        ray = _ray()
        for a in self._actors:
            ray.kill(a)
        self._actors = []
        self._data = None
        self._shutdown(ray)

    def _start(self, ray: Any) -> None:
        """Start Ray here (``local``) or join the cluster at the address, with every failure in one line."""
        try:
            with warnings.catch_warnings():  # a tip about a future default, printed by every ray.init
                warnings.filterwarnings("ignore", message="Tip: In future versions of Ray", category=FutureWarning)
                self._init(ray)
        except (ConnectionError, RuntimeError, TimeoutError, ValueError) as exc:
            raise InputError(f"could not reach Ray at {self.address}: {_one_line(exc)}") from None
        except Exception as exc:  # Ray raises a bare Exception when its own processes fail to start
            ray.shutdown()
            raise DependencyError(f"Ray did not start ({self.address}): {_one_line(exc)}") from None
        self._started = True

    def _init(self, ray: Any) -> None:
        if self.address == "local":
            ray.init(
                num_cpus=self.workers * self.cpus, include_dashboard=False, log_to_driver=False, configure_logging=False
            )
        else:
            ray.init(address=self.address, log_to_driver=False, configure_logging=False)

    def _shutdown(self, ray: Any) -> None:
        if self._started:
            ray.shutdown()
            self._started = False

    def __call__(self, attack: Attack, x: Tensor, y: Tensor) -> AttackResult | AttackError:
        """Attack ``(x, y)``, the first rows of the evaluation set, range by range on the workers."""
        if not self._actors:
            raise RuntimeError("RayShards is used inside `with`: the workers start there")
        ray = _ray()
        x_ref, y_ref = self._put(x, y)
        ranges = shard_ranges(len(x), len(self._actors), self.batch_size)
        actors = self._actors

        def launch(i: int, r: range, abstained: int) -> Any:
            return actors[i].run.remote(attack, x_ref, y_ref, r.start, r.stop, abstained)

        try:
            shards = run_shards(launch, ray.get, ranges, self.driver)
        except ray.exceptions.RayActorError as exc:
            raise DependencyError(f"a Ray worker died: {_one_line(exc)}") from None
        merged = merge_shards(shards)
        if isinstance(merged, AttackResult):
            merged.x_adv, merged.success = merged.x_adv.to(x.device), merged.success.to(x.device)
            merged.claimed = merged.claimed.to(x.device)
        return merged

    def _put(self, x: Tensor, y: Tensor) -> tuple[Any, Any]:
        """The set in Ray's object store once (workers on this node read it in place); a prefix of it is the
        same object, since shards slice by index."""
        ray = _ray()
        if self._data is None or not (self._data[0].data_ptr() == x.data_ptr() and len(self._data[0]) >= len(x)):
            self._data = (x, ray.put(x.detach().cpu().numpy()), ray.put(y.cpu().numpy()))
        return self._data[1], self._data[2]


def _ray() -> Any:
    """Ray, imported only when an assessment is sharded (it is a heavy import)."""
    try:
        import ray
    except ImportError:
        raise DependencyError(
            "--ray needs Ray", hint="pip install 'modelshield[ray]' (the same pin as flwr[simulation])"
        ) from None
    return ray


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]


__all__ = [
    "ModelLoader",
    "RayShards",
    "abstained_so_far",
    "add_abstentions",
    "check_address",
    "check_reachable",
    "merge_shards",
    "run_shards",
    "shard_ranges",
]
