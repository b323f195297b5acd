"""``modelshield redteam``: attack a live gateway and score what its controls saw, in one joint report.

``--demo`` starts the demo gateway (``modelshield serve --demo``'s config: guard, rate limits, quota, extraction
signal, live monitor) in its own process on a free loopback port, issues one API key per attack so the blue side
can tell them apart, runs the campaign, reads the gateway's audit log and stops the gateway. ``--target URL``
attacks someone's gateway with the keys given (``--key``, one per attack, reused in turn); the blue side then
needs the gateway's audit database (``--audit-db``): the gateway has no admin API that reads audit records.
Writes ``DIR/redteam.json`` and ``DIR/redteam.md``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from modelshield.core.errors import InputError

if TYPE_CHECKING:
    from modelshield.redteam import CampaignPlan, Target

DEFAULT_ATTACKS = "square,hopskipjump,jacobian,knockoff,membership"
KEY_ENV = "MODELSHIELD_API_KEY"
#: wait after each attack for the gateway's asynchronous controls (extraction scoring, 2-second monitor checks)
SETTLE_S = 3.0


def _attacks(spec: str) -> list[str]:
    from modelshield.redteam import ATTACKS

    names = [a.strip() for a in spec.split(",") if a.strip()]
    bad = [a for a in names if a not in ATTACKS]
    if bad or not names:
        raise InputError(f"--attacks takes a comma list of {', '.join(ATTACKS)}, not {spec!r}")
    return list(dict.fromkeys(names))


@contextmanager
def _demo_gateway(state: Path, attacks: list[str]) -> Iterator[tuple[str, str, dict[str, tuple[str, str]], Path]]:
    """The demo gateway in a child process: yields (base URL, audit DB URL, (subject, key) per attack, weights)."""
    from modelshield.cli.serve import free_port, gateway_process, prepare_demo
    from modelshield.serve.apikeys import ApiKeyStore

    port = free_port()
    config, _, _ = prepare_demo(state, "127.0.0.1", port)
    db_url = f"sqlite:///{state / 'modelshield.db'}"
    run = secrets.token_hex(3)
    store = ApiKeyStore.open(db_url)
    try:
        keys = {
            a: store.create(f"red-{a}-{run}", ["predictor"], expires_in=3600, attributes={"clearance": "internal"})
            for a in attacks
        }
    finally:
        store.close()
    with gateway_process(config, port, state / "redteam-gateway.log") as url:
        issued = {a: (f"red-{a}-{run}", k.plaintext) for a, k in keys.items()}
        yield url, db_url, issued, state / "model" / "model.safetensors"


def _campaign(target: Target, plan: CampaignPlan, attacks: list[str], keys: dict[str, tuple[str, str]]) -> list[Any]:
    """Each attack in turn under its own (subject, key), progress on stderr."""
    from modelshield.redteam import AttackRun, run_campaign

    def started(name: str, subject: str) -> None:
        typer.echo(f"red: {name} under {subject} ...", err=True)

    def done(run: AttackRun) -> None:
        typer.echo(
            f"  {run.queries} queries, {run.success_metric} {run.success:.3f}, stopped: {run.stop_reason}", err=True
        )

    plan_keys = [(name, *keys[name]) for name in attacks]
    return run_campaign(target, plan, plan_keys, settle_s=SETTLE_S, on_start=started, on_done=done)


def _print(report: dict[str, Any], paths: tuple[Path, Path]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(markup=False)  # the target and paths print as written
    table = Table(title=f"red team vs blue team: {report['target']}")
    for col in ("attack", "queries", "success", "stopped", "detected", "after", "first control", "had then"):
        table.add_column(col, justify="right" if col in ("queries", "success", "after", "had then") else "left")
    for r in report["attacks"]:
        had = r["attacker_had_at_detection"]
        table.add_row(
            r["attack"],
            str(r["queries"]),
            f"{r['success']:.3f} {r['success_metric']}",
            r["stop_reason"] + (f" ({r['stopped_by']['kind']})" if r["stopped_by"] else ""),
            "yes" if r["detected"] else "no",
            "—" if r["detected_after_queries"] is None else str(r["detected_after_queries"]),
            ", ".join(r["first_controls"]) or "—",
            "—" if had is None else f"{had:.3f}",
        )
    console.print(table)
    console.print(f"wrote {paths[0]} and {paths[1]}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``modelshield redteam``."""

    @app.command("redteam")
    def redteam(
        out: Annotated[Path, typer.Option(help="Folder for redteam.json and redteam.md.")],
        demo: Annotated[
            bool, typer.Option("--demo", help="Start the demo gateway and run the campaign against it.")
        ] = False,
        target: Annotated[
            str | None, typer.Option(help="Predict URL of a live gateway, e.g. http://host:8000/v1/models/m/predict.")
        ] = None,
        key: Annotated[
            list[str] | None,
            typer.Option(help=f"API key for --target, one per attack, reused in turn (or ${KEY_ENV}); never printed."),
        ] = None,
        subject: Annotated[
            list[str] | None,
            typer.Option(help="--target: the identity each --key authenticates as (in the audit log), same order."),
        ] = None,
        audit_db: Annotated[
            str | None, typer.Option(help="--target: the gateway's audit database URL, for the blue side.")
        ] = None,
        data: Annotated[
            str, typer.Option(help="--target: data like the model's (evasion inputs, seeds, non-members, fidelity).")
        ] = "sklearn:digits:test",
        members: Annotated[
            str | None, typer.Option(help="--target: records known to be in the training set (membership probe).")
        ] = None,
        attacks: Annotated[str, typer.Option(help="Comma list of attacks to run, in order.")] = DEFAULT_ATTACKS,
        budget: Annotated[int, typer.Option(help="Queries (samples) per attack.")] = 300,
        evasion_samples: Annotated[int, typer.Option(help="Inputs each evasion attack perturbs.")] = 5,
        rules: Annotated[
            Path | None, typer.Option(help="Alert rules (YAML) for the blue side; default: one rule per control.")
        ] = None,
        state_dir: Annotated[
            Path | None, typer.Option(help="--demo: state folder (default: $MODELSHIELD_HOME/redteam-demo).")
        ] = None,
        seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    ) -> None:
        """Run evasion, extraction and membership attacks through a live gateway; report what its controls saw."""
        from modelshield.redteam import CampaignPlan

        if demo == (target is not None):
            raise InputError("give --demo or --target URL (one of them)")
        names = _attacks(attacks)
        plan = CampaignPlan(budget=budget, evasion_samples=evasion_samples, seed=seed)
        from modelshield.monitor.alerts.rules import load_rules
        from modelshield.redteam import blue_rules

        rule_set = load_rules(rules) if rules is not None else blue_rules()
        if demo:
            report = _run_demo(names, plan, rule_set, state_dir)
        else:
            assert target is not None
            keys = key or ([os.environ[KEY_ENV]] if os.environ.get(KEY_ENV) else [])
            report = _run_target(target, keys, subject or [], audit_db, data, members, names, plan, rule_set)
        from modelshield.redteam.report import write_report

        _print(report, write_report(report, out))


