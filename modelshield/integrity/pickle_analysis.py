"""Static pickle analysis: walk the opcodes with ``pickletools.genops`` (nothing is ever built) and
simulate just enough of the stack to know which globals are imported, called and modified.

Covers the published bypasses of deny-list scanners: names assembled on the stack or fetched from
the memo for STACK_GLOBAL, BUILD on an imported class (modelscan#85, #330), EXT opcodes, pickles
stacked after STOP or embedded as bytes, and truncated streams whose payload runs before the error.
"""

from __future__ import annotations

import io
import mmap
import pickletools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from modelshield.integrity.allowlist import Verdict, canonical, classify
from modelshield.integrity.results import issue

if TYPE_CHECKING:  # pydantic is imported only when a finding is made
    from modelshield.core.findings import Finding

Data = bytes | bytearray | mmap.mmap  # a whole file is mapped, never read into memory
MAX_NESTING = 3
MAX_STACKED = 16
_STRINGS = {"STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8"}
_BYTES = {"BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8"}
_CALLS = {"REDUCE": 1, "NEWOBJ": 1, "NEWOBJ_EX": 2}  # how many argument items sit above the callable


@dataclass(frozen=True)
class _Global:
    dotted: str


_OBJ = object()  # anything built at load time; its value is never known statically


@dataclass
class PickleAnalysis:
    """Findings plus what was seen, so a caller can tell a proto 0/1 pickle from random bytes."""

    findings: list[Finding] = field(default_factory=list)
    opcodes: int = 0
    globals: set[str] = field(default_factory=set)


