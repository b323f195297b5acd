"""Data minimisation (GDPR Art. 5(1)(c)): which features a model could do without, measured, not argued.

A model is trained on a held-out split and each feature's worth is the drop in a metric (accuracy by default)
when the feature is taken away — by permutation importance (Breiman 2001; ``sklearn.inspection.
permutation_importance``: shuffle one column of the held-out rows, ``repeats`` times, mean ± std) or by
drop-column retraining (the model retrained without the column, cross-validated, the paired per-fold drop).
Features whose drop is below ``threshold`` are candidates for removal. Single-feature drops do not add up
(two correlated columns each look dispensable while one of them is needed), so the candidates are then removed
*together* and the model retrained: if the joint drop exceeds the threshold, the longest prefix of candidates
(least valuable first) whose joint removal stays within it is found by bisection, and that is the
recommendation, with the drop actually measured.

Every column is also screened for personal data: values the PII recognisers of ``privacy.pii`` accept (e-mails,
cards, national ids, phones, names …), columns unique per row (identifiers), and quasi-identifiers — named
ones, or the usual suspects by name (age, sex, post code, birth date …) — so the report can say "this
quasi-identifier earns 0.2 % accuracy". Large tables are subsampled, and the report states the sample sizes.
"""

from __future__ import annotations

import html as html_lib
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from modelshield import __version__
from modelshield.core.errors import InputError

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.pipeline import Pipeline

Method = Literal["permutation", "drop-column"]
MODELS = ("hist-gradient-boosting", "logistic-regression", "random-forest")
CLASSIFICATION_METRICS = ("accuracy", "balanced_accuracy", "f1_macro", "roc_auc")
REGRESSION_METRICS = ("r2", "neg_mean_absolute_error", "neg_root_mean_squared_error")
#: column names that usually hold quasi-identifiers (Sweeney 2002: ZIP, birth date and sex identify 87 % of the US)
QUASI_IDENTIFIER_NAMES = re.compile(
    r"(^|[_\- ])(age|sex|gender|zip|zipcode|postcode|post_code|postal|birth|dob|date_of_birth|race|ethnicity|"
    r"nationality|native[_\- ]country|marital|religion)([_\- ]|$)",
    re.IGNORECASE,
)
#: names of record-number columns (``customer_id``, ``row_no``, ``RecordKey``)
ID_NAMES = re.compile(r"(^|[_\- ])(id|key|no|num|number|index)$|^id[_\- ]|[a-z](Id|ID|Key|No)$")
PII_SAMPLE = 200  # values per column the recognisers read
PII_SHARE = 0.3  # of the non-empty sampled values, the share that must hold PII for the column to be flagged
MAX_CLASSES = 20  # an integer target with more distinct values than this is treated as a regression target
CROSS_FIT_BELOW = 2_000  # held-out rows below which importance and the joint check are cross-validated


@dataclass(frozen=True)
class FeatureWorth:
    """One feature: what taking it away costs in the metric (mean ± std), and what personal data it holds."""

    feature: str
    drop: float
    std: float
    personal_data: str | None
    removable: bool


@dataclass
class MinimisationReport:
    """What a minimisation analysis measured: per-feature worth, the recommendation and its joint check."""

    source: str
    target: str
    task: str
    model: str
    method: str
    metric: str
    threshold: float
    rows: int
    train_rows: int
    test_rows: int
    importance_rows: int
    baseline: float
    features: list[FeatureWorth]
    recommended: list[str]
    candidates: list[str]
    joint_score: float | None
    joint_drop: float | None
    seconds: float
    notes: list[str] = field(default_factory=list)

    @property
    def within_threshold(self) -> bool:
        """Whether removing every recommended feature together costs less than the threshold."""
        return self.joint_drop is None or self.joint_drop < self.threshold

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["within_threshold"] = self.within_threshold
        doc["generated_by"] = f"modelshield {__version__}"
        return doc


def read_frame(path: Path) -> pd.DataFrame:
    """A CSV or Parquet table as a data frame."""
    from modelshield.govern.erasure import TABLE_SUFFIXES, read_table

    if path.suffix.lower() not in TABLE_SUFFIXES:
        raise InputError(f"{path}: minimisation reads {' and '.join(TABLE_SUFFIXES)} files")
    return read_table(path)


