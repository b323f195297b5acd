"""Static pickle analysis: walk the opcodes with ``pickletools.genops`` (nothing is ever built) and
simulate the stack with plain values — strings, numbers, tuples, lists, dicts, named imports and the
calls made on them — to know which globals are imported, called and modified, and with what.

Covers the published bypasses of deny-list scanners: names assembled on the stack or fetched from
the memo for STACK_GLOBAL, BUILD on an imported class (modelscan#85, #330), EXT opcodes, pickles
stacked after STOP or embedded as bytes, and truncated streams whose payload runs before the error.

Two real layouts put raw bytes inside or after the pickle, and are walked exactly rather than flagged:
joblib's arrays, written right after each ``NumpyArrayWrapper`` (``joblib_arrays``), and the legacy
``torch.save`` stream of five pickles and raw storages (``torch_legacy``). Bytes either leaves
unaccounted for are a finding.
"""

from __future__ import annotations

import io
import mmap
import pickletools
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from modelshield.integrity import torch_legacy
from modelshield.integrity.allowlist import (
    PLAIN,
    Context,
    Verdict,
    classify,
    classify_import,
    lookup_fails,
    named_arguments,
)
from modelshield.integrity.joblib_arrays import array_layout
from modelshield.integrity.results import issue

if TYPE_CHECKING:  # pydantic is imported only when a finding is made
    from modelshield.core.findings import Finding

Data = bytes | bytearray | mmap.mmap  # a whole file is mapped, never read into memory
MAX_NESTING = 3
MAX_STACKED = 16
_STRINGS = {"STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8"}
_BYTES = {"BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8"}
_SCALARS = {"INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT"}
_CONSTANTS = {"NONE": None, "NEWTRUE": True, "NEWFALSE": False}
_TUPLES = {"EMPTY_TUPLE": 0, "TUPLE1": 1, "TUPLE2": 2, "TUPLE3": 3}
_JOBLIB_WRAPPER = "joblib.numpy_pickle.NumpyArrayWrapper"
# Allowed helpers that can hand back an exact str: str() itself, copyreg building a str, text-to-text codecs
# (``_codecs.encode(x, "rot13")``) and torch.jit's identity helpers, which return their argument.
_MAY_RETURN_STR = ("builtins.str", "copyreg._reconstructor", "_codecs.encode", "torch.jit._pickle.")
_PICKLE_LOAD = Context("pickle.load")  # a plain unpickler: globals as PLAIN, but joblib's arrays are not skipped


@dataclass(frozen=True)
class _Global:
    dotted: str


@dataclass(eq=False)
class _Call:
    """The result of calling (REDUCE, NEWOBJ, OBJ, INST) ``target`` with ``args``; BUILD sets ``state``."""

    target: Any
    args: Any
    state: Any = None


@dataclass(frozen=True)
class _Persistent:
    """A persistent id: torch's reference to a storage kept outside the pickle."""

    pid: Any


_OBJ = object()  # anything whose value is never known statically
_GETATTR = _Global("builtins.getattr")
# Attributes a real library's pickle fetches with getattr(cls, name): a classmethod pickles that way
# (zoneinfo.ZoneInfo._unpickle, for every pandas frame with a named time zone).
_VETTED_ATTRIBUTES = frozenset({"zoneinfo.ZoneInfo._unpickle"})


def _importable(dotted: str) -> bool:
    """A dotted Python name: anything else makes ``find_class`` fail before it imports or fetches a thing."""
    return all(part.isidentifier() for part in dotted.split("."))


def _vetted_attribute(args: Any) -> str | None:
    if isinstance(args, tuple) and len(args) == 2 and isinstance(args[0], _Global) and isinstance(args[1], str):
        dotted = f"{args[0].dotted}.{args[1]}"
        return dotted if dotted in _VETTED_ATTRIBUTES else None
    return None


@dataclass
class PickleAnalysis:
    """Findings plus what was seen, so a caller can tell a proto 0/1 pickle from random bytes."""

    findings: list[Finding] = field(default_factory=list)
    opcodes: int = 0
    globals: set[str] = field(default_factory=set)
    persistent_ids: list[Any] = field(default_factory=list)
    joblib_arrays: int = 0  # NumpyArrayWrapper BUILDs reached: joblib.load reads raw bytes after each


