"""The data-flow diagram: Graphviz DOT text (always) and SVG through the ``dot`` program (Debian's graphviz).

Elements are drawn by DFD role (external entity = box, process = rounded ellipse, store = cylinder), trust
boundaries as dashed red clusters, flows as labelled edges. Elements and flows with open findings are drawn
red with the count, so the picture shows where the work is.
"""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter

from modelshield.core.errors import DependencyError, InputError
from modelshield.threat.findings import Status, ThreatReport
from modelshield.threat.system import Shape, System

_SHAPES = {Shape.external: "box", Shape.process: "ellipse", Shape.store: "cylinder"}
DOT_TIMEOUT_S = 60


def _q(text: str) -> str:
    """A DOT double-quoted string."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(system: System, report: ThreatReport | None = None) -> str:
    """The system as DOT text, with open-finding counts when a report is given."""
    open_on = Counter(f.element for f in (report.findings if report else []) if f.status is Status.open)

    def node(element_id: str, indent: str) -> str:
        el = system.element(element_id)
        label = f"{el.label}\n[{el.kind}]" + (f"\n{open_on[el.id]} open" if open_on[el.id] else "")
        colour = ', color="#b91c1c", fontcolor="#b91c1c"' if open_on[el.id] else ""
        return f"{indent}{_q(el.id)} [label={_q(label)}, shape={_SHAPES[el.shape]}{colour}];"

    lines = [
        f"digraph {_q(system.name)} {{",
        "  rankdir=LR;",
        '  node [fontname="Helvetica", fontsize=10, style=filled, fillcolor="#f8fafc"];',
        '  edge [fontname="Helvetica", fontsize=9];',
    ]
    index = {b.id: i for i, b in enumerate(system.boundaries)}
    inner = {ref for b in system.boundaries for ref in b.boundaries}

    def cluster(boundary_id: str, depth: int) -> list[str]:
        b, pad = system.boundaries[index[boundary_id]], "  " * depth
        out = [
            f"{pad}subgraph cluster_{index[boundary_id]} {{",
            f'{pad}  label={_q(b.label)}; style=dashed; color="#dc2626"; fontcolor="#dc2626";',
        ]
        out += [node(ref, pad + "  ") for ref in b.elements]
        for child in b.boundaries:
            out += cluster(child, depth + 1)
        return [*out, f"{pad}}}"]

    for b in system.boundaries:
        if b.id not in inner:
            lines += cluster(b.id, 1)
    placed = {ref for b in system.boundaries for ref in b.elements}
    lines += [node(el.id, "  ") for el in system.elements if el.id not in placed]
    for fl in system.flows:
        marks = [
            m for m, on in ((fl.protocol, bool(fl.protocol)), ("TLS", fl.encrypted), ("auth", fl.authenticated)) if on
        ]
        label = fl.label + (f"\n{' · '.join(marks)}" if marks else "")
        if open_on[fl.id]:
            label += f"\n{open_on[fl.id]} open"
        colour = ', color="#b91c1c", fontcolor="#b91c1c"' if open_on[fl.id] else ""
        lines.append(f"  {_q(fl.source)} -> {_q(fl.destination)} [label={_q(label)}{colour}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_svg(dot_text: str) -> str:
    """Lay the diagram out with Graphviz ``dot``; a clear error when it is not installed."""
    dot = shutil.which("dot")
    if dot is None:
        raise DependencyError(
            "Graphviz `dot` is not installed, so no SVG was drawn",
            hint="install it (apt-get install graphviz, brew install graphviz); the DOT text is written regardless",
        )
    try:
        done = subprocess.run(  # noqa: S603 - a fixed argv; the DOT text goes in on stdin
            [dot, "-Tsvg"], input=dot_text.encode(), capture_output=True, timeout=DOT_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        raise InputError(f"Graphviz `dot` took over {DOT_TIMEOUT_S} s to lay the diagram out") from None
    if done.returncode != 0:
        cause = done.stderr.decode(errors="replace").strip().splitlines()
        raise InputError(f"Graphviz `dot` failed: {cause[-1] if cause else f'exit {done.returncode}'}")
    return done.stdout.decode("utf-8")


__all__ = ["to_dot", "to_svg"]