def personal_data(
    frame: pd.DataFrame, columns: Sequence[str], quasi_identifiers: Sequence[str] = (), seed: int = 0
) -> dict[str, str]:
    """Column → what personal data it holds ("EMAIL", "identifier", "quasi-identifier" …), for flagged columns.

    Text columns are screened with the ``privacy.pii`` recognisers on up to ``PII_SAMPLE`` values (the column
    name is their context); a text column with a distinct value per row is an identifier, and so is an integer one
    named like an id or numbering the rows; quasi-identifiers
    are those named, and columns whose names match ``QUASI_IDENTIFIER_NAMES``."""
    from collections import Counter

    import pandas as pd

    from modelshield.privacy.pii import find_pii

    flags: dict[str, str] = {}
    rng = np.random.default_rng(seed)
    for col in columns:
        values = frame[col].dropna()
        if len(values) and not pd.api.types.is_numeric_dtype(values):
            sample = values.iloc[rng.permutation(len(values))[:PII_SAMPLE]].astype(str)
            entities: Counter[str] = Counter()
            for text in sample:
                found = {f.entity for f in find_pii(text, hint=col)}
                entities.update(found)
            if entities:
                entity, hits = entities.most_common(1)[0]
                if hits >= PII_SHARE * len(sample):
                    flags[col] = entity
                    continue
            if values.nunique() == len(values) and len(values) > 1:
                flags[col] = "identifier"
                continue
        elif _record_number(values, col):
            flags[col] = "identifier"
            continue
        if col in quasi_identifiers or QUASI_IDENTIFIER_NAMES.search(col):
            flags[col] = "quasi-identifier"
    return flags


def _record_number(values: pd.Series, name: str) -> bool:
    """An integer column with a distinct value per row that is named like an id or numbers the rows in order.

    Such a column earns nothing on new records, and where rows were stored in label order it leaks the label:
    it must not be a feature, whatever its permutation importance says."""
    import pandas as pd

    if len(values) < 2 or not pd.api.types.is_integer_dtype(values) or values.nunique() != len(values):
        return False
    counts_rows = int(values.max()) - int(values.min()) + 1 == len(values) and (
        values.is_monotonic_increasing or values.is_monotonic_decreasing
    )
    return bool(ID_NAMES.search(name)) or counts_rows


def _task(y: pd.Series) -> str:
    import pandas as pd

    if not pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y):
        return "classification"
    integral = bool(np.all(np.mod(y.to_numpy(dtype=float), 1) == 0))
    return "classification" if integral and y.nunique() <= MAX_CLASSES else "regression"


def _pipeline(model: str, task: str, frame: pd.DataFrame, seed: int) -> Pipeline:
    """One-hot for text columns, scaling for a linear model, then the estimator."""
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    categorical = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    numeric = [c for c in frame.columns if c not in categorical]
    onehot = OneHotEncoder(handle_unknown="infrequent_if_exist", max_categories=32, sparse_output=False)
    cat = make_pipeline(SimpleImputer(strategy="constant", fill_value="(missing)"), onehot)
    num: Any = "passthrough"
    if model != "hist-gradient-boosting":  # the trees' native NaN handling is lost on the others
        num = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    prep = ColumnTransformer([("num", num, numeric), ("cat", cat, categorical)], sparse_threshold=0.0)
    classify = task == "classification"
    estimator: Any
    if model == "hist-gradient-boosting":
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

        estimator = (HistGradientBoostingClassifier if classify else HistGradientBoostingRegressor)(random_state=seed)
    elif model == "logistic-regression":
        from sklearn.linear_model import LogisticRegression, Ridge

        estimator = LogisticRegression(max_iter=2000) if classify else Ridge()
    elif model == "random-forest":
        from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

        cls = RandomForestClassifier if classify else RandomForestRegressor
        estimator = cls(n_estimators=100, n_jobs=-1, random_state=seed)
    else:
        raise InputError(f"unknown model {model!r} (use {', '.join(MODELS)})")
    return Pipeline([("prepare", prep), ("model", estimator)])


def _sample(x: pd.DataFrame, y: pd.Series, n: int, seed: int) -> tuple[pd.DataFrame, pd.Series]:
    if len(x) <= n:
        return x, y
    rows = np.sort(np.random.default_rng(seed).choice(len(x), n, replace=False))
    return x.iloc[rows], y.iloc[rows]


def _splitter(task: str, folds: int, seed: int) -> Any:
    from sklearn.model_selection import KFold, StratifiedKFold

    return (StratifiedKFold if task == "classification" else KFold)(folds, shuffle=True, random_state=seed)


