"""``modelshield sanitize``: screen a training set with the poisoning defences and split it into kept and flagged rows.

Reads the data the way ``modelshield poison`` does, runs each ``--detector`` on the whole set, and writes three
files: ``OUT`` (the kept rows, an .npz with x and y), ``OUT.flagged.npz`` (the flagged rows, with their row
indices, so nothing is dropped unseen) and ``OUT.json`` (every flagged row, which detectors flagged it and each
detector's score). When DATA is a ``modelshield poison`` output whose sidecar ``DATA.json`` matches it, each
detector is also scored against the known poison mask (precision, recall, F1).

The label and table detectors need no model. The activation detectors (spectral, activation-clustering, strip)
read a network: the command trains the built-in digits CNN that ``modelshield poison --evaluate`` uses on the
set itself, so they take 1×8×8 images of 10 classes (``sklearn:digits`` is one; flat rows need ``--input-shape 1,8,8``).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from modelshield.cli._options import parse_bounds, parse_shape
from modelshield.core.errors import InputError

if TYPE_CHECKING:  # numpy, torch and the detectors load only when a run starts
    import numpy as np

    from modelshield.core.model import TorchModel
    from modelshield.defenses.poisoning import DetectionReport, PoisonDetector

TABLE_DETECTORS = ("mad", "isolation-forest", "lof", "trimmed-loss", "confident-learning")
MODEL_DETECTORS = ("spectral", "activation-clustering", "strip")
DETECTORS = TABLE_DETECTORS + MODEL_DETECTORS


def sanitize_command(
    data: Annotated[str, typer.Argument(help="Training data: sklearn:digits:train, .npz (x, y), CSV, Parquet.")],
    detector: Annotated[
        list[str], typer.Option("--detector", "-d", help=f"Repeat for several. One of: {', '.join(DETECTORS)}.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="The kept rows (.npz); also OUT.flagged.npz and OUT.json.")],
    rate: Annotated[
        float,
        typer.Option(
            help="The poison share you plan for, in (0, 0.5): sizes isolation-forest, lof, trimmed-loss, spectral, strip."
        ),
    ] = 0.1,
    mad_threshold: Annotated[float, typer.Option(help="mad: modified z-score above which a row is flagged.")] = 3.5,
    seed: Annotated[int, typer.Option(help="Seed for the detectors and the built-in model.")] = 0,
    label_column: Annotated[str | None, typer.Option(help="Tables: the label column (default label/target/y).")] = None,
    input_shape: Annotated[
        str | None, typer.Option(help="Reshape flat rows, e.g. 1,8,8 (the activation detectors need images).")
    ] = None,
    bounds: Annotated[str | None, typer.Option(help="The valid input range 'lo,hi' (default: no check).")] = None,
    blas_threads: Annotated[
        int, typer.Option(help="BLAS threads for the detectors' scikit-learn fits (0: the library's default).")
    ] = 1,
    force: Annotated[bool, typer.Option("--force", help="Replace OUT and its companions if they exist.")] = False,
) -> None:
    """Flag suspicious training rows with the poisoning defences; write the kept rows, the flagged rows and why."""
    names = _detector_names(detector)
    if not 0 < rate < 0.5:
        raise InputError(f"--rate is the poison share planned for, in (0, 0.5); got {rate}")
    if blas_threads < 0:
        raise InputError(f"--blas-threads must be 0 (the library's default) or more, got {blas_threads}")
    if out.suffix != ".npz":
        raise InputError(f"--out must name an .npz file, got {out}")
    flagged_path, sidecar = out.with_name(out.stem + ".flagged.npz"), out.with_name(out.name + ".json")
    if not force and any(p.exists() for p in (out, flagged_path, sidecar)):
        raise InputError(
            f"{out} or its companions ({flagged_path.name}, {sidecar.name}) already exist",
            hint="pass --force to replace them, or pick another --out",
        )

    import numpy as np
    from sklearn.exceptions import ConvergenceWarning
    from threadpoolctl import threadpool_limits

    from modelshield.core.datasets import load_dataset
    from modelshield.defenses.poisoning import evaluate_detection

    shape = parse_shape(input_shape, "--input-shape") if input_shape else None
    ds = load_dataset(
        data, label_column=label_column, bounds=parse_bounds(bounds) if bounds else None, input_shape=shape
    )
    x, y = ds.x.numpy(), ds.y.numpy()
    truth = _poison_mask(data, len(y))
    model = _builtin_model(x, y, seed) if any(n in MODEL_DETECTORS for n in names) else None

    masks: dict[str, np.ndarray] = {}
    scores: dict[str, np.ndarray] = {}
    # one BLAS thread unless asked: the detectors' scikit-learn fits are small, and on a busy machine several
    # threads made confident learning on digits 10× slower (3.5 s → 41 s); a class with one activation
    # cluster is activation clustering's "nothing to split", not a fault, so its k-means warning stays quiet
    with threadpool_limits(blas_threads or None), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for name in names:
            found = _build(name, rate, mad_threshold, seed, model).fit(x, y)
            scores[name] = found.score_samples(x, y)
            masks[name] = found.predict(x, y)
    union = np.logical_or.reduce(list(masks.values()))
    reports = {n: evaluate_detection(m, truth, n) for n, m in masks.items()} if truth is not None else {}
    if truth is not None and len(names) > 1:
        reports["any"] = evaluate_detection(union, truth, "any")
    _write(out, flagged_path, sidecar, data, x, y, masks, scores, union, reports)
    _print(len(y), masks, union, reports, out, flagged_path, sidecar)


def _detector_names(given: list[str]) -> list[str]:
    """The detectors asked for, each once, in order; an unknown name is refused before any work."""
    names = list(dict.fromkeys(d.strip() for d in given))
    unknown = [n for n in names if n not in DETECTORS]
    if unknown:
        raise InputError(f"unknown --detector {unknown[0]!r}; choose from {', '.join(DETECTORS)}")
    if not names:
        raise InputError(f"give at least one --detector: {', '.join(DETECTORS)}")
    return names


def _poison_mask(data: str, n: int) -> np.ndarray | None:
    """The poisoned rows named by ``DATA.json`` when DATA is a ``modelshield poison`` output it describes."""
    import numpy as np

    from modelshield.core.files import hash_file

    path = Path(data)
    sidecar = path.with_name(path.name + ".json")
    if not path.is_file() or not sidecar.is_file():
        return None
    try:
        record = json.loads(sidecar.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None  # some other JSON beside the data: not a poison sidecar
    if not isinstance(record, dict) or "poisoned_indices" not in record:
        return None
    if record.get("sha256") != hash_file(path)[0] or record.get("n_rows") != n:
        raise InputError(
            f"{sidecar.name} does not describe {path.name} (its digest or row count differs)",
            hint="the data changed after `modelshield poison` wrote it; move the stale sidecar away",
        )
    indices = np.asarray(record["poisoned_indices"], dtype=np.int64)
    if indices.size and (indices.min() < 0 or indices.max() >= n):
        raise InputError(f"{sidecar.name} names rows outside 0..{n - 1}")
    mask = np.zeros(n, dtype=bool)
    mask[indices] = True
    return mask


def _builtin_model(x: np.ndarray, y: np.ndarray, seed: int) -> TorchModel:
    """The digits CNN of ``modelshield poison --evaluate``, trained on the (possibly poisoned) set itself."""
    import torch

    from modelshield.core.datasets import Dataset
    from modelshield.core.model import TorchModel
    from modelshield.demo import DEMO_INPUT_SHAPE, DEMO_NUM_CLASSES, train_digits_cnn

    if x.shape[1:] != DEMO_INPUT_SHAPE or int(y.max()) >= DEMO_NUM_CLASSES:
        raise InputError(
            f"{', '.join(MODEL_DETECTORS)} read the built-in digits CNN, which takes 1×8×8 images of 10 classes; "
            f"got rows of shape {x.shape[1:]}",
            hint="pass --input-shape 1,8,8 for flat digits rows, or choose " + ", ".join(TABLE_DETECTORS),
        )
    net = train_digits_cnn(Dataset(torch.from_numpy(x), torch.from_numpy(y), "sanitize"), seed=seed)
    return TorchModel(net, input_shape=DEMO_INPUT_SHAPE, num_classes=DEMO_NUM_CLASSES, bounds=(0.0, 1.0))


def _build(name: str, rate: float, mad_threshold: float, seed: int, model: TorchModel | None) -> PoisonDetector:
    """The detector ``name``, sized for a poison share of at most ``rate``."""
    if name == "mad":
        from modelshield.defenses.poisoning.robust import MADScreen

        return MADScreen(mad_threshold)
    if name == "isolation-forest":
        from modelshield.defenses.poisoning.outliers import IsolationForestScreen

        return IsolationForestScreen(contamination=rate, seed=seed)
    if name == "lof":
        from modelshield.defenses.poisoning.outliers import LocalOutlierFactorScreen

        return LocalOutlierFactorScreen(contamination=rate, seed=seed)
    if name == "trimmed-loss":
        from modelshield.defenses.poisoning.robust import TrimmedLoss

        return TrimmedLoss(trim=rate, seed=seed)
    if name == "confident-learning":
        from modelshield.defenses.poisoning.labels import ConfidentLearning

        return ConfidentLearning(seed=seed)
    assert model is not None
    if name == "spectral":
        from modelshield.defenses.poisoning.spectral import SpectralSignatures

        return SpectralSignatures(model, eps=rate)
    if name == "activation-clustering":
        from modelshield.defenses.poisoning.clustering import ActivationClustering

        return ActivationClustering(model)
    from modelshield.defenses.poisoning.strip import STRIP

    # offline on the training set STRIP flags its lowest-entropy share: 1.5× the planned rate, as assess does
    return STRIP(model, frr=min(1.5 * rate, 0.49), seed=seed)


def _write(
    out: Path,
    flagged_path: Path,
    sidecar: Path,
    data: str,
    x: np.ndarray,
    y: np.ndarray,
    masks: dict[str, np.ndarray],
    scores: dict[str, np.ndarray],
    union: np.ndarray,
    reports: dict[str, DetectionReport],
) -> None:
    """Kept rows, flagged rows (with their indices), then the sidecar naming both files' digests."""
    import numpy as np

    import modelshield
    from modelshield.core.files import atomic_output, atomic_path, hash_file

    rows = np.flatnonzero(union)
    for path, keep in ((out, ~union), (flagged_path, union)):
        with atomic_path(path, mode=0o644) as tmp, tmp.open("wb") as f:
            np.savez(f, x=x[keep], y=y[keep], index=np.flatnonzero(keep))
    record = {
        "source": data,
        "modelshield": modelshield.__version__,
        "n_rows": int(len(y)),
        "n_kept": int(len(y) - rows.size),
        "n_flagged": int(rows.size),
        "kept": {"file": out.name, "sha256": hash_file(out)[0]},
        "flagged_file": {"file": flagged_path.name, "sha256": hash_file(flagged_path)[0]},
        "detectors": {n: {"flagged": int(m.sum())} for n, m in masks.items()},
        "evaluation": {n: r.as_dict() for n, r in reports.items()} or None,
        "flagged": [
            {
                "row": int(i),
                "label": int(y[i]),
                "flagged_by": [n for n, m in masks.items() if m[i]],
                "scores": {n: float(s[i]) for n, s in scores.items()},
            }
            for i in rows
        ],
    }
    with atomic_output(sidecar, mode=0o644) as f:
        f.write((json.dumps(record, indent=2) + "\n").encode("utf-8"))


def _print(
    n: int,
    masks: dict[str, np.ndarray],
    union: np.ndarray,
    reports: dict[str, DetectionReport],
    out: Path,
    flagged_path: Path,
    sidecar: Path,
) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(markup=False)  # paths print as written
    table = Table(title=f"{n} rows screened")
    cols = ["detector", "flagged"] + (["precision", "recall", "F1"] if reports else [])
    for col in cols:
        table.add_column(col, justify="left" if col == "detector" else "right")
    for name, mask in [*masks.items(), *([("any", union)] if len(masks) > 1 else [])]:
        row = [name, f"{int(mask.sum())} ({mask.mean():.1%})"]
        if name in reports:
            r = reports[name]
            row += [f"{r.precision:.2f}", f"{r.recall:.2f}", f"{r.f1:.2f}"]
        table.add_row(*row)
    console.print(table)
    if not reports:
        console.print("no poison sidecar beside the data: detection is not scored", highlight=False)
    console.print(f"kept rows    {out} ({n - int(union.sum())})", highlight=False)
    console.print(f"flagged rows {flagged_path} ({int(union.sum())})", highlight=False)
    console.print(f"sidecar      {sidecar}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add `modelshield sanitize`."""
    app.command("sanitize")(sanitize_command)
