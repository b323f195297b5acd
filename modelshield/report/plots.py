"""Figures for report.html, drawn on Matplotlib's Agg canvas and inlined as PNG data URIs.

Inlining keeps report.html one file that opens offline, from a CI artifact or an e-mail.
Each function answers ``None`` when the assessment has nothing to draw, and the page leaves the
figure out.
"""

from __future__ import annotations

import base64
import io
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.image import imsave

from modelshield.assess.examples import ExampleGrid
from modelshield.assess.results import AssessmentResult
from modelshield.report.formatting import eps_text

NORM_TITLES = {"linf": "L∞ budget", "l2": "L2 budget"}
GATE_COLOUR = "#c62828"
DPI = 110


def _png_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _figure_uri(fig: Figure) -> str:
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return _png_uri(buffer.getvalue())


SINGLE_EPS_MARKERS = ("D", "s", "^", "v", "P", "X")


def robust_accuracy_plot(result: AssessmentResult) -> str | None:
    """Robust accuracy against ε, one line per swept (attack, norm), one panel per norm.

    A sweep starts at ε = 0 from the clean accuracy, which is what an empty budget leaves. An attack
    run at one ε only (APGD, Square at the gate) is a point with its own marker, not a line from 0 that
    would hide the others. The gate, when there is one, is drawn where a reader looks for it.
    """
    curves: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    for record in result.attacks:
        if record.eps is not None:
            curves[(record.norm, record.attack)].append((record.eps, record.robust_accuracy))
    norms = [norm for norm in NORM_TITLES if any(key[0] == norm for key in curves)]
    if not norms:
        return None
    fig = Figure(figsize=(5.0 * len(norms), 3.6), layout="constrained")
    gate = result.gating
    for ax, norm in zip(fig.subplots(1, len(norms), squeeze=False)[0], norms, strict=True):
        budgets: set[float] = set()
        singles = 0
        for (curve_norm, attack), points in sorted(curves.items()):
            if curve_norm != norm:
                continue
            if len(points) == 1:
                (eps, robust), marker = points[0], SINGLE_EPS_MARKERS[singles % len(SINGLE_EPS_MARKERS)]
                singles += 1
                budgets.add(eps)
                ax.plot(
                    [eps],
                    [100 * robust],
                    linestyle="none",
                    marker=marker,
                    markersize=8,
                    markerfacecolor="none",
                    markeredgewidth=1.8,
                    label=f"{attack} (ε = {eps_text(eps)} only)",
                    zorder=3,
                )
                continue
            xs, ys = zip(*sorted([(0.0, result.clean_accuracy), *points]), strict=True)
            budgets.update(xs)
            ax.plot(xs, [100 * y for y in ys], marker="o", markersize=4, label=attack)
        if gate.get("norm") == norm and gate.get("eps") is not None:
            ax.axvline(gate["eps"], color=GATE_COLOUR, linestyle=":", label=f"gate ε = {eps_text(gate['eps'])}")
            if gate.get("fail_under") is not None:
                ax.axhline(100 * gate["fail_under"], color=GATE_COLOUR, linestyle="--", linewidth=1, label="required")
        if len(budgets) <= 8:
            ticks = sorted(budgets | {0.0})
            ax.set_xticks(ticks, [eps_text(t) if t else "0" for t in ticks], fontsize=8)
        ax.axhline(100 * result.clean_accuracy, color="#888888", linestyle="-.", linewidth=0.8, label="clean")
        ax.set(title=NORM_TITLES[norm], xlabel="ε", ylabel="robust accuracy (%)", ylim=(0, 102))
        ax.set_xlim(left=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _figure_uri(fig)


def perturbation_plot(result: AssessmentResult) -> str | None:
    """ECDF of minimal L2 perturbations per attack: the further left, the more fragile the model.

    An ECDF rather than a histogram, so several attacks compare on one axis without binning choices.
    """
    series: dict[str, np.ndarray] = {}
    for attack, values in result.perturbation_l2.items():
        norms = np.asarray(values, dtype=float)
        if np.isfinite(norms).any():
            series[attack] = np.sort(norms[np.isfinite(norms)])
    if not series:
        return None
    fig = Figure(figsize=(5.0, 3.6), layout="constrained")
    ax = fig.subplots()
    for attack, norms in sorted(series.items()):
        share = 100 * np.arange(1, len(norms) + 1) / len(norms)
        label = f"{attack} (median {np.median(norms):.3g}, n = {len(norms)})"
        ax.step(np.concatenate([[0.0], norms]), np.concatenate([[0.0], share]), where="post", label=label)
    if result.gating.get("norm") == "l2" and result.gating.get("eps") is not None:
        ax.axvline(result.gating["eps"], color=GATE_COLOUR, linestyle=":", label="gate ε")
    ax.set(
        title="Minimal adversarial L2 perturbations",
        xlabel="‖δ‖₂ of the smallest perturbation found",
        ylabel="fooled samples at or below (%)",
        ylim=(0, 102),
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _figure_uri(fig)


def query_plot(result: AssessmentResult) -> str | None:
    """Black-box success rate against queries per sample: what an API caller buys with traffic."""
    if not result.query_curves:
        return None
    fig = Figure(figsize=(5.0, 3.6), layout="constrained")
    ax = fig.subplots()
    smallest = min((min(c.budgets) for c in result.query_curves if c.budgets), default=0)
    for curve in result.query_curves:
        label = f"{curve.attack} ({curve.norm}, ε = {eps_text(curve.eps)})"
        ax.plot(curve.budgets, [100 * s for s in curve.success_rate], marker=".", label=label)
    if smallest > 0:
        ax.set_xscale("log")
    ax.set(title="Black-box attack success", xlabel="queries per sample", ylabel="success rate (%)", ylim=(0, 102))
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return _figure_uri(fig)


@dataclass(frozen=True)
class ExampleTile:
    """One example as the page shows it: three images and the labels around them."""

    clean: str
    adversarial: str
    perturbation: str
    true_label: str
    clean_pred: str
    adv_pred: str
    fooled: bool


def _image_uri(chw: np.ndarray, vmin: float, vmax: float, cmap: str) -> str:
    buffer = io.BytesIO()
    if chw.shape[0] == 1:
        imsave(buffer, chw[0], format="png", cmap=cmap, vmin=vmin, vmax=vmax)
    else:
        imsave(buffer, np.clip((chw.transpose(1, 2, 0) - vmin) / (vmax - vmin), 0, 1), format="png")
    return _png_uri(buffer.getvalue())


def example_tiles(grid: ExampleGrid) -> tuple[list[ExampleTile], float]:
    """Image tiles for each example and the factor the perturbations were amplified by.

    Perturbations share one colour scale (±the largest |δ| in the grid) so their sizes compare
    across examples; on the diverging grey-scale map white means unchanged, on RGB mid-grey does.
    """
    lo, hi = grid.bounds
    delta = np.asarray(grid.adversarial, dtype=float) - np.asarray(grid.clean, dtype=float)
    largest = float(np.abs(delta).max()) if delta.size else 0.0
    scale = largest or (hi - lo) / 2
    tiles = []
    for i in range(len(grid.clean)):
        true, before, after = (int(grid.true_labels[i]), int(grid.clean_pred[i]), int(grid.adv_pred[i]))
        tiles.append(
            ExampleTile(
                clean=_image_uri(np.asarray(grid.clean[i], dtype=float), lo, hi, "gray"),
                adversarial=_image_uri(np.asarray(grid.adversarial[i], dtype=float), lo, hi, "gray"),
                perturbation=_image_uri(delta[i], -scale, scale, "RdBu_r"),
                true_label=grid.label(true),
                clean_pred=grid.label(before),
                adv_pred=grid.label(after),
                fooled=before == true and after != true,
            )
        )
    return tiles, (hi - lo) / (2 * scale)


def certified_plot(result: AssessmentResult) -> str | None:
    """Certified accuracy against L2 radius (randomized smoothing), with the abstention rate noted."""
    if not result.certified:
        return None
    fig = Figure(figsize=(5.0, 3.6), layout="constrained")
    ax = fig.subplots()
    points = sorted(result.certified, key=lambda p: p.radius)
    sigma, abstain = points[0].sigma, points[0].abstain_rate
    ax.step(
        [p.radius for p in points],
        [100 * p.certified_accuracy for p in points],
        where="post",
        marker="o",
        markersize=4,
        label=f"σ = {sigma:g} (abstains on {abstain:.0%})",
    )
    ax.set(
        title="Certified accuracy (randomized smoothing)",
        xlabel="L2 radius",
        ylabel="certified accuracy (%)",
        ylim=(0, 102),
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _figure_uri(fig)


def tradeoff_plot(result: AssessmentResult) -> str | None:
    """Clean, empirically robust (at the gate) and certified accuracy side by side: what each guarantee costs."""
    if not result.certified:
        return None
    sigma = result.certified[0].sigma
    at_sigma = min(result.certified, key=lambda p: abs(p.radius - sigma))
    bars = [("clean", result.clean_accuracy)]
    if result.gating.get("robust_accuracy") is not None:
        bars.append((f"robust\nL∞ ε={eps_text(result.gating['eps'])}", float(result.gating["robust_accuracy"])))
    bars.append((f"certified\nL2 r={at_sigma.radius:g}", at_sigma.certified_accuracy))
    fig = Figure(figsize=(5.0, 3.6), layout="constrained")
    ax = fig.subplots()
    ax.bar([b[0] for b in bars], [100 * b[1] for b in bars], color=["#4c72b0", GATE_COLOUR, "#55a868"][: len(bars)])
    for i, (_, value) in enumerate(bars):
        ax.text(i, 100 * value + 1.5, f"{value:.0%}", ha="center", fontsize=9)
    ax.set(title="Accuracy trade-off", ylabel="accuracy (%)", ylim=(0, 110))
    ax.grid(alpha=0.3, axis="y")
    return _figure_uri(fig)


MODEL_STYLES = {"baseline": "-", "dp": "--"}


def privacy_roc_plot(result: AssessmentResult) -> str | None:
    """Membership-inference ROC on log–log axes, one line per (attack, model).

    Log scale because the leak that matters is at the far left: an attack that is sure about a few members at
    0.1 % false positives (Carlini et al. 2022, LiRA) threatens them even when its AUC looks harmless.
    """
    curves = [c for c in result.privacy_roc if len(c.fpr) > 1]
    if not curves:
        return None
    fig = Figure(figsize=(5.0, 4.2), layout="constrained")
    ax = fig.subplots()
    floor = 1e-4
    auc = {(r.attack, r.model): r.auc for r in result.privacy}
    colours: dict[str, str] = {}
    for curve in sorted(curves, key=lambda c: (c.attack, c.model)):
        colour = colours.setdefault(curve.attack, f"C{len(colours) % 10}")
        fpr, tpr = np.maximum(np.asarray(curve.fpr), floor), np.maximum(np.asarray(curve.tpr), floor)
        score = auc.get((curve.attack, curve.model))
        label = f"{curve.attack} · {curve.model}" + ("" if score is None else f" (AUC {score:.3f})")
        ax.plot(fpr, tpr, linestyle=MODEL_STYLES.get(curve.model, "-"), color=colour, label=label)
    ax.plot([floor, 1], [floor, 1], color="#888888", linestyle=":", linewidth=1, label="chance")
    for rate in (1e-3, 1e-2):
        ax.axvline(rate, color="#bbbbbb", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set(
        title="Membership inference (log scale)",
        xlabel="false-positive rate",
        ylabel="true-positive rate",
        xlim=(floor, 1),
        ylim=(floor, 1.3),  # above 1, so a perfect attack's line along TPR = 1 is not hidden by the frame
    )
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="lower right")
    return _figure_uri(fig)