def _cross_fitted(
    model: str, task: str, metric: str, x: pd.DataFrame, y: pd.Series, folds: int, repeats: int, seed: int
) -> dict[str, tuple[float, float]]:
    """Permutation importance on each fold's held-out rows (the model trained on the others), pooled."""
    from sklearn.inspection import permutation_importance

    pooled: list[np.ndarray] = []
    for train, test in _splitter(task, folds, seed).split(x, y):
        pipe = _pipeline(model, task, x, seed).fit(x.iloc[train], y.iloc[train])
        result = permutation_importance(
            pipe, x.iloc[test], y.iloc[test], scoring=metric, n_repeats=repeats, random_state=seed
        )
        pooled.append(result.importances)
    every = np.concatenate(pooled, axis=1)  # features × (folds · repeats)
    return {col: (float(every[i].mean()), float(every[i].std())) for i, col in enumerate(x.columns)}


def _evaluator(
    model: str,
    task: str,
    metric: str,
    split: tuple[pd.DataFrame, pd.DataFrame, pd.Series, pd.Series],
    whole: tuple[pd.DataFrame, pd.Series],
    folds: int,
    seed: int,
) -> Callable[[list[str]], float]:
    """Score of the model retrained on ``cols``: on the held-out split, or, when that is small, the mean over
    the cross-validation folds of every row (a row of 143 held out is 0.7 % accuracy: too coarse to judge)."""
    from sklearn.metrics import get_scorer
    from sklearn.model_selection import cross_val_score

    x_train, x_test, y_train, y_test = split
    if len(x_test) < CROSS_FIT_BELOW:
        x, y = whole

        def cross(cols: list[str]) -> float:
            pipe = _pipeline(model, task, x[cols], seed)
            return float(np.mean(cross_val_score(pipe, x[cols], y, scoring=metric, cv=_splitter(task, folds, seed))))

        return cross

    def held_out(cols: list[str]) -> float:
        pipe = _pipeline(model, task, x_train[cols], seed).fit(x_train[cols], y_train)
        return float(get_scorer(metric)(pipe, x_test[cols], y_test))

    return held_out


def _joint(
    evaluate: Callable[[list[str]], float], columns: list[str], threshold: float, candidates: list[str]
) -> tuple[list[str], float | None, float | None]:
    """The longest prefix of ``candidates`` (least valuable first) whose joint removal, retrained, costs less
    than ``threshold``; with the score before and after. Bisection assumes removing more never helps much."""
    if len(candidates) == len(columns):  # nothing would be left to train on: keep the most valuable candidate
        candidates = candidates[:-1]
    if not candidates:
        return [], None, None
    cache: dict[int, float] = {}

    def score(k: int) -> float:
        if k not in cache:
            gone = set(candidates[:k])
            cache[k] = evaluate([c for c in columns if c not in gone])
        return cache[k]

    base = score(0)
    if base - score(len(candidates)) < threshold:
        return candidates, base, cache[len(candidates)]
    lo, hi = 0, len(candidates)  # lo: known within the threshold (0 removes nothing), hi: known above it
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if base - score(mid) < threshold:
            lo = mid
        else:
            hi = mid
    return candidates[:lo], base, (cache[lo] if lo else None)


def minimise(
    frame: pd.DataFrame,
    target: str,
    *,
    model: str = "hist-gradient-boosting",
    method: Method = "permutation",
    metric: str | None = None,
    threshold: float = 0.01,
    repeats: int = 5,
    folds: int = 3,
    test_size: float = 0.25,
    max_train_rows: int = 200_000,
    max_importance_rows: int = 20_000,
    quasi_identifiers: Sequence[str] = (),
    source: str = "",
    seed: int = 0,
    threads: int | None = None,
) -> MinimisationReport:
    """Measure each feature's worth to a model of ``target`` and recommend the ones to stop collecting.

    ``threads`` caps the BLAS/OpenMP threads (gradient boosting's OpenMP spins badly on a loaded machine)."""
    import sklearn.ensemble  # noqa: F401 - loads the OpenMP runtime: threadpool_limits caps only libraries loaded
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads):
        return _minimise(
            frame,
            target,
            model=model,
            method=method,
            metric=metric,
            threshold=threshold,
            repeats=repeats,
            folds=folds,
            test_size=test_size,
            max_train_rows=max_train_rows,
            max_importance_rows=max_importance_rows,
            quasi_identifiers=quasi_identifiers,
            source=source,
            seed=seed,
        )


