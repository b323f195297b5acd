"""``modelshield pipeline``: run the secure lifecycle as stages with gates, verify a run, write CI templates.

``pipeline run`` exits 0 when every gate passed, 1 when a gate stopped the pipeline (the stage and its reason
are printed), 2 on bad input. ``--demo`` writes a demo system (digits data, a base model, a threat model and
``pipeline.yaml``) and runs it; ``--plant pickle|poison|weak`` plants a bad artefact for a gate to catch.
``pipeline verify`` exits 1 when the signed run record or an artefact of the run was changed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from modelshield.core.errors import InputError, IntegrityError

if TYPE_CHECKING:
    from modelshield.pipeline import Stage

pipeline_app = typer.Typer(
    help="The secure ML lifecycle as one pipeline: stages with gates, OpenLineage events, a signed run record.",
    no_args_is_help=True,
)

#: --template → (the packaged file, where the CI looks for it)
TEMPLATES = {
    "github": ("github-actions.yml", Path(".github/workflows/modelshield.yml")),
    "gitlab": ("gitlab-ci.yml", Path(".gitlab-ci.yml")),
}


class Template(str, Enum):
    github = "github"
    gitlab = "gitlab"


class PlantKind(str, Enum):
    pickle = "pickle"
    poison = "poison"
    weak = "weak"


def _echo(stage: Stage, entry: dict[str, Any]) -> None:
    mark = {"passed": "ok  ", "failed": "FAIL", "skipped": "skip"}.get(entry["status"], "    ")
    again = " (passed earlier, artefacts re-verified)" if entry.get("resumed") else ""
    typer.echo(f"{mark} {stage.name:<14} {stage.kind:<9} {entry['reason']}{again}")


@pipeline_app.command("run")
def run_command(
    file: Annotated[Path | None, typer.Argument(help="pipeline.yaml (omit with --demo or --resume).")] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Run folder (default: runs/<UTC time>; with --demo: pipeline-demo)."),
    ] = None,
    resume: Annotated[Path | None, typer.Option("--resume", help="Continue the run in this folder.")] = None,
    key: Annotated[
        Path | None, typer.Option("--key", help="Private key (PEM) that signs the model and the run record.")
    ] = None,
    demo: Annotated[
        bool, typer.Option("--demo", help="Write the demo digit-reader system into OUT and run it.")
    ] = False,
    plant: Annotated[
        PlantKind | None,
        typer.Option("--plant", help="With --demo: plant a pickled model, poisoned data or a weak model."),
    ] = None,
) -> None:
    """Run the stages in order; stop at the first failed gate with its reason."""
    from modelshield.pipeline import load_pipeline, run_pipeline

    if (file is not None) + (resume is not None) + demo != 1:
        raise InputError("give one of: a pipeline file, --demo, or --resume RUN_DIR")
    if plant is not None and not demo:
        raise InputError("--plant goes with --demo (it plants a bad artefact in the demo system)")
    if resume is not None:
        if out is not None:
            raise InputError("--resume continues the run where it is; drop --out")
        outcome = run_pipeline(run_dir=resume, key=key, resume=True, progress=_echo)
    else:
        if demo:
            from modelshield.demo import train_digits_cnn
            from modelshield.pipeline.demo import write_demo

            folder = out or Path("pipeline-demo")
            typer.echo(f"writing the demo system into {folder / 'system'} ...", err=True)
            file = write_demo(folder / "system", train_digits_cnn, plant.value if plant else None)
            run_dir = folder / "run"
        else:
            assert file is not None
            run_dir = out or Path("runs") / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        config, base = load_pipeline(file)
        typer.echo(f"pipeline {config.name}: {len(config.stages)} stages, run folder {run_dir}")
        outcome = run_pipeline(config, base, run_dir=run_dir, key=key, progress=_echo)
    signed = (outcome.run_dir / "record.sig.json").exists()
    record = f"run record {outcome.run_dir / 'record.json'}" + (" (signed)" if signed else " (unsigned: no key)")
    if outcome.status == "failed":
        typer.echo(f"stopped at stage {outcome.stopped_at}: {outcome.reason}", err=True)
        typer.echo(record)
        raise typer.Exit(1)
    typer.echo(f"passed: every gate of {len(outcome.stages)} stages; {record}")


@pipeline_app.command("verify")
def verify_command(
    run_dir: Annotated[Path, typer.Argument(help="A pipeline run folder.")],
    public_key: Annotated[Path, typer.Option("--public-key", help="Public key (PEM) of the key that signed the run.")],
) -> None:
    """Check a run's signed record, that record.json is what was signed, and that its artefacts are unchanged."""
    from modelshield.pipeline import verify_record

    try:
        record = verify_record(run_dir, public_key)
    except IntegrityError as exc:
        typer.echo(f"FAILED: {exc}", err=True)
        raise typer.Exit(1) from None
    stopped = f", stopped at {record['stopped_at']}" if record.get("stopped_at") else ""
    produced = sum(1 for a in record["artifacts"].values() if a.get("produced"))
    typer.echo(
        f"verified: run {record['run_id']} of pipeline {record['pipeline']}, {record['status']}{stopped}; "
        f"{len(record['stages'])} stages, {produced} artefacts re-hashed"
    )


@pipeline_app.command("init")
def init_command(
    template: Annotated[Template, typer.Option("--template", help="github (GitHub Actions) or gitlab (GitLab CI).")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Where to write it (default: the CI's own path).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a CI template that runs `modelshield pipeline run` and keeps the signed run folder."""
    from importlib import resources

    from modelshield.core.files import atomic_output

    name, default = TEMPLATES[template.value]
    target = out or default
    if target.exists() and not force:
        raise InputError(f"{target} already exists", hint="pass --force to overwrite it")
    text = resources.files("modelshield.pipeline").joinpath("templates", name).read_text(encoding="utf-8")
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(target, mode=0o644) as f:
        f.write(text.encode("utf-8"))
    typer.echo(f"wrote {target}")


def register(app: typer.Typer) -> None:
    """Add `modelshield pipeline`."""
    app.add_typer(pipeline_app, name="pipeline", help="Run the secure lifecycle as stages with gates.")