class _Machine:
    def __init__(self, stream: IO[bytes], where: str, depth: int, out: PickleAnalysis, context: Context) -> None:
        self.stream, self.where, self.depth, self.out, self.context = stream, where, depth, out, context
        self.stack: list[Any] = []
        self.marks: list[list[Any]] = []
        self.memo: dict[int, Any] = {}
        self.flagged: set[str] = set()
        self.result: Any = _OBJ
        self.getattr_pushes = self.getattr_calls = 0  # every builtins.getattr on the stack must be called

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
        if not (_importable(module) and _importable(name)):  # "heckpoint from run 7": text read as GLOBAL
            raise ValueError(f"GLOBAL {module[:40]!r} {name[:40]!r} names no importable object: the unpickler stops")
        dotted, verdict = classify_import(module, name, self.context)
        if verdict is not Verdict.safe and self.context is _PICKLE_LOAD and lookup_fails(module, name):
            # joblib's inner object-array pickle read with the outer memo: names like "o.dtype", made of keys
            raise ValueError(f"{dotted} names nothing installed here: pickle.load stops at this import")
        self.out.globals.add(dotted)
        if dotted == _GETATTR.dotted:  # judged where it is used: only fetching a vetted attribute passes
            self.getattr_pushes += 1
            return _GETATTR
        if verdict is Verdict.unsafe:
            self.flag(verdict, "MS-SCAN-PKL-DANGEROUS", "Pickle imports a dangerous callable",
                      f"imports {dotted}, which can run code or touch the system when unpickled", glob=dotted)  # fmt: skip
        elif verdict is Verdict.unknown:
            self.flag(verdict, "MS-SCAN-PKL-UNKNOWN", "Pickle imports a global not on the allow-list",
                      f"imports {dotted}, which is not on the allow-list of data globals", glob=dotted)  # fmt: skip
        return _Global(dotted)

    def never_str(self, value: Any) -> bool:
        """Whether ``value`` is certainly not an exact ``str`` when loaded (STACK_GLOBAL then raises): a
        literal of another type, bytes or a set, or what an allowed class or helper returns. A call that
        may return a str (``str()``, ``copyreg._reconstructor``, any global not allowed) stays unresolved."""
        if isinstance(value, _Call):
            target = value.target
            return (
                isinstance(target, _Global)
                and not target.dotted.startswith(_MAY_RETURN_STR)
                and classify(target.dotted, self.context) is Verdict.safe
            )
        if isinstance(value, _Global):  # every allowed global is a class, function or constant of another type
            return value.dotted != _GETATTR.dotted and classify(value.dotted, self.context) is Verdict.safe
        return value is _OBJ or isinstance(value, int | float | tuple | list | dict | _Persistent) or value is None

    def flag_getattr(self, why: str) -> None:
        self.flag(Verdict.unsafe, "MS-SCAN-PKL-DANGEROUS", "Pickle imports a dangerous callable",
                  f"{why}: it reaches any attribute of what it is given", glob=_GETATTR.dotted)  # fmt: skip

    def finish(self) -> None:
        """``builtins.getattr`` used in any way but as the callee of a vetted fetch (stored, passed, returned)."""
        if self.getattr_pushes > self.getattr_calls:
            self.flag_getattr("holds builtins.getattr other than to call it")

    def pop_mark(self) -> list[Any]:
        items, self.stack = self.stack, self.marks.pop()
        return items

    def call(self, target: Any, args: Any) -> None:
        if target is _GETATTR:
            self.getattr_calls += 1
            fetched = _vetted_attribute(args)
            if fetched is not None:
                self.out.globals.add(fetched)
                self.stack.append(_Global(fetched))
                return
            self.flag_getattr("calls builtins.getattr on something other than a vetted class attribute")
        elif not isinstance(target, _Global):
            self.flag(Verdict.unknown, "MS-SCAN-PKL-INDIRECT-CALL", "Pickle calls a computed object",
                      "calls something that is not a named import (the result of another call)")  # fmt: skip
        else:
            for position in named_arguments(target.dotted):
                if isinstance(args, tuple) and len(args) <= position:
                    continue  # a missing optional argument takes its safe default
                given = args[position] if isinstance(args, tuple) else None
                if not isinstance(given, _Global | str):
                    self.flag(Verdict.unknown, "MS-SCAN-PKL-FACTORY", "Pickle hands a helper a computed class",
                              f"{target.dotted} instantiates or calls its argument {position}, which is not a named import")  # fmt: skip
        self.stack.append(_Call(target, args))

    def step(self, op: pickletools.OpcodeInfo, arg: Any) -> None:
        name, stack = op.name, self.stack
        if name in _STRINGS:
            stack.append(arg)
            self.maybe_nested(arg.encode("latin-1", "ignore") if isinstance(arg, str) else b"")
        elif name in _BYTES:
            stack.append(_OBJ)
            self.maybe_nested(bytes(arg))
        elif name in _SCALARS:
            stack.append(arg)
        elif name in _CONSTANTS:
            stack.append(_CONSTANTS[name])
        elif name in _TUPLES:
            size = _TUPLES[name]
            packed = tuple(stack[len(stack) - size :])
            del stack[len(stack) - size :]
            stack.append(packed)
        elif name in ("TUPLE", "LIST", "DICT"):
            items = self.pop_mark()
            self.stack.append(tuple(items) if name == "TUPLE" else list(items) if name == "LIST" else _as_dict(items))
        elif name in ("EMPTY_LIST", "EMPTY_DICT"):
            stack.append([] if name == "EMPTY_LIST" else {})
        elif name in ("APPEND", "APPENDS", "SETITEM", "SETITEMS"):
            items = [stack.pop()] if name == "APPEND" else stack[-2:] if name == "SETITEM" else self.pop_mark()
            if name == "SETITEM":
                del stack[-2:]
            self.extend(self.stack[-1], items, is_dict=name.startswith("SET"))
        elif name == "DUP":
            stack.append(stack[-1])
            self.getattr_pushes += stack[-1] is _GETATTR
        elif name == "GLOBAL":
            stack.append(self.import_global(*arg.split(" ", 1)))
        elif name == "INST":
            items = self.pop_mark()
            self.call(self.import_global(*arg.split(" ", 1)), tuple(items))
        elif name == "STACK_GLOBAL":
            qualname, module = stack.pop(), stack.pop()
            if self.never_str(module) or self.never_str(qualname):
                raise ValueError("STACK_GLOBAL on a value that is not a str: the unpickler stops here")
            stack.append(self.import_global(module, qualname))
        elif name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
            self.memo[len(self.memo) if name == "MEMOIZE" else arg] = stack[-1]
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            if arg not in self.memo:
                raise ValueError(f"memo slot {arg} read before it was written")
            stack.append(self.memo[arg])
            self.getattr_pushes += stack[-1] is _GETATTR
        elif name == "MARK":
            self.marks.append(stack)
            self.stack = []
        elif name in ("PERSID", "BINPERSID"):
            pid = arg if name == "PERSID" else stack.pop()
            self.out.persistent_ids.append(pid)
            # legacy torch.save stores a module's class as ('module', cls, file, source): load returns cls
            is_class = isinstance(pid, tuple) and len(pid) > 1 and pid[0] == "module" and isinstance(pid[1], _Global)
            stack.append(pid[1] if is_class else _Persistent(pid))
        elif name in ("REDUCE", "NEWOBJ"):
            args = stack.pop()
            self.call(stack.pop(), args)
        elif name == "NEWOBJ_EX":
            del stack[-1]  # kwargs
            args = stack.pop()
            self.call(stack.pop(), args)
        elif name == "OBJ":
            items = self.pop_mark()
            self.call(items[0] if items else _OBJ, tuple(items[1:]))
        elif name == "BUILD":
            self.build(stack.pop(), stack[-1])
        elif name == "STOP":
            self.result = stack.pop()
        elif name.startswith("EXT"):
            self.flag(Verdict.unsafe, "MS-SCAN-PKL-EXT", "Pickle uses the extension registry",
                      f"{name} imports a global by registry code, hidden from the pickle's text")  # fmt: skip
            stack.append(_OBJ)
        else:
            self.generic(op)

    def extend(self, target: Any, items: list[Any], is_dict: bool) -> None:
        if is_dict and isinstance(target, dict) and isinstance(pairs := _as_dict(items), dict):
            target.update(pairs)
        elif not is_dict and isinstance(target, list):
            target.extend(items)

    def build(self, state: Any, obj: Any) -> None:
        if isinstance(obj, _Global):
            self.flag(Verdict.unsafe, "MS-SCAN-PKL-BUILD-GLOBAL", "Pickle modifies an imported class or function",
                      f"BUILD sets attributes on {obj.dotted} itself, rewriting code other loads rely on")  # fmt: skip
        elif isinstance(obj, _Call):
            obj.state = state
            if _is_joblib_wrapper(obj) and self.context is not _PICKLE_LOAD:
                self.skip_joblib_array(state)

    def skip_joblib_array(self, state: Any) -> None:
        """joblib's unpickler reads the array's bytes right after this BUILD; skip exactly those. Counted
        first: from here on joblib.load and plain pickle.load read different bytes, whether or not these parse."""
        self.out.joblib_arrays += 1
        dtype = state.get("dtype") if isinstance(state, dict) else None
        if not (isinstance(dtype, _Call) and dtype.target == _Global("numpy.dtype")):
            raise ValueError("joblib array wrapper whose dtype is not a numpy.dtype")
        layout = array_layout(state, dtype.args, dtype.state)
        if layout.has_objects:  # a whole pickle of the object array follows
            read_pickle(self.stream, f"{self.where}[joblib object array]", self.depth + 1, self.out, self.context)
            return
        if layout.padding:
            skip(self.stream, _read_exact(self.stream, 1)[0])
        skip(self.stream, layout.nbytes)

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
            inner = analyse_pickle(data, f"{self.where}[embedded pickle]", self.depth + 1, self.context)
            self.out.findings.extend(inner.findings)


