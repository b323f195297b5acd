"""The Flower apps: a ServerApp running one or more experiments, and the ClientApp every SuperNode runs.

Both use Flower 1.42's ``DefaultWorkflow`` with its strategies (FedAvg, Krum, Bulyan, FedMedian,
FedTrimmedAvg) and DP wrappers, because SecAgg+ (``SecAggPlusWorkflow`` with ``secaggplus_mod``) is
built on that workflow in 1.42; the message-API strategies in ``flwr.serverapp.strategy`` have no
secure-aggregation path yet. One ServerApp runs every experiment of a run in turn on the same
SuperNodes, so a comparison of aggregators and attacks pays for one engine start.

Settings reach the apps either captured (``make_server_app(settings)``, the Simulation Engine) or
through the ``settings-file`` run-config value (the module-level ``server_app`` / ``client_app``
that ``flwr run`` loads on the Deployment Engine).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from flwr.app import Context, Message
from flwr.client import Client, ClientApp, NumPyClient
from flwr.client.mod import fixedclipping_mod, secaggplus_mod
from flwr.clientapp.typing import ClientAppCallable
from flwr.common import NDArrays, Scalar, ndarrays_to_parameters
from flwr.server import LegacyContext, ServerApp, ServerConfig
from flwr.server import strategy as fl_strategy
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow
from flwr.serverapp import Grid

from modelshield.core.files import atomic_path
from modelshield.privacy.federated import task
from modelshield.privacy.federated.accounting import planned_rounds
from modelshield.privacy.federated.settings import TARGETED_ATTACKS, Experiment, FederatedSettings

#: class the backdoor relabels triggered inputs to, and the share of a malicious shard it poisons
BACKDOOR_TARGET, BACKDOOR_FRACTION = 0, 0.5
#: sign flipping sends -10·Δ (outweighs nine honest clients under averaging); Gaussian clients send N(0, 1²)
SIGN_FLIP_SCALE, GAUSSIAN_SIGMA = 10.0, 1.0
#: share of each end FedTrimmedAvg cuts per coordinate (Flower's default, Yin et al. 2018)
TRIM_BETA = 0.2
SETTINGS_KEY = "settings-file"


def _settings(context: Context, captured: FederatedSettings | None) -> FederatedSettings:
    if captured is not None:
        return captured
    return FederatedSettings.from_file(str(context.run_config[SETTINGS_KEY]))


class FederatedClient(NumPyClient):
    """One client: trains the shared network on its shard, and attacks when its partition id is malicious."""

    def __init__(self, settings: FederatedSettings, partition_id: int) -> None:
        self.settings, self.partition_id = settings, partition_id

    def fit(self, parameters: NDArrays, config: dict[str, Scalar]) -> tuple[NDArrays, int, dict[str, Scalar]]:
        from modelshield.attacks.federated import add_backdoor, boost_update, flip_labels, gaussian_update, sign_flip

        s, pid = self.settings, self.partition_id
        attack = str(config["attack"]) if pid < int(config["malicious"]) else "none"
        rnd = int(config["round"])
        rng = np.random.default_rng([s.seed, rnd, pid])
        model = task.build_model(s)
        task.set_arrays(model, parameters)
        data = task.client_data(s, pid)
        x, y = data.x, data.y
        if attack == "label-flip":
            y = torch.from_numpy(flip_labels(y.numpy(), model.num_classes, rng=rng))
        elif attack in TARGETED_ATTACKS:
            xb, yb = add_backdoor(x.numpy(), y.numpy(), target=BACKDOOR_TARGET, fraction=BACKDOOR_FRACTION, rng=rng)
            x, y = torch.from_numpy(xb), torch.from_numpy(yb)
        loss = task.train_locally(model, x, y, s, seed=s.seed * 100_003 + rnd * 1_009 + pid)
        arrays = task.get_arrays(model)
        # model replacement boosts once, in the last round: Bagdasaryan et al. replace a nearly converged model, and
        # boosting while honest updates are still large overshoots (FedAvg fell to 52 % accuracy, 0 % backdoor)
        if attack == "model-replacement" and rnd < int(config["last_round"]):
            attack = "backdoor"
        if attack in ("sign-flip", "gaussian", "model-replacement"):
            update = [a - g for a, g in zip(arrays, parameters, strict=True)]
            if attack == "sign-flip":
                update = sign_flip(update, scale=SIGN_FLIP_SCALE)
            elif attack == "gaussian":
                update = gaussian_update(update, sigma=GAUSSIAN_SIGMA, rng=rng)
            else:  # model replacement: γ = n/η with η = 1 (FedAvg's plain mean)
                update = boost_update(update, factor=float(config["clients_per_round"]))
            arrays = [(g + u).astype(g.dtype) for g, u in zip(parameters, update, strict=True)]
        # DP accounting assumes the unweighted mean of clipped updates (sensitivity C/m): equal weights
        weight = 1 if bool(config["uniform"]) else len(y)
        return arrays, weight, {"loss": loss, "malicious": attack != "none"}


def make_client_app(settings: FederatedSettings | None = None) -> ClientApp:
    """The ClientApp; SuperNodes tell it their shard with node config ``partition-id``."""

    def client_fn(context: Context) -> Client:
        s = _settings(context, settings)
        return FederatedClient(s, int(context.node_config["partition-id"])).to_client()

    def privacy_mods(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
        """SecAgg+ masking, and client-side clipping under it, when the run asks for them."""
        s = _settings(context, settings)
        if not s.secagg:
            return call_next(msg, context)
        if s.dp == "fixed":  # the server sees only the masked sum, so clients clip (Flower's client-side wrapper)
            return secaggplus_mod(msg, context, lambda m, c: fixedclipping_mod(m, c, call_next))
        return secaggplus_mod(msg, context, call_next)

    return ClientApp(client_fn=client_fn, mods=[privacy_mods])


def _strategy(s: FederatedSettings, e: Experiment, common: dict[str, Any]) -> fl_strategy.Strategy:
    f = s.byzantine(e)
    inner: fl_strategy.Strategy = {
        "fedavg": lambda: fl_strategy.FedAvg(**common),
        "krum": lambda: fl_strategy.Krum(**common, num_malicious_clients=f, num_clients_to_keep=0),
        "median": lambda: fl_strategy.FedMedian(**common),
        "trimmed-mean": lambda: fl_strategy.FedTrimmedAvg(**common, beta=TRIM_BETA),
        "bulyan": lambda: fl_strategy.Bulyan(**common, num_malicious_clients=f, to_keep=0),
    }[e.aggregator]()
    m, z = s.per_round, s.noise_multiplier
    if s.dp == "fixed" and s.secagg:
        return fl_strategy.DifferentialPrivacyClientSideFixedClipping(inner, z, s.clip, m)
    if s.dp == "fixed":
        return fl_strategy.DifferentialPrivacyServerSideFixedClipping(inner, z, s.clip, m)
    if s.dp == "adaptive":
        # Andrew et al.'s σ_b = m/20 would leave no room for z ≥ m/10 with few clients; σ_b ≥ z keeps the split sane
        return fl_strategy.DifferentialPrivacyServerSideAdaptiveClipping(
            inner, z, m, initial_clipping_norm=s.clip, clipped_count_stddev=max(m / 20, z)
        )
    return inner


def run_experiment(grid: Grid, context: Context, s: FederatedSettings, e: Experiment) -> dict[str, Any]:
    """One experiment on the grid's SuperNodes: train, score each round centrally, return the record."""
    rounds, epsilons = planned_rounds(s)
    model = task.build_model(s)
    test = task.test_data(s)
    x_bd: torch.Tensor | None = None
    if e.attack in TARGETED_ATTACKS:
        from modelshield.attacks.federated import apply_trigger

        keep = test.y != BACKDOOR_TARGET
        x_bd = torch.from_numpy(apply_trigger(test.x[keep].numpy()))
    rows: list[dict[str, Any]] = []
    clock = {"end": time.perf_counter()}

    def evaluate(server_round: int, parameters: NDArrays, config: dict[str, Scalar]) -> tuple[float, dict[str, Scalar]]:
        started = time.perf_counter()
        task.set_arrays(model, parameters)
        acc = task.accuracy(model, test.x, test.y)
        if server_round > 0:
            row: dict[str, Any] = {
                "round": server_round,
                "accuracy": acc,
                "epsilon": epsilons[server_round - 1],
                "seconds": started - clock["end"],
            }
            if x_bd is not None:
                row["backdoor_success"] = task.accuracy(model, x_bd, torch.full((len(x_bd),), BACKDOOR_TARGET))
            rows.append(row)
        clock["end"] = time.perf_counter()
        return 1.0 - acc, {"accuracy": acc}

    malicious = s.malicious(e)

    def fit_config(server_round: int) -> dict[str, Scalar]:
        return {
            "round": server_round,
            "attack": e.attack,
            "malicious": malicious,
            "uniform": s.dp != "none",
            "clients_per_round": s.per_round,
            "last_round": rounds,
        }

    common: dict[str, Any] = {
        "fraction_fit": s.fraction_fit,
        "fraction_evaluate": 0.0,
        "min_fit_clients": s.per_round,
        "min_evaluate_clients": 0,
        "min_available_clients": s.clients,
        "initial_parameters": ndarrays_to_parameters(task.get_arrays(model)),
        "evaluate_fn": evaluate,
        "on_fit_config_fn": fit_config,
    }
    strategy = _strategy(s, e, common)
    legacy = LegacyContext(context=context, config=ServerConfig(num_rounds=rounds), strategy=strategy)
    fit_workflow = None
    if s.secagg:
        shares = min(s.per_round, 2 * math.ceil(math.log2(s.per_round)) + 1)
        fit_workflow = SecAggPlusWorkflow(
            num_shares=shares, reconstruction_threshold=shares // 2 + 1, max_weight=float(len(task.train_data(s)))
        )
    started = time.perf_counter()
    DefaultWorkflow(fit_workflow=fit_workflow)(grid, legacy)
    return {
        "aggregator": e.aggregator,
        "attack": e.attack,
        "malicious_fraction": e.malicious_fraction,
        "malicious_clients": malicious,
        "byzantine_assumed": s.byzantine(e) if e.aggregator in ("krum", "bulyan") else None,
        "rounds_planned": s.rounds,
        "stopped_at_target_epsilon": rounds < s.rounds,
        "seconds": time.perf_counter() - started,
        "rounds": rows,
    }


def make_server_app(settings: FederatedSettings | None = None) -> ServerApp:
    """The ServerApp: runs each experiment of the settings in turn and writes them all to ``settings.out``."""
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        s = _settings(context, settings)
        results = [run_experiment(grid, context, s, e) for e in s.experiments]
        with atomic_path(Path(s.out), mode=0o644) as tmp:
            with open(tmp, "w") as fh:
                json.dump({"settings": json.loads(s.to_json()), "experiments": results}, fh, indent=1)

    return app


# What `flwr run` loads on the Deployment Engine ([tool.flwr.app.components] in the app's pyproject.toml)
server_app = make_server_app()
client_app = make_client_app()
