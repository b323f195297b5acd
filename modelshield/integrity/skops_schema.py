"""skops archives: ``schema.json`` is a tree of nodes, each naming a ``__module__`` and ``__class__``.

``skops.io.load`` imports every such name (``getattr(import_module(module), name)``) and then builds
with it: an ``ObjectNode`` instantiates the class, a ``DictNode`` calls it with no arguments, a
``ConstructorFromReduceNode`` calls it with the node's content, a ``FunctionNode`` hands the function to
the model, which calls it at predict time. skops refuses names outside its trusted list unless the
caller passes ``trusted=get_untrusted_types(...)`` — the documented way to load a file, which trusts
whatever the file names. So every name is judged against the pickle allow-list, as a pickle's globals
are, and a ``MethodNode`` (a method bound to a rebuilt object, found by name at load) is never vouched for.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from modelshield.integrity.allowlist import Verdict, classify_import
from modelshield.integrity.results import issue

if TYPE_CHECKING:  # pydantic is imported only when a finding is made
    from modelshield.core.findings import Finding


def is_skops_schema(config: Any) -> bool:
    """skops writes its root node with a loader and the schema's protocol beside it."""
    return isinstance(config, dict) and "__loader__" in config and "protocol" in config


def check_skops_schema(config: Any, where: str) -> list[Finding]:
    """One finding per name skops would import that is not on the allow-list, and per bound method."""
    found: dict[str, Finding] = {}
    for path, node in _nodes(config, "schema"):
        module, name = node.get("__module__"), node.get("__class__")
        if not (isinstance(module, str) and isinstance(name, str)):
            continue
        dotted, verdict = classify_import(module, name)
        if verdict is Verdict.unsafe:
            found.setdefault(dotted, issue(verdict, "MS-SCAN-SKOPS-DANGEROUS", "skops file names a dangerous callable",
                                           where, f"{path} names {dotted}, which skops.io.load imports and calls or hands to the model"))  # fmt: skip
        elif verdict is Verdict.unknown:
            found.setdefault(dotted, issue(verdict, "MS-SCAN-SKOPS-UNKNOWN", "skops file names a type not on the allow-list",
                                           where, f"{path} names {dotted}, which skops.io.load imports and builds"))  # fmt: skip
        if node.get("__loader__") == "MethodNode":
            content = node.get("content")
            method = content.get("func") if isinstance(content, dict) else None
            found.setdefault(f"method {path}", issue(Verdict.unknown, "MS-SCAN-SKOPS-METHOD", "skops file binds a method by name",
                                                     where, f"{path} binds method {method!r} of a rebuilt {dotted}, looked up by name at load"))  # fmt: skip
    return list(found.values())


def _nodes(value: Any, path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every dict in the schema, with where it sits (iteratively: a hostile schema can nest deeply)."""
    todo = [(path, value)]
    while todo:
        where, item = todo.pop()
        if isinstance(item, dict):
            yield where, item
            todo += [(f"{where}.{k}", v) for k, v in item.items()]
        elif isinstance(item, list):
            todo += [(f"{where}[{i}]", v) for i, v in enumerate(item)]
