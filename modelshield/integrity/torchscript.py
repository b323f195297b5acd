"""TorchScript archives (``torch.jit.save``): the ``code/`` torch compiles at load, judged by what it calls.

A TorchScript archive is a torch zip whose ``code/`` folder holds the model as TorchScript source — a
statically typed subset of Python that ``torch.jit.load`` compiles and runs with no access to Python
modules: it can only call torch operators (``torch.*``, ``ops.<namespace>.*``), TorchScript builtins and
classes of the archive itself (``__torch__.*``). So the source is parsed (``ast``, never run) and every
name it uses that is not bound inside it must be one of those. A reference to anything else (``os``,
``__import__``, ``builtins``), an attribute that leads into Python (``__class__``, ``__globals__``, ...), the operators that read or write files
(``aten::from_file``, ``aten::save``) or an import is *unsafe*; an operator from a namespace torch does
not ship (a custom C++ library) or a custom C++ class is *unknown*. Its pickles (``data.pkl``,
``constants.pkl``, ``*.debug_pkl``) are read by torch's C++ unpickler, which resolves ``__torch__.*`` to
those compiled classes: they are analysed with that context. Its ``extra/`` files (``_extra_files``) are
handed back to the caller as bytes and never interpreted by torch: opaque data, still scanned as a layer
so that one which *is* a dangerous format (a pickle that imports) is judged, but not "unrecognised".
"""

from __future__ import annotations

import ast
import re
from typing import TYPE_CHECKING

from modelshield.integrity.allowlist import TORCHSCRIPT, Verdict
from modelshield.integrity.pickle_analysis import analyse_pickle
from modelshield.integrity.results import issue

if TYPE_CHECKING:  # pydantic is imported only when a finding is made
    from modelshield.core.findings import Finding

# Names TorchScript's printer emits or its compiler resolves without Python: builtins, types, ``CONSTANTS``.
_FREE_NAMES = frozenset(
    {
        "torch", "ops", "__torch__", "__annotations__", "CONSTANTS", "fork", "wait", "infj", "nanj", "annotate", "uninitialized", "unchecked_cast", "isinstance",
        "range", "len", "int", "float", "bool", "str", "complex", "list", "dict", "tuple", "min", "max", "abs",
        "round", "sum", "enumerate", "zip", "divmod", "ord", "chr", "hex", "oct", "bin", "hash", "iter", "next",
        "reversed", "sorted", "any", "all", "pow", "print", "hasattr", "getattr", "math", "inf", "nan",
        "Tensor", "Optional", "List", "Dict", "Tuple", "Final", "NoneType", "Any", "Union", "Module", "Enum",
        "NamedTuple", "Future", "Await", "RRef", "Device", "Stream", "Generator", "Storage", "Scalar", "number",
        "Exception", "ValueError", "RuntimeError", "AssertionError", "TypeError", "IndexError", "KeyError",
        "NotImplementedError", "StopIteration", "ZeroDivisionError",
    }
)  # fmt: skip
# Operator namespaces torch itself registers; others come from a native library loaded beside the model.
TORCH_NAMESPACES = frozenset(
    {
        "aten", "prim", "quantized", "_quantized", "quantized_decomposed", "prepacked", "xnnpack", "mkldnn",
        "mkldnn_prepacked", "_caffe2", "sparse", "profiler", "cuda", "_nested_tensor", "_c10d_functional",
        "c10d_functional", "_dtensor", "fbgemm", "onednn", "rngprims", "higher_order", "inductor",
    }
)  # fmt: skip
_TORCH_CLASS_NAMESPACES = frozenset({"quantized", "xnnpack", "mkldnn", "_quantized", "onednn", "prepacked"})
# Attributes that lead from an object to Python's machinery (TorchScript's own ``torch.__is__``,
# ``torch.__not__``, ``x.__len__`` and friends are operators, not these).
_PYTHON_INTERNALS = frozenset(
    {
        "__class__", "__globals__", "__subclasses__", "__builtins__", "__dict__", "__code__", "__mro__", "__bases__",
        "__base__", "__getattribute__", "__reduce__", "__reduce_ex__", "__import__", "__loader__", "__spec__",
        "__module__", "__closure__", "__func__", "__self__", "__init_subclass__", "__new__", "__del__",
        "__setattr__", "__delattr__", "__getstate__", "__setstate__", "__qualname__", "__wrapped__",
    }
)  # fmt: skip
_FILE_OPS = frozenset(
    {
        "torch.from_file",
        "torch.save",
        "torch.load",
        "ops.aten.from_file",
        "ops.aten.save",
        "torch.ops.load_library",
        "torch.classes.load_library",
        "torch.hub",
    }
)
_CODE = re.compile(r"(^|[/!])code/.+\.py$")  # member names as the scanner gives them: archive!folder/name
_PICKLE = re.compile(r"(^|[/!])(data|constants|traced_inputs)\.pkl$|(^|[/!])code/.+\.debug_pkl$")
_EXTRA = re.compile(r"(^|!)[^/!]+/extra/[^!]+$")  # archive/extra/<name>: _extra_files, returned as bytes
_STORAGE = re.compile(r"(^|[/!])(constants|traced_inputs)/\d+$")


def is_torchscript(names: list[str]) -> bool:
    """A torch zip written by ``torch.jit.save``: ``constants.pkl`` and ``code/`` under one record folder."""
    return any(n.endswith("constants.pkl") for n in names) and any(
        "/code/" in n or n.startswith("code/") for n in names
    )