def _is_joblib_wrapper(obj: _Call) -> bool:
    """A ``NumpyArrayWrapper`` built by NEWOBJ (protocol 2+) or by ``copyreg._reconstructor`` (protocol 0/1)."""
    wrapper = _Global(_JOBLIB_WRAPPER)
    if obj.target == _Global("copyreg._reconstructor"):
        return isinstance(obj.args, tuple) and bool(obj.args) and obj.args[0] == wrapper
    return obj.target == wrapper


def _as_dict(items: list[Any]) -> dict[Any, Any] | Any:
    """Alternating keys and values as a dict, or opaque when a key is not a plain hashable value."""
    try:
        return dict(zip(items[::2], items[1::2], strict=True))
    except (TypeError, ValueError):
        return _OBJ


def _read_exact(stream: IO[bytes], n: int) -> bytes:
    chunk = stream.read(n)
    if len(chunk) != n:
        raise ValueError(f"stream ends {n - len(chunk)} bytes early")
    return chunk


def skip(stream: IO[bytes], n: int) -> None:
    """Move past ``n`` raw bytes, failing if the stream is shorter."""
    end = stream.tell() + n
    stream.seek(0, io.SEEK_END)
    if stream.tell() < end:
        raise ValueError(f"stream ends before the {n} raw bytes it declares")
    stream.seek(end)


