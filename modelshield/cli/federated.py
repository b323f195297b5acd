"""``modelshield federated run``: federated learning on Flower with client-level DP, SecAgg+, robust aggregation and attacks.

Writes ``OUT/federated.json`` (accuracy and ε per round, and each aggregator against each attack) and
``OUT/federated.html``. ``--demo`` trains on scikit-learn digits with 10 clients: one run with
client-level DP under SecAgg+, one comparing every aggregator against every attack at 10 % malicious
clients. Needs ``pip install 'modelshield[federated]'``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from modelshield.core.errors import InputError

if TYPE_CHECKING:
    from modelshield.privacy.federated import FederatedSettings

federated_app = typer.Typer(
    help="Federated learning on Flower: client-level DP, SecAgg+, robust aggregation, attacks.", no_args_is_help=True
)

DEMO_ATTACKS = ("label-flip", "backdoor", "model-replacement", "sign-flip", "gaussian")


def _choice(value: str, allowed: tuple[str, ...], flag: str) -> str:
    if value not in allowed:
        raise InputError(f"{flag} must be one of {', '.join(allowed)}, not {value!r}")
    return value


def _demo_settings(rounds: int | None, clients: int, seed: int) -> tuple[FederatedSettings, FederatedSettings]:
    from modelshield.privacy.federated import AGGREGATORS, Experiment, FederatedSettings

    privacy = FederatedSettings(
        clients=clients, rounds=rounds or 20, dp="fixed", noise_multiplier=1.0, clip=1.0, target_epsilon=8.0,
        secagg=True, seed=seed,
    )  # fmt: skip
    experiments = [Experiment(aggregator=a) for a in AGGREGATORS] + [
        Experiment(aggregator=a, attack=att, malicious_fraction=0.1) for att in DEMO_ATTACKS for a in AGGREGATORS
    ]
    attacks = FederatedSettings(clients=clients, rounds=rounds or 8, experiments=tuple(experiments), seed=seed)
    return privacy, attacks


def _summary(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(markup=False)
    last = report["rounds"][-1] if report["rounds"] else None
    if last:
        eps = "no DP" if last["epsilon"] is None else f"ε = {last['epsilon']:.2f}"
        console.print(
            f"after {last['round']} rounds: accuracy {100 * last['accuracy']:.1f} %, {eps}"
            f"{', SecAgg+' if report['secure_aggregation'] else ''}"
        )
    if report["attacks"]:
        table = Table("attack", "aggregator", "malicious", "attack success", "accuracy", "clean accuracy")
        for a in report["attacks"]:
            asr = "–" if a["attack_success_rate"] is None else f"{100 * a['attack_success_rate']:.1f} %"
            clean = "–" if a["clean_accuracy"] is None else f"{100 * a['clean_accuracy']:.1f} %"
            table.add_row(
                a["attack"], a["aggregator"], f"{100 * a['malicious_fraction']:.0f} %", asr,
                f"{100 * a['accuracy']:.1f} %", clean,
            )  # fmt: skip
        console.print(table)


@federated_app.command("run")
def run_command(
    out: Annotated[Path, typer.Option("--out", help="directory for federated.json and federated.html")],
    demo: Annotated[
        bool,
        typer.Option("--demo", help="digits, 10 clients: DP under SecAgg+, and every aggregator against every attack"),
    ] = False,
    clients: Annotated[int, typer.Option("--clients", help="number of clients (SuperNodes)")] = 10,
    rounds: Annotated[
        int | None, typer.Option("--rounds", help="federated rounds (default 10; demo 20 for DP, 8 for attacks)")
    ] = None,
    fraction_fit: Annotated[float, typer.Option("--fraction-fit", help="share of clients sampled each round")] = 1.0,
    dp: Annotated[str, typer.Option("--dp", help="client-level DP: fixed or adaptive server-side clipping")] = "none",
    noise_multiplier: Annotated[
        float, typer.Option("--noise-multiplier", help="z: noise std over the clip norm")
    ] = 1.0,
    clip: Annotated[
        float, typer.Option("--clip", help="clip norm C of each client's update (adaptive: the start)")
    ] = 1.0,
    target_epsilon: Annotated[float | None, typer.Option("--target-epsilon", help="stop before ε exceeds this")] = None,
    delta: Annotated[float | None, typer.Option("--delta", help="δ (default min(1e-5, 1/clients^1.1))")] = None,
    accountant: Annotated[str, typer.Option("--accountant", help="rdp or pld")] = "rdp",
    secagg: Annotated[bool, typer.Option("--secagg", help="SecAgg+: the server sees only the sum of updates")] = False,
    aggregator: Annotated[
        str, typer.Option("--aggregator", help="fedavg, krum, trimmed-mean, median or bulyan")
    ] = "fedavg",
    attack: Annotated[
        str | None, typer.Option("--attack", help="label-flip, backdoor, model-replacement, sign-flip or gaussian")
    ] = None,
    malicious_fraction: Annotated[
        float, typer.Option("--malicious-fraction", help="share of clients that attack")
    ] = 0.1,
    byzantine: Annotated[
        int | None, typer.Option("--byzantine", help="f that Krum and Bulyan assume (default: the malicious count)")
    ] = None,
    engine: Annotated[
        str, typer.Option("--engine", help="simulation (Ray) or deployment (SuperLink + SuperNodes)")
    ] = "simulation",
    partition: Annotated[str, typer.Option("--partition", help="iid or dirichlet (label skew)")] = "iid",
    alpha: Annotated[float, typer.Option("--alpha", help="Dirichlet concentration (smaller: more skew)")] = 0.5,
    train: Annotated[
        str, typer.Option("--train", help="training data spec, split among clients")
    ] = "sklearn:digits:train",
    test: Annotated[str, typer.Option("--test", help="the server's test data spec")] = "sklearn:digits:test",
    arch: Annotated[
        str | None, typer.Option("--arch", help="network class 'package.module:Class' (default: a digits MLP)")
    ] = None,
    arch_kwargs: Annotated[str | None, typer.Option("--arch-kwargs", help="JSON keyword arguments for --arch")] = None,
    local_epochs: Annotated[int, typer.Option("--local-epochs", help="client epochs per round")] = 2,
    batch_size: Annotated[int, typer.Option("--batch-size", help="client batch size")] = 32,
    lr: Annotated[float, typer.Option("--lr", help="client SGD learning rate (momentum 0.9)")] = 0.05,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    verbose: Annotated[bool, typer.Option("--verbose", help="show Flower's and Ray's logs")] = False,
) -> None:
    """Train across clients on Flower and write the federated report."""
    from modelshield.cli._options import parse_arch_kwargs
    from modelshield.privacy.federated import (
        AGGREGATORS,
        ATTACKS,
        DP_MODES,
        ENGINES,
        PARTITIONS,
        Experiment,
        FederatedSettings,
        run,
    )
    from modelshield.privacy.federated.report import build_report, render_html
    from modelshield.privacy.federated.settings import DEFAULT_ARCH

    _choice(engine, ENGINES, "--engine")
    _choice(dp, DP_MODES, "--dp")
    _choice(aggregator, AGGREGATORS, "--aggregator")
    _choice(partition, PARTITIONS, "--partition")
    if attack is not None:
        _choice(attack, ATTACKS[1:], "--attack")
    if demo:
        privacy, attacks = _demo_settings(rounds, clients, seed)
        runs = [privacy.check(), attacks.check()]
    else:
        experiments = [Experiment(aggregator=aggregator, byzantine=byzantine)]
        if attack:  # first the attacked run (its rounds are reported), then the clean baseline it is scored against
            experiments.insert(0, Experiment(aggregator, attack, malicious_fraction, byzantine))
        settings = FederatedSettings(
            clients=clients, rounds=rounds or 10, fraction_fit=fraction_fit, train=train, test=test,
            arch=arch or DEFAULT_ARCH, arch_kwargs=parse_arch_kwargs(arch_kwargs) or {}, partition=partition,
            alpha=alpha, local_epochs=local_epochs, batch_size=batch_size, lr=lr, dp=dp,
            noise_multiplier=noise_multiplier, clip=clip, target_epsilon=target_epsilon, delta=delta,
            accountant=accountant, secagg=secagg, experiments=tuple(experiments), seed=seed,
        )  # fmt: skip
        runs = [settings.check()]
    results = [run(s, engine=engine, verbose=verbose) for s in runs]
    if demo:
        report = build_report(results[0], results[1])
    else:
        report = build_report(results[0], results[0] if attack else None)
    if runs[0].train.startswith("sklearn:digits"):  # the probe inverts 8×8 images: digits runs only
        report["inversion"] = _inversion(runs[0])
    out.mkdir(parents=True, exist_ok=True)
    (out / "federated.json").write_text(json.dumps(report, indent=1))
    (out / "federated.html").write_text(render_html(report))
    _summary(report)
    typer.echo(f"wrote {out / 'federated.json'} and {out / 'federated.html'}")


def _inversion(settings: FederatedSettings) -> list[dict[str, Any]]:
    """Gradient inversion of one client's image from what the server sees, with and without the run's SecAgg/DP."""
    from sklearn.datasets import load_digits

    from modelshield.privacy.federated.inversion_probe import inversion_probe

    typer.echo("probing gradient inversion (what a curious server could rebuild) ...", err=True)
    digits = load_digits()
    z = settings.noise_multiplier if settings.dp != "none" else 0.0
    return inversion_probe(digits.images / 16.0, digits.target, clients=settings.clients, noise_multiplier=z)


def register(app: typer.Typer) -> None:
    """Add the `federated` command group."""
    app.add_typer(federated_app, name="federated")
