"""The data-access monitor of ``modelshield harden`` and ``modelshield train --dp``: its options, and what a run
shows and writes of it (``OUT/data-access.json``, a table, alarms as audit-log signals, exit status 1)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from modelshield.core.errors import InputError

if TYPE_CHECKING:
    from modelshield.monitor.training import DataAccessMonitor, Sampling

SUMMARY_FILE = "data-access.json"

MonitorOption = Annotated[
    bool,
    typer.Option(
        "--monitor/--no-monitor",
        help="Record and check the training loop's data access (batch sizes, coverage, order, files); on by default.",
    ),
]
MonitorZOption = Annotated[
    float, typer.Option("--monitor-z", help="Alarm threshold of the data-access checks, in standard deviations.")
]
AuditDbOption = Annotated[
    str | None,
    typer.Option("--audit-db", help="Also record data-access alarms in this audit log, for `monitor alerts run`."),
]


class SummaryFile:
    """``OUT/data-access.json``, rewritten after every epoch, so a run that is interrupted (killed, out of memory)
    leaves the epochs it finished for ``--resume`` to merge into; a resumed run merges its record into what the
    earlier part left, read once when the run starts."""

    def __init__(self, out: Path, resumed: bool) -> None:
        self.path = out / SUMMARY_FILE
        self.earlier: dict[str, Any] | None = None
        if resumed and self.path.is_file():
            try:
                earlier = json.loads(self.path.read_text(encoding="utf-8"))
            except ValueError:
                raise InputError(f"{self.path} is not valid JSON: move it away to resume") from None
            self.earlier = earlier if isinstance(earlier, dict) else None

    def __call__(self, monitor: DataAccessMonitor) -> dict[str, Any]:
        """Save what the run read so far (merged into the earlier part's record); returns it."""
        from modelshield.core.files import atomic_path
        from modelshield.monitor.training import merge_summaries

        summary = monitor.summary()
        if self.earlier is not None:
            summary = merge_summaries(self.earlier, summary)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.path, mode=0o644) as tmp:
            tmp.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        return summary


def make_monitor(
    enabled: bool, batch_size: int, sampling: Sampling, z_limit: float, out: Path, *, resumed: bool = False
) -> DataAccessMonitor | None:
    """A monitor sized by the training loop when it starts (it knows the training split), saving its summary in
    ``out`` after every epoch; None when off."""
    if not enabled:
        return None
    if not z_limit > 0:
        raise InputError(f"--monitor-z must be positive, got {z_limit}")
    from modelshield.monitor.training import DataAccessMonitor

    return DataAccessMonitor(None, batch_size, sampling=sampling, z_limit=z_limit, on_epoch=SummaryFile(out, resumed))


@contextmanager
def watching(monitor: DataAccessMonitor | None) -> Iterator[None]:
    """Record the files the process opens meanwhile, when monitoring."""
    with monitor.audit_files() if monitor is not None else nullcontext():
        yield


def finish(monitor: DataAccessMonitor | None, audit_db: str | None) -> int:
    """Write and show the data-access summary, publish its alarms; returns how many alarms there were (this
    part's). A resumed run's summary keeps the earlier part's epochs before the checkpoint's, later ones
    replaced (``SummaryFile``)."""
    if monitor is None:
        return 0
    saved = monitor.on_epoch
    if not isinstance(saved, SummaryFile):
        raise TypeError("the monitor was not made by make_monitor")  # a caller's bug, not the user's input
    summary, path = saved(monitor), saved.path
    data_files = monitor.data_files()
    console = Console(highlight=False, markup=False)  # alarm texts and paths print as written
    epochs = summary["epochs"][len(summary["epochs"]) - len(monitor.epochs) :]  # this part's
    if epochs:
        sizes = [e["batch_size"] for e in epochs]
        reads = max(e["max_reads"] for e in epochs)
        mean_cover = sum(e["coverage"] for e in epochs) / len(epochs)
        mean_expected = sum(e["expected_coverage"] for e in epochs) / len(epochs)
        console.print(
            f"data access ({monitor.sampling}): {_span(epochs)}, {sum(e['batches'] for e in epochs)} batches "
            f"of {min(s['min'] for s in sizes)}..{max(s['max'] for s in sizes)} samples, coverage "
            f"{mean_cover:.1%} per epoch (expected {mean_expected:.1%}), a sample read at most {reads}× in an epoch, "
            f"{len(monitor.files)} files opened ({len(data_files)} outside the Python installation)"
        )
    if monitor.alarms:
        table = Table(title=f"data-access alarms (z > {monitor.z_limit:g})", title_justify="left")
        for col in ("epoch", "check", "what"):
            table.add_column(col)
        for a in monitor.alarms:
            table.add_row(str(a.epoch), a.check, a.message)
        Console(stderr=True, highlight=False, markup=False).print(table)
    else:
        console.print("data access: no alarms")
    console.print(f"{'access':8} {path}")
    if audit_db is not None and monitor.alarms:
        from modelshield.audit import AuditLog
        from modelshield.monitor.alerts.signals import signal_event, training_alarm_signal

        with AuditLog.open(audit_db) as audit:
            for alarm in monitor.alarms:
                audit.append(signal_event(training_alarm_signal(alarm)))
    return len(monitor.alarms)


def _span(epochs: list[dict[str, Any]]) -> str:
    """ "2 epochs" for a whole run; "epochs 3..5" when a resumed run watched only those."""
    first, last = epochs[0]["epoch"], epochs[-1]["epoch"]
    return f"{len(epochs)} epochs" if first == 0 else f"epochs {first}..{last}"