def read_pickle(stream: IO[bytes], where: str, depth: int, out: PickleAnalysis, context: Context = PLAIN) -> Any:
    """Walk one pickle from the stream's position to its STOP, recording into ``out``; return its value."""
    machine = _Machine(stream, where, depth, out, context)
    try:
        for op, arg, _pos in pickletools.genops(stream):
            out.opcodes += 1
            machine.step(op, arg)
    finally:
        machine.finish()
    return machine.result


def _read_both_ways(
    stream: IO[bytes], data: Data, where: str, depth: int, out: PickleAnalysis, context: Context
) -> Any:
    """One pickle as joblib.load reads it and, once it reached a joblib array, as plain pickle.load reads it
    too — also when joblib's reading fails: whatever the padding and array bytes hold, pickle.load runs the
    opcodes it finds there before anything after them is read."""
    start, arrays = stream.tell(), out.joblib_arrays
    try:
        return read_pickle(stream, where, depth, out, context)
    finally:
        if out.joblib_arrays > arrays:
            end = stream.tell()
            out.findings += _as_pickle_load_reads(data, start, where, depth)
            stream.seek(end)


def _as_pickle_load_reads(data: Data, start: int, where: str, depth: int) -> list[Finding]:
    """The same bytes as plain ``pickle.load`` reads them: no joblib array is skipped, so the bytes after
    the first wrapper are taken as opcodes until one is invalid. What would run before that is judged;
    the stop itself is how a real joblib file ends under pickle.load and says nothing."""
    out = PickleAnalysis()
    stream: IO[bytes] = io.BytesIO(data) if isinstance(data, bytes | bytearray) else data  # type: ignore[assignment]
    stream.seek(start)
    try:
        read_pickle(stream, f"{where}[as pickle.load reads it]", depth, out, _PICKLE_LOAD)
    except Exception:  # noqa: BLE001 - an invalid opcode stops pickle.load: nothing after it runs
        pass
    return out.findings


def _unparsed(where: str, why: str) -> Finding:
    return issue(Verdict.unparsed, "MS-SCAN-PKL-MALFORMED", "Pickle is truncated or malformed", where,
                 f"could not be parsed to the end ({why}); a payload can run before the error", error=why)  # fmt: skip


def analyse_pickle(data: Data, where: str, depth: int = 0, context: Context = PLAIN) -> PickleAnalysis:
    """Judge every global a pickle stream (and any pickles stacked after it) imports, without unpickling."""
    out = PickleAnalysis()
    stream: IO[bytes] = io.BytesIO(data) if isinstance(data, bytes | bytearray) else data  # type: ignore[assignment]
    for index in range(MAX_STACKED):
        try:
            value = _read_both_ways(stream, data, where, depth, out, context)
            if index == 0 and value == torch_legacy.MAGIC_NUMBER:
                torch_legacy.walk(stream, out.persistent_ids, lambda: read_pickle(stream, where, depth, out))
                out.findings += torch_legacy.trailing(stream, where)
                return out
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