class _Machine:
    def __init__(self, where: str, depth: int, out: PickleAnalysis) -> None:
        self.where, self.depth, self.out = where, depth, out
        self.stack: list[Any] = []
        self.marks: list[list[Any]] = []
        self.memo: dict[int, Any] = {}
        self.flagged: set[str] = set()

    def flag(self, verdict: Verdict, rule: str, title: str, text: str, **evidence: Any) -> None:
        key = f"{rule}|{text}"
        if key not in self.flagged:
            self.flagged.add(key)
            self.out.findings.append(issue(verdict, rule, title, self.where, text, **evidence))

    def import_global(self, module: Any, name: Any) -> _Global | Any:
        if not (isinstance(module, str) and isinstance(name, str)):
            self.flag(Verdict.unknown, "MS-SCAN-PKL-UNRESOLVED", "Global name not resolvable statically",
                      "a STACK_GLOBAL takes its module or name from something built at load time")  # fmt: skip
            return _OBJ
        dotted = canonical(module, name)
        self.out.globals.add(dotted)
        verdict = classify(dotted)
        if verdict is Verdict.unsafe:
            self.flag(verdict, "MS-SCAN-PKL-DANGEROUS", "Pickle imports a dangerous callable",
                      f"imports {dotted}, which can run code or touch the system when unpickled", glob=dotted)  # fmt: skip
        elif verdict is Verdict.unknown:
            self.flag(verdict, "MS-SCAN-PKL-UNKNOWN", "Pickle imports a global not on the allow-list",
                      f"imports {dotted}, which is not on the allow-list of data globals", glob=dotted)  # fmt: skip
        return _Global(dotted)

    def pop_mark(self) -> list[Any]:
        items, self.stack = self.stack, self.marks.pop()
        return items

    def call(self, target: Any) -> None:
        if not isinstance(target, _Global):
            self.flag(Verdict.unknown, "MS-SCAN-PKL-INDIRECT-CALL", "Pickle calls a computed object",
                      "calls something that is not a named import (the result of another call)")  # fmt: skip
        self.stack.append(_OBJ)

    def step(self, op: pickletools.OpcodeInfo, arg: Any) -> None:
        name, stack = op.name, self.stack
        if name in _STRINGS:
            stack.append(arg)
            self.maybe_nested(arg.encode("latin-1", "ignore") if isinstance(arg, str) else b"")
        elif name in _BYTES:
            stack.append(_OBJ)
            self.maybe_nested(bytes(arg))
        elif name == "GLOBAL":
            stack.append(self.import_global(*arg.split(" ", 1)))
        elif name == "INST":
            self.pop_mark()
            self.call(self.import_global(*arg.split(" ", 1)))
        elif name == "STACK_GLOBAL":
            qualname = stack.pop()
            stack.append(self.import_global(stack.pop(), qualname))
        elif name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
            self.memo[len(self.memo) if name == "MEMOIZE" else arg] = stack[-1]
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            if arg not in self.memo:
                raise ValueError(f"memo slot {arg} read before it was written")
            stack.append(self.memo[arg])
        elif name == "MARK":
            self.marks.append(stack)
            self.stack = []
        elif name in _CALLS:
            del stack[len(stack) - _CALLS[name] :]
            self.call(stack.pop())
        elif name == "OBJ":
            items = self.pop_mark()
            self.call(items[0] if items else _OBJ)
        elif name == "BUILD":
            stack.pop()
            if isinstance(stack[-1], _Global):
                self.flag(Verdict.unsafe, "MS-SCAN-PKL-BUILD-GLOBAL", "Pickle modifies an imported class or function",
                          f"BUILD sets attributes on {stack[-1].dotted} itself, rewriting code other loads rely on")  # fmt: skip
        elif name.startswith("EXT"):
            self.flag(Verdict.unsafe, "MS-SCAN-PKL-EXT", "Pickle uses the extension registry",
                      f"{name} imports a global by registry code, hidden from the pickle's text")  # fmt: skip
            stack.append(_OBJ)
        else:
            self.generic(op)

    def generic(self, op: pickletools.OpcodeInfo) -> None:
        """Apply an opcode's documented stack effect, with opaque values."""
        before = op.stack_before
        if pickletools.markobject in before:
            self.pop_mark()
            below = before.index(pickletools.markobject)
        else:
            below = len(before)
        if below > len(self.stack):
            raise ValueError(f"{op.name} needs {below} stack items")
        del self.stack[len(self.stack) - below :]
        self.stack.extend(_OBJ for _ in op.stack_after)

    def maybe_nested(self, data: bytes) -> None:
        if len(data) > 2 and data[0] == 0x80 and data[1] <= 5 and self.depth < MAX_NESTING:
            inner = analyse_pickle(data, f"{self.where}[embedded pickle]", self.depth + 1)
            self.out.findings.extend(inner.findings)


def _unparsed(where: str, why: str) -> Finding:
    return issue(Verdict.unparsed, "MS-SCAN-PKL-MALFORMED", "Pickle is truncated or malformed", where,
                 f"could not be parsed to the end ({why}); a payload can run before the error", error=why)  # fmt: skip


def analyse_pickle(data: Data, where: str, depth: int = 0) -> PickleAnalysis:
    """Judge every global a pickle stream (and any pickles stacked after it) imports, without unpickling."""
    out = PickleAnalysis()
    stream = io.BytesIO(data) if isinstance(data, bytes | bytearray) else data
    for _ in range(MAX_STACKED):
        machine = _Machine(where, depth, out)
        try:
            for op, arg, _pos in pickletools.genops(stream):  # type: ignore[arg-type]  # mmap reads like IO[bytes]
                out.opcodes += 1
                machine.step(op, arg)
        except Exception as exc:  # noqa: BLE001 - genops and the simulation raise many types on bad input
            out.findings.append(_unparsed(where, f"{type(exc).__name__}: {exc}"))
            return out
        rest = stream.read(2)
        if not rest:
            return out
        if rest[0] != 0x80:
            out.findings.append(issue(Verdict.unknown, "MS-SCAN-PKL-TRAILING", "Data after the pickle", where,
                                      "bytes follow the pickle's STOP that are not another pickle"))  # fmt: skip
            return out
        stream.seek(-len(rest), io.SEEK_CUR)
    out.findings.append(_unparsed(where, f"more than {MAX_STACKED} pickles stacked"))
    return out