def _minimise(
    frame: pd.DataFrame,
    target: str,
    *,
    model: str,
    method: Method,
    metric: str | None,
    threshold: float,
    repeats: int,
    folds: int,
    test_size: float,
    max_train_rows: int,
    max_importance_rows: int,
    quasi_identifiers: Sequence[str],
    source: str,
    seed: int,
) -> MinimisationReport:
    from sklearn.model_selection import train_test_split

    start = time.perf_counter()
    if target not in frame.columns:
        raise InputError(f"no target column {target!r} (columns: {', '.join(map(str, frame.columns[:20]))})")
    if method not in ("permutation", "drop-column"):
        raise InputError(f"unknown method {method!r} (use permutation or drop-column)")
    if model not in MODELS:
        raise InputError(f"unknown model {model!r} (use {', '.join(MODELS)})")
    if not threshold > 0 or repeats < 1 or folds < 2:
        raise InputError("--threshold must be positive, --repeats at least 1, --folds at least 2")
    missing = [q for q in quasi_identifiers if q not in frame.columns]
    if missing:
        raise InputError(f"quasi-identifier {missing[0]!r} is not a column")
    data = frame[frame[target].notna()]
    y = data[target]
    x = data.drop(columns=[target])
    if x.shape[1] == 0 or len(x) < 20:
        raise InputError(f"need at least one feature column and 20 labelled rows, got {x.shape[1]} and {len(x)}")
    task = _task(y)
    metric = metric or ("accuracy" if task == "classification" else "r2")
    allowed = CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS
    if metric not in allowed:
        raise InputError(f"metric {metric!r} does not fit a {task} target (use {', '.join(allowed)})")
    if task == "classification" and y.value_counts().min() < 2:
        raise InputError(f"every class of {target!r} needs at least two rows")
    notes: list[str] = []
    flags = personal_data(x, list(x.columns), quasi_identifiers, seed)
    identifiers = [c for c, kind in flags.items() if kind == "identifier"]
    if identifiers:  # a row id earns nothing on unseen rows; one-hot on a million ids would only cost memory
        x = x.drop(columns=identifiers)
        notes.append(f"identifier column(s) {', '.join(identifiers)} left out of the model: unique per row")
    x_used, y_used = _sample(x, y, int(max_train_rows / (1 - test_size)), seed)
    if len(x_used) < len(x):
        notes.append(f"trained on a random {len(x_used):,} of {len(x):,} rows")
    stratify = y_used if task == "classification" else None
    x_train, x_test, y_train, y_test = train_test_split(
        x_used, y_used, test_size=test_size, random_state=seed, stratify=stratify
    )
    pipe = _pipeline(model, task, x_train, seed).fit(x_train, y_train)
    from sklearn.metrics import get_scorer

    scorer = get_scorer(metric)
    baseline = float(scorer(pipe, x_test, y_test))
    drops: dict[str, tuple[float, float]] = {}
    importance_rows = len(x_test)
    if method == "permutation" and len(x_test) >= CROSS_FIT_BELOW:
        from sklearn.inspection import permutation_importance

        xi, yi = _sample(x_test, y_test, max_importance_rows, seed + 1)
        importance_rows = len(xi)
        if importance_rows < len(x_test):
            notes.append(f"permutation importance on a random {importance_rows:,} of {len(x_test):,} held-out rows")
        result = permutation_importance(pipe, xi, yi, scoring=metric, n_repeats=repeats, random_state=seed)
        for i, col in enumerate(xi.columns):
            drops[col] = (float(result.importances_mean[i]), float(result.importances_std[i]))
    elif method == "permutation":  # a few hundred held-out rows: one row is a percent; use every row once
        drops = _cross_fitted(model, task, metric, x_used, y_used, folds, repeats, seed)
        importance_rows = len(x_used)
        notes.append(
            f"permutation importance cross-fitted over {folds} folds: every one of the {len(x_used):,} rows held out once"
        )
    else:
        from sklearn.model_selection import cross_val_score

        splitter = _splitter(task, folds, seed)
        importance_rows = len(x_train)

        def cv(cols: list[str]) -> np.ndarray:
            fitted = _pipeline(model, task, x_train[cols], seed)
            return np.asarray(cross_val_score(fitted, x_train[cols], y_train, scoring=metric, cv=splitter))

        full = cv(list(x_train.columns))
        for col in x_train.columns:
            per_fold = full - cv([c for c in x_train.columns if c != col]) if x_train.shape[1] > 1 else full
            drops[col] = (float(per_fold.mean()), float(per_fold.std()))
        notes.append(f"drop-column: {folds}-fold cross-validation on the {len(x_train):,} training rows")
    candidates = sorted((c for c, (d, _) in drops.items() if d < threshold), key=lambda c: drops[c][0])
    evaluate = _evaluator(model, task, metric, (x_train, x_test, y_train, y_test), (x_used, y_used), folds, seed)
    recommended, joint_base, joint_score = _joint(evaluate, list(x_train.columns), threshold, candidates)
    if joint_score is not None and len(x_test) < CROSS_FIT_BELOW:
        notes.append(f"the joint removal was checked by {folds}-fold cross-validation on all {len(x_used):,} rows")
    if len(recommended) < len(candidates):
        notes.append(
            f"removing all {len(candidates)} candidates together cost more than {threshold:g}: "
            f"the {len(recommended)} least valuable are recommended"
        )
    chosen = set(recommended)
    features = [
        FeatureWorth(c, round(d, 6), round(s, 6), flags.get(c), c in chosen)
        for c, (d, s) in sorted(drops.items(), key=lambda kv: -kv[1][0])
    ]
    features += [FeatureWorth(c, 0.0, 0.0, "identifier", True) for c in identifiers]
    return MinimisationReport(
        source=source,
        target=target,
        task=task,
        model=model,
        method=method,
        metric=metric,
        threshold=threshold,
        rows=len(data),
        train_rows=len(x_train),
        test_rows=len(x_test),
        importance_rows=importance_rows,
        baseline=round(baseline, 6),
        features=features,
        recommended=[*recommended, *identifiers],
        candidates=candidates,
        joint_score=None if joint_score is None else round(joint_score, 6),
        joint_drop=None if joint_score is None or joint_base is None else round(joint_base - joint_score, 6),
        seconds=round(time.perf_counter() - start, 3),
        notes=notes,
    )