def is_extra(where: str) -> bool:
    """A member ``torch.jit.save(..., _extra_files=...)`` wrote: bytes torch returns without reading them."""
    return bool(_EXTRA.search(where))


def check_member(body: bytes, where: str) -> list[Finding] | None:
    """Judge one member (``where`` ends in its name) of a TorchScript archive; ``None`` when it is not
    TorchScript's own, to be scanned as any other member."""
    if _CODE.search(where):
        return check_code(body, where)
    if _PICKLE.search(where):
        return analyse_pickle(body, where, context=TORCHSCRIPT).findings
    if _STORAGE.search(where):
        return []  # raw tensor bytes, read as storage and never unpickled
    return None


def check_code(source: bytes, where: str) -> list[Finding]:
    """Parse TorchScript source and judge every name it reaches outside itself."""
    try:
        tree = ast.parse(source.decode("utf-8"), filename=where)
    except (SyntaxError, UnicodeDecodeError, ValueError) as exc:
        return [issue(Verdict.unparsed, "MS-SCAN-TS-SYNTAX", "TorchScript code unreadable", where,
                      f"not valid TorchScript source ({type(exc).__name__}); torch would refuse it or run something else")]  # fmt: skip
    return _Judge(where).run(tree)


class _Judge:
    def __init__(self, where: str) -> None:
        self.where = where
        self.found: dict[str, Finding] = {}

    def flag(self, verdict: Verdict, rule: str, title: str, text: str) -> None:
        self.found.setdefault(text, issue(verdict, rule, title, self.where, text))

    def run(self, tree: ast.Module) -> list[Finding]:
        bound = _bound_names(tree)
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom | ast.Global | ast.Nonlocal | ast.Lambda):
                self.flag(Verdict.unsafe, "MS-SCAN-TS-PYTHON", "TorchScript code uses Python-only statements",
                          f"line {node.lineno}: {type(node).__name__} is not TorchScript; this is not code torch wrote")  # fmt: skip
            elif isinstance(node, ast.Attribute) and node.attr in _PYTHON_INTERNALS:
                self.flag(Verdict.unsafe, "MS-SCAN-TS-DUNDER", "TorchScript code reaches a dunder attribute",
                          f"line {node.lineno}: .{node.attr} reaches Python internals")  # fmt: skip
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id not in bound:
                parent = parents.get(node)
                chain = _chain(node, parents)
                self.judge_reference(chain, node.lineno, parent)
        return list(self.found.values())

    def judge_reference(self, chain: str, line: int, parent: ast.AST | None) -> None:
        root, _, rest = chain.partition(".")
        if root not in _FREE_NAMES:
            self.flag(Verdict.unsafe, "MS-SCAN-TS-NAME", "TorchScript code names something outside torch",
                      f"line {line}: {chain} is neither a torch operator, a TorchScript builtin nor a class of this archive")  # fmt: skip
        elif any(chain == op or chain.startswith(op + ".") for op in _FILE_OPS):
            self.flag(Verdict.unsafe, "MS-SCAN-TS-FILE-OP", "TorchScript code reads or writes files",
                      f"line {line}: {chain} touches the file system when the model runs")  # fmt: skip
        elif root == "getattr" and isinstance(parent, ast.Call):
            self.judge_getattr(parent, line)
        elif (root == "ops" or chain.startswith("torch.ops.")) and _namespace(chain) not in TORCH_NAMESPACES:
            self.flag(Verdict.unknown, "MS-SCAN-TS-CUSTOM-OP", "TorchScript code calls a custom operator",
                      f"line {line}: {chain} needs a native operator library registered before loading")  # fmt: skip
        elif (
            chain.startswith(("torch.classes.", "__torch__.torch.classes."))
            and _class_namespace(chain) not in _TORCH_CLASS_NAMESPACES
        ):
            self.flag(Verdict.unknown, "MS-SCAN-TS-CUSTOM-CLASS", "TorchScript code uses a custom C++ class",
                      f"line {line}: {chain} needs a native class library registered before loading")  # fmt: skip

    def judge_getattr(self, call: ast.Call, line: int) -> None:
        name = call.args[1] if len(call.args) > 1 else None
        if not (isinstance(name, ast.Constant) and isinstance(name.value, str) and not name.value.startswith("_")):
            self.flag(Verdict.unsafe, "MS-SCAN-TS-GETATTR", "TorchScript code looks up a computed attribute",
                      f"line {line}: getattr with a name that is not a public constant")  # fmt: skip


def _bound_names(tree: ast.Module) -> set[str]:
    """Every name the source binds itself: classes, functions, arguments, assignment and loop targets."""
    bound: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
            bound.add(node.id)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound.add(node.name)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
    return bound - {"torch", "ops", "__torch__"}  # rebinding these to reach Python is not allowed either


def _chain(node: ast.Name, parents: dict[ast.AST, ast.AST]) -> str:
    """``a.b.c`` for the longest attribute chain rooted at ``node``."""
    parts, current = [node.id], node  # type: list[str], ast.expr
    while isinstance(parent := parents.get(current), ast.Attribute) and parent.value is current:
        parts.append(parent.attr)
        current = parent
    return ".".join(parts)


def _namespace(chain: str) -> str:
    parts = chain.removeprefix("torch.").split(".")
    return parts[1] if len(parts) > 1 else ""


def _class_namespace(chain: str) -> str:
    parts = chain.removeprefix("__torch__.").split(".")
    return parts[2] if len(parts) > 2 else ""