def _run_demo(names: list[str], plan: CampaignPlan, rules: Any, state_dir: Path | None) -> dict[str, Any]:
    import sqlalchemy as sa
    import torch

    from modelshield.core.datasets import sklearn_dataset
    from modelshield.core.storage import data_home
    from modelshield.demo import DEMO_INPUT_SHAPE, DEMO_NUM_CLASSES
    from modelshield.integrity.safe_load import load_model
    from modelshield.redteam import score_campaign, target_from_data
    from modelshield.redteam.report import joint_report

    torch.set_num_threads(1)
    state = state_dir or data_home() / "redteam-demo"
    with _demo_gateway(state, names) as (url, db_url, keys, weights):
        local = load_model(weights, arch="modelshield.demo:DigitsCNN", input_shape=DEMO_INPUT_SHAPE)
        test, train = sklearn_dataset("digits", "test"), sklearn_dataset("digits", "train")
        target = target_from_data(
            f"{url}/v1/models/demo/predict", test, train, plan, local.predict(test.x), DEMO_NUM_CLASSES
        )
        runs = _campaign(target, plan, names, keys)
    engine = sa.create_engine(db_url)
    try:
        rows = score_campaign(runs, engine, rules, settle_s=SETTLE_S)
    finally:
        engine.dispose()
    return joint_report(rows, target=f"demo gateway ({url})", budget=plan.budget, blue=f"audit log {db_url}")


def _run_target(
    url: str,
    keys: list[str],
    subjects: list[str],
    audit_db: str | None,
    data: str,
    members: str | None,
    names: list[str],
    plan: CampaignPlan,
    rules: Any,
) -> dict[str, Any]:
    import sqlalchemy as sa

    from modelshield.core.datasets import load_dataset
    from modelshield.redteam import score_campaign, target_from_data
    from modelshield.redteam.report import joint_report

    if not keys:
        raise InputError(f"--target needs an API key: --key KEY (one per attack) or ${KEY_ENV}")
    if len(subjects) != len(keys):
        raise InputError("--target needs one --subject per --key: the identity the audit log names for it")
    if audit_db is None:
        raise InputError(
            "--target needs --audit-db URL for the blue side: the gateway has no admin API that reads audit records"
        )
    if "membership" in names and members is None:
        raise InputError("the membership probe needs --members (records known to be in the training set)")
    test = load_dataset(data)
    train = load_dataset(members, bounds=test.bounds, input_shape=tuple(test.x.shape[1:])) if members else None
    num_classes = int(test.y.max()) + 1
    target = target_from_data(url, test, train, plan, None, num_classes)
    per_attack = {a: (subjects[i % len(keys)], keys[i % len(keys)]) for i, a in enumerate(names)}
    runs = _campaign(target, plan, names, per_attack)
    engine = sa.create_engine(audit_db)
    try:
        rows = score_campaign(runs, engine, rules, settle_s=SETTLE_S)
    finally:
        engine.dispose()
    return joint_report(rows, target=url, budget=plan.budget, blue=f"audit log {engine.url!r}")
