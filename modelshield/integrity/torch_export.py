"""``torch.export.save`` archives (``.pt2``): the program is data torch turns into code, judged by what it names.

A ``.pt2`` zip names itself (``<folder>/archive_format`` holds ``pt2``). ``torch.export.load`` rebuilds the
graph from ``models/*.json``, and three parts of that JSON become code:
- each node's ``target`` is resolved by walking attributes from ``torch``, ``operator`` or ``math`` (any
  string *starting* with those words: ``torch.serialization.os.system`` is ``os.system``): only torch's own
  operator namespaces, the arithmetic of ``operator`` and ``math`` pass; a custom namespace or an
  extension operator (``#...``) is *unknown*, any other path *unsafe*;
- every symbolic-shape expression (``expr_str``) goes through ``sympy.sympify``, which evaluates Python:
  it may hold only numbers, shape symbols (``s0``, ``u3``), operators and sympy's function names;
- ``guards_code`` is Python that ``ExportedProgram.module()`` compiles and runs: any is *unknown*.
Weight and constant files (raw tensor bytes when their config says ``use_pickle: false``, a
``torch.save`` file otherwise) and the small text records (``archive_format``, ``byteorder``, ``.data/*``)
are opaque data when they match no format; a pickle put there is still judged.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from modelshield.integrity.allowlist import Verdict
from modelshield.integrity.results import issue
from modelshield.integrity.torchscript import TORCH_NAMESPACES

if TYPE_CHECKING:  # pydantic is imported only when a finding is made
    from modelshield.core.findings import Finding

_OPAQUE = re.compile(
    r"(^|!)[^/!]+/(data/(weights|constants)/[^/!]+|archive_format|archive_version|byteorder|\.data/[^/!]+)$"
)
_PROGRAM = re.compile(r"(^|!)[^/!]+/models/[^/!]+\.json$")
_OPERATOR = frozenset(
    {
        "getitem", "add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "neg", "pos", "abs", "matmul", "eq",
        "ne", "lt", "le", "gt", "ge", "and_", "or_", "xor", "not_", "invert", "lshift", "rshift", "truth",
    }
)  # fmt: skip
_TORCH_SYMBOLIC = re.compile(r"torch\.(sym_[a-z_]+|_sym_[a-z_]+|_check[a-z_]*|_assert[a-z_]*)$")
_EXPR_CHARS = re.compile(r"[A-Za-z0-9_\s+\-*/%(),.<>=!&|~^']*$")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SHAPE_SYMBOL = re.compile(r"[a-z]{1,3}\d+$")
_SYMPY_FUNCTIONS = frozenset(
    {
        "Max", "Min", "Mod", "PythonMod", "FloorDiv", "CeilDiv", "CleanDiv", "Abs", "floor", "ceiling", "sqrt",
        "Eq", "Ne", "Lt", "Le", "Gt", "Ge", "And", "Or", "Not", "True", "False", "Pow", "PowByNatural",
        "FloatPow", "TruncToInt", "TruncToFloat", "IntTrueDiv", "FloatTrueDiv", "ToFloat", "FloorToInt",
        "CeilToInt", "RoundToInt", "RoundDecimal", "Identity", "LShift", "RShift", "Integer", "Float",
        "Rational", "oo", "zoo", "nan", "int_oo", "Piecewise", "OpaqueUnaryFn_sqrt", "OpaqueUnaryFn_exp",
        "OpaqueUnaryFn_log", "BitwiseFn_bitwise_and", "BitwiseFn_bitwise_or", "BitwiseFn_bitwise_xor",
        "IsNonOverlappingAndDenseIndicator", "Symbol", "positive", "negative", "nonnegative", "nonpositive",
        "integer", "real", "finite", "zero", "nonzero", "even", "odd", "commutative",
    }
)  # fmt: skip


def is_pt2(names: list[str]) -> bool:
    """A zip written by ``torch.export.save``: an ``archive_format`` member beside ``models/``."""
    return any(n.endswith("/archive_format") or n == "archive_format" for n in names) and any(
        "/models/" in n or n.startswith("models/") for n in names
    )


def is_opaque(where: str) -> bool:
    """A member holding a weight or constant's bytes, or a record torch reads as text (``where`` ends in its name)."""
    return bool(_OPAQUE.search(where))


def check_member(body: bytes, where: str) -> list[Finding] | None:
    """Judge a ``models/*.json`` program; ``None`` for any other member, scanned as usual."""
    if not _PROGRAM.search(where):
        return None
    try:
        program = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        return [issue(Verdict.unparsed, "MS-SCAN-PT2-JSON", "Exported program unreadable", where,
                      f"not JSON ({type(exc).__name__}); torch.export.load would refuse it or read something else")]  # fmt: skip
    found: dict[str, Finding] = {}
    for key, value in _items(program):
        if key == "target" and isinstance(value, str):
            verdict = _judge_target(value)
            if verdict is not Verdict.safe:
                found.setdefault(value, issue(verdict, "MS-SCAN-PT2-TARGET", "Exported program calls outside torch",
                                              where, f"node target {value!r} is not a torch operator or arithmetic"))  # fmt: skip
        elif key == "expr_str" and isinstance(value, str) and not _plain_expression(value):
            found.setdefault(value, issue(Verdict.unsafe, "MS-SCAN-PT2-EXPR", "Exported program holds code",
                                          where, f"shape expression {value[:80]!r} is evaluated by sympy.sympify"))  # fmt: skip
        elif key == "guards_code" and value:
            found.setdefault("guards", issue(Verdict.unknown, "MS-SCAN-PT2-GUARDS", "Exported program holds code",
                                             where, "guards_code is Python that torch compiles and runs"))  # fmt: skip
    return list(found.values())


def _items(node: Any) -> Iterator[tuple[str, Any]]:
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, dict):
            for key, value in current.items():
                yield key, value
                stack.append(value)
        elif isinstance(current, list):
            stack.extend(current)


def _judge_target(target: str) -> Verdict:
    """``deserialize_operator``: a prefix picks the root, the rest is an attribute walk from it."""
    root = next((r for r in ("_operator", "torch", "math") if target.startswith(r)), None)
    if target.startswith("#"):
        return Verdict.unknown  # an extension operator: a handler registered in the loading process
    if root is None:
        return Verdict.safe  # kept as a plain string, never resolved
    path = [{"_operator": "operator"}.get(root, root), *target.split(".")[1:]]
    if path[0] == "math" and len(path) == 2 or path[0] == "operator" and len(path) == 2 and path[1] in _OPERATOR:
        return Verdict.safe
    if path[0] == "torch" and len(path) >= 4 and path[1] == "ops":
        return Verdict.safe if path[2] in TORCH_NAMESPACES else Verdict.unknown
    if _TORCH_SYMBOLIC.match(".".join(path)):
        return Verdict.safe
    return Verdict.unsafe


def _plain_expression(text: str) -> bool:
    """Numbers, shape symbols (bare or quoted in ``Symbol('s0', positive=True)``), operators and sympy's
    function and assumption names: nothing sympify can turn into a call outside sympy."""
    if not _EXPR_CHARS.match(text) or "__" in text:
        return False
    return all(_SHAPE_SYMBOL.match(n) or n in _SYMPY_FUNCTIONS for n in _IDENTIFIER.findall(text) if not n[0].isdigit())
