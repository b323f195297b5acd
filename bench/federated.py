"""Federated learning on Flower: round time with SecAgg+ and client-level DP, accuracy at ε, backdoor resistance.

Every figure comes from a real run on Flower 1.42's Simulation Engine (a SuperLink in simulation mode,
Ray, ``flwr run``), digits (1,347 training images) split IID, the 64-64-10 MLP, two local epochs of
SGD (lr 0.05, momentum 0.9) per round. Ray gets ``--cpus`` CPUs, one per client actor.

``--engine deployment`` runs the same on the Deployment Engine (one SuperNode process per client,
and Flower starts one ``flwr-clientapp`` process per client message, so its round time is mostly
process start-up and PyTorch import).

Part 1 — round time (``--round-time``): ``--clients`` (10) clients, all sampled, ``--rounds`` rounds of plain FedAvg,
FedAvg under SecAgg+, FedAvg with client-level DP (server-side fixed clipping, z = 1, C = 1), and DP
under SecAgg+ (clients clip). Median seconds per round, round 1 left out (it includes the workers'
imports), and the ratio to plain FedAvg.

Part 2 — accuracy at client-level ε (``--accuracy``): ε = 1, 3, 8 at δ = 1e-5 with 10 clients (all
sampled, q = 1) and 100 clients (10 sampled, q = 0.1), ``--dp-rounds`` rounds; z is the smallest noise
multiplier whose rounds spend at most ε (``privacy.dp.accountant.noise_for_epsilon``), C = 1. Beside
each, the same clients without DP.

Part 3 — backdoor (``--backdoor``): 10 clients, 1 malicious (10 %), model replacement (BadNets
trigger, half the malicious shard relabelled to 0, update boosted ×10 in the last round; Bagdasaryan et al. 2020);
backdoor success (triggered test digits of other classes read as 0) and clean accuracy after
``--rounds`` rounds under FedAvg, Krum, trimmed mean, median and Bulyan.

    python bench/federated.py --round-time --accuracy --backdoor --markdown
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from modelshield.privacy.dp.accountant import noise_for_epsilon  # noqa: E402
from modelshield.privacy.federated import (  # noqa: E402
    AGGREGATORS,
    Experiment,
    FederatedSettings,
    run_deployment,
    run_simulation,
)
from modelshield.privacy.federated.report import attack_table  # noqa: E402

DELTA = 1e-5


ENGINE = "simulation"


def _run(settings: FederatedSettings, cpus: int) -> dict[str, Any]:
    started = time.perf_counter()
    result = run_simulation(settings, num_cpus=cpus) if ENGINE == "simulation" else run_deployment(settings)
    result["wall_seconds"] = time.perf_counter() - started
    return result


def round_time(rounds: int, cpus: int, clients: int) -> list[dict[str, Any]]:
    """Median round seconds for plain FedAvg, SecAgg+, client-level DP and both, same clients and model."""
    configs = {
        "FedAvg": {},
        "FedAvg + SecAgg+": {"secagg": True},
        "FedAvg + client-level DP": {"dp": "fixed"},
        "FedAvg + DP + SecAgg+": {"dp": "fixed", "secagg": True},
    }
    rows = []
    for name, extra in configs.items():
        result = _run(FederatedSettings(clients=clients, rounds=rounds, **extra), cpus)  # type: ignore[arg-type]
        seconds = [r["seconds"] for r in result["experiments"][0]["rounds"][1:]]
        rows.append({"config": name, "clients": clients, "median_round_s": statistics.median(seconds), "rounds": rounds,
                     "final_accuracy": result["experiments"][0]["rounds"][-1]["accuracy"]})  # fmt: skip
    base = rows[0]["median_round_s"]
    for r in rows:
        r["ratio"] = r["median_round_s"] / base
    return rows


def accuracy(rounds: int, cpus: int, populations: list[int]) -> list[dict[str, Any]]:
    """Final accuracy at client-level ε = 1, 3, 8 (and without DP) with 10 (all sampled) and 100 (10 sampled) clients."""
    rows = []
    for clients, fraction in ((n, 1.0 if n <= 10 else 10 / n) for n in populations):
        q = max(1, int(fraction * clients)) / clients
        plain = _run(FederatedSettings(clients=clients, rounds=rounds, fraction_fit=fraction), cpus)
        rows.append({"clients": clients, "q": q, "target": None, "epsilon": None, "z": None,
                     "accuracy": plain["experiments"][0]["rounds"][-1]["accuracy"]})  # fmt: skip
        for eps in (1.0, 3.0, 8.0):
            z = noise_for_epsilon(eps, q, rounds, DELTA)
            s = FederatedSettings(
                clients=clients, rounds=rounds, fraction_fit=fraction, dp="fixed", noise_multiplier=z, clip=1.0,
                target_epsilon=eps, delta=DELTA,
            )  # fmt: skip
            last = _run(s, cpus)["experiments"][0]["rounds"][-1]
            rows.append(
                {
                    "clients": clients,
                    "q": q,
                    "target": eps,
                    "epsilon": last["epsilon"],
                    "z": z,
                    "accuracy": last["accuracy"],
                }
            )
    return rows


def backdoor(rounds: int, cpus: int) -> list[dict[str, Any]]:
    """Backdoor success and accuracy with 1 of 10 clients replacing the model, per aggregator."""
    experiments = [Experiment(a) for a in AGGREGATORS] + [Experiment(a, "model-replacement", 0.1) for a in AGGREGATORS]
    result = _run(FederatedSettings(clients=10, rounds=rounds, experiments=tuple(experiments)), cpus)
    return attack_table(result["experiments"])


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.1f} %"


def markdown(results: dict[str, Any]) -> str:
    out = [
        f"Machine: {results['machine']}; Flower {results['flower']}, {results['engine']} engine, Ray CPUs {results['cpus']}.",
        "",
    ]
    if "round_time" in results:
        out += ["| configuration | clients | median round (s) | × FedAvg | final accuracy |", "|---|---|---|---|---|"]
        out += [f"| {r['config']} | {r['clients']} | {r['median_round_s']:.2f} | {r['ratio']:.2f} | {_pct(r['final_accuracy'])} |"
                for r in results["round_time"]]  # fmt: skip
        out.append("")
    if "accuracy" in results:
        out += ["| clients | q | target ε | z | ε spent | accuracy |", "|---|---|---|---|---|---|"]
        for r in results["accuracy"]:
            target = "no DP" if r["target"] is None else f"{r['target']:g}"
            spent = "–" if r["epsilon"] is None else f"{r['epsilon']:.2f}"
            z = "–" if r["z"] is None else f"{r['z']:.2f}"
            out.append(f"| {r['clients']} | {r['q']:g} | {target} | {z} | {spent} | {_pct(r['accuracy'])} |")
        out.append("")
    if "backdoor" in results:
        out += ["| aggregator | backdoor success | accuracy | clean accuracy |", "|---|---|---|---|"]
        out += [f"| {r['aggregator']} | {_pct(r['attack_success_rate'])} | {_pct(r['accuracy'])} | {_pct(r['clean_accuracy'])} |"
                for r in results["backdoor"]]  # fmt: skip
    return "\n".join(out)


def main() -> None:
    import flwr

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--round-time", action="store_true")
    p.add_argument("--accuracy", action="store_true")
    p.add_argument("--backdoor", action="store_true")
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--dp-rounds", type=int, default=20)
    p.add_argument("--cpus", type=int, default=2)
    p.add_argument("--clients", type=int, default=10, help="clients for --round-time")
    p.add_argument("--dp-clients", default="10,100", help="client populations for --accuracy (10 sampled per round)")
    p.add_argument("--engine", choices=("simulation", "deployment"), default="simulation")
    p.add_argument("--markdown", action="store_true")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args()
    global ENGINE
    ENGINE = args.engine
    results: dict[str, Any] = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "flower": flwr.__version__,
        "cpus": args.cpus,
        "engine": args.engine,
    }
    if args.round_time:
        results["round_time"] = round_time(args.rounds, args.cpus, args.clients)
    if args.accuracy:
        results["accuracy"] = accuracy(args.dp_rounds, args.cpus, [int(n) for n in args.dp_clients.split(",")])
    if args.backdoor:
        results["backdoor"] = backdoor(args.rounds, args.cpus)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)
    print(markdown(results) if args.markdown else json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