def _summary(r: MinimisationReport) -> list[str]:
    lines = [
        f"{r.model} on {r.rows:,} rows of {r.source or 'the table'}, target {r.target!r} ({r.task}); "
        f"{r.metric} {r.baseline:.4f} on {r.test_rows:,} held-out rows; importance by {r.method} "
        f"({r.importance_rows:,} rows); threshold {r.threshold:g}.",
    ]
    if r.recommended:
        joint = f"costs {r.joint_drop:.4f} {r.metric}" if r.joint_drop is not None else "costs nothing (identifiers)"
        lines.append(
            f"Recommended for removal: {len(r.recommended)} of {len(r.features)} features; removing them together "
            f"and retraining {joint} ({'within' if r.within_threshold else 'ABOVE'} the threshold)."
        )
    else:
        lines.append("No feature costs less than the threshold: every feature earns its place.")
    flagged = [f for f in r.features if f.personal_data]
    for f in flagged:
        verdict = "recommended for removal" if f.removable else "kept"
        lines.append(f"Personal data: {f.feature} ({f.personal_data}) earns {f.drop:+.4f} {r.metric} — {verdict}.")
    return lines


def markdown(r: MinimisationReport) -> str:
    """The report as Markdown: summary, the per-feature table (most valuable first), notes."""
    out = [f"# Data minimisation: {r.source or r.target}", ""]
    out += [f"- {line}" for line in _summary(r)]
    out += ["", f"| feature | {r.metric} drop | ± std | personal data | recommendation |", "|---|---:|---:|---|---|"]
    for f in r.features:
        cells = [
            f.feature,
            f"{f.drop:+.4f}",
            f"{f.std:.4f}",
            f.personal_data or "",
            "remove" if f.removable else "keep",
        ]
        out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    if r.notes:
        out += ["", "Notes:", ""] + [f"- {n}" for n in r.notes]
    out += ["", f"*{r.seconds:.1f} s, modelshield {__version__}.*", ""]
    return "\n".join(out)


def html(r: MinimisationReport) -> str:
    """The report as a self-contained HTML page; every value is escaped (column names come from the file)."""
    e = html_lib.escape
    rows = "\n".join(
        f"<tr class='{'remove' if f.removable else 'keep'}'><td>{e(f.feature)}</td><td>{f.drop:+.4f}</td>"
        f"<td>{f.std:.4f}</td><td>{e(f.personal_data or '')}</td><td>{'remove' if f.removable else 'keep'}</td></tr>"
        for f in r.features
    )
    items = "".join(f"<li>{e(line)}</li>" for line in _summary(r))
    notes = "".join(f"<li>{e(n)}</li>" for n in r.notes)
    return (
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>Data minimisation: {e(r.source or r.target)}</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.25rem .5rem}"
        "td:nth-child(2),td:nth-child(3){text-align:right}tr.remove{background:#fdf3e1}</style></head><body>"
        f"<h1>Data minimisation: {e(r.source or r.target)}</h1><ul>{items}</ul>"
        f"<table><thead><tr><th>feature</th><th>{e(r.metric)} drop</th><th>± std</th><th>personal data</th>"
        f"<th>recommendation</th></tr></thead><tbody>\n{rows}\n</tbody></table>"
        + (f"<h2>Notes</h2><ul>{notes}</ul>" if notes else "")
        + f"<p><small>{r.seconds:.1f} s, modelshield {e(__version__)}.</small></p></body></html>\n"
    )
