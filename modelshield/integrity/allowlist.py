"""The globals a pickle may import: an allow-list of what real data files need, and nothing else.

Peers (picklescan, modelscan) deny-list and are bypassed by every callable their list forgot
(CVE-2025-1716, CVE-2025-10155..10157, ``pkgutil.resolve_name``). Here anything not listed is
"unknown" and fails; the deny-list below only makes the message for known-bad callables clearer.

Three kinds of entry:
- exact names (``SAFE_GLOBALS``): the tensor, array, dtype and random-state rebuilders of torch and numpy;
- class families whose constructors only store data: scikit-learn's classes (its estimator contract:
  ``__init__`` stores parameters, ``__setstate__`` restores a dict) and torch's stock ``torch.nn.modules``
  layers — matched by module prefix *and* a CamelCase class name, so no function of those packages passes;
- per-format extras (``Context``): TorchScript pickles name ``__torch__.*`` classes, which torch compiles
  from the archive's own ``code/`` (judged separately), never imports.
User classes (``__main__.Net``, ``mypkg.layers.Block``) stay *unknown*: loading them runs their code.
"""

from __future__ import annotations

import _compat_pickle
import ast
import functools
import importlib.machinery
import importlib.util
import os
import re
import sys
from dataclasses import dataclass

from modelshield.core.severity import RankedEnum


class Verdict(RankedEnum):
    """A scan's judgement, ordered from best to worst."""

    safe = "safe"
    unknown = "unknown"
    unparsed = "unparsed"
    unsafe = "unsafe"


_TORCH_STORAGES = (
    "Float", "Double", "Half", "BFloat16", "Long", "Int", "Short", "Char", "Byte", "Bool", "ComplexFloat",
    "ComplexDouble", "Untyped", "QInt8", "QUInt8", "QInt32", "QUInt4x2", "QUInt2x4",
)  # fmt: skip
_TORCH_DTYPES = (
    "float16", "float32", "float64", "bfloat16", "int8", "int16", "int32", "int64", "uint8", "bool", "complex64",
    "complex128", "float8_e4m3fn", "float8_e5m2", "qint8", "quint8", "qint32", "uint16", "uint32", "uint64",
)  # fmt: skip
_NUMPY_SCALARS = (
    "bool_", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float16", "float32",
    "float64", "longdouble", "complex64", "complex128", "str_", "bytes_", "datetime64", "timedelta64", "void",
    # abstract scalar types, as dtype selectors (make_column_selector(dtype_include=np.number))
    "number", "integer", "signedinteger", "unsignedinteger", "floating", "complexfloating", "inexact", "generic",
)  # fmt: skip
_NUMPY_UFUNCS = (
    "log", "log1p", "log2", "log10", "exp", "expm1", "exp2", "sqrt", "cbrt", "square", "absolute", "abs", "negative",
    "reciprocal", "sign", "floor", "ceil", "rint", "trunc", "sin", "cos", "tan", "arcsin", "arccos", "arctan",
    "sinh", "cosh", "tanh", "arcsinh", "arctanh", "add", "subtract", "multiply", "divide", "true_divide", "power",
    "maximum", "minimum", "clip",
)  # fmt: skip
_NUMPY_RANDOM = (
    "_pickle.__randomstate_ctor", "_pickle.__bit_generator_ctor", "_pickle.__generator_ctor", "mtrand.RandomState",
    "_generator.Generator", "_mt19937.MT19937", "_pcg64.PCG64", "_pcg64.PCG64DXSM", "_philox.Philox", "_sfc64.SFC64",
    "bit_generator.SeedSequence", "bit_generator.__pyx_unpickle_SeedSequence",
)  # fmt: skip
# torch.jit._pickle: identity helpers the TorchScript pickler writes around lists and tagged values.
_TORCH_JIT_PICKLE = (
    "build_intlist", "build_tensorlist", "build_doublelist", "build_boollist", "build_tensor_from_id", "restore_type_tag",
)  # fmt: skip
_TORCH_NN_HOOKS = (
    "torch.nn.utils.weight_norm.WeightNorm", "torch.nn.utils.spectral_norm.SpectralNorm",
    "torch.nn.utils.spectral_norm.SpectralNormStateDictHook", "torch.nn.utils.spectral_norm.SpectralNormLoadStateDictPreHook",
    "torch.nn.utils.parametrize.ParametrizationList", "torch.nn.parameter.Parameter", "torch.nn.parameter.Buffer",
)  # fmt: skip

# pandas objects saved beside a model (feature frames, column indexes): the data classes and their rebuilders,
# by exact name — ``pandas.HDFStore``/``ExcelWriter`` are CamelCase too and open files, so no family here.
_PANDAS = (
    "DataFrame", "Series", "Index", "RangeIndex", "MultiIndex", "CategoricalIndex", "DatetimeIndex", "TimedeltaIndex",
    "PeriodIndex", "IntervalIndex", "NA", "SparseDtype", "arrays.SparseArray", "_libs.sparse.IntIndex",
    "_libs.sparse.BlockIndex", "Categorical", "CategoricalDtype", "StringDtype", "Int64Dtype", "Int32Dtype",
    "Float64Dtype", "BooleanDtype", "PeriodDtype", "IntervalDtype", "DatetimeTZDtype", "Timestamp", "Timedelta",
    "Interval", "Period", "arrays.ArrowStringArray", "arrays.DatetimeArray", "arrays.TimedeltaArray",
    "arrays.PeriodArray", "arrays.IntegerArray", "arrays.FloatingArray", "arrays.BooleanArray",
    "arrays.StringArray", "arrays.IntervalArray", "core.frame.DataFrame", "core.series.Series",
    "core.indexes.base.Index", "core.indexes.range.RangeIndex", "core.indexes.multi.MultiIndex",
    "core.internals.managers.BlockManager", "core.internals.managers.SingleBlockManager",
    "core.arrays.categorical.Categorical", "core.dtypes.dtypes.CategoricalDtype",
    "_libs.internals._unpickle_block", "_libs.tslibs.timestamps._unpickle_timestamp",
    "_libs.tslibs.timedeltas._timedelta_unpickle", "_libs.arrays.__pyx_unpickle_NDArrayBacked",
)  # fmt: skip
_PANDAS_FACTORIES = tuple(  # pandas' ``_new_Index(cls, d)`` family: cls must be a named import
    f"pandas.core.indexes.{m}" for m in ("base._new_Index", "datetimes._new_DatetimeIndex",
                                         "interval._new_IntervalIndex", "period._new_PeriodIndex")
)  # fmt: skip
_SKLEARN_NEW_OBJ = (
    "sklearn.neighbors._kd_tree.newObj",
    "sklearn.neighbors._ball_tree.newObj",
    "sklearn.metrics._dist_metrics.newObj",
)

# torch.distributed.checkpoint's ``.metadata`` pickle: dataclasses of names, sizes and offsets, and an Enum
_TORCH_DCP = (
    "metadata.Metadata", "metadata.MetadataIndex", "metadata.StorageMeta", "metadata.ChunkStorageMetadata",
    "metadata.TensorProperties", "metadata.TensorStorageMetadata", "metadata.BytesStorageMetadata",
    "metadata._MEM_FORMAT_ENCODING", "filesystem._StorageInfo",
)  # fmt: skip

SAFE_GLOBALS: frozenset[str] = frozenset(
    {
        "collections.OrderedDict",
        "collections.defaultdict",
        "collections.Counter",
        "collections.deque",
        # what training checkpoints hold beside the tensors (the run's argparse arguments, its output folder):
        # constructors that only store their arguments, never touching the file system
        "argparse.Namespace",
        *(f"pathlib.{kind}" for kind in ("PosixPath", "WindowsPath", "PurePosixPath", "PureWindowsPath")),
        *(
            f"builtins.{t}"
            for t in ("set", "frozenset", "dict", "list", "tuple", "int", "float", "str", "bool", "bytes")
        ),
        "builtins.slice",
        "builtins.complex",
        "builtins.bytearray",
        "builtins.object",  # the base handed to copyreg._reconstructor by protocol 0/1 pickles
        "copyreg._reconstructor",  # its class argument must itself be an allowed import (see named_arguments)
        "_codecs.encode",  # protocol 0-2 spelling of bytes
        "torch._utils._rebuild_tensor",
        "torch._utils._rebuild_tensor_v2",
        "torch._utils._rebuild_tensor_v3",  # dtypes with no typed storage (float8, uint16..64); weights_only allows it
        "torch._utils._rebuild_parameter",
        "torch._utils._rebuild_parameter_with_state",
        "torch._utils._rebuild_qtensor",
        "torch._utils._rebuild_sparse_tensor",
        "torch._utils._rebuild_meta_tensor_no_storage",
        "torch._utils._rebuild_nested_tensor",
        *(f"torch._C._nn.{f}" for f in ("gelu", "softplus", "log_sigmoid", "softshrink", "hardsigmoid", "silu")),
        "torch.serialization._get_layout",  # looks a layout up by name, as torch's weights_only loader allows
        *(f"torch.{q}" for q in ("per_channel_affine", "per_tensor_symmetric", "per_channel_symmetric")),
        *(f"torch.{layout}" for layout in ("strided", "sparse_coo", "sparse_csr", "sparse_csc", "sparse_bsr")),
        "torch.Size",
        "torch.device",
        "torch.storage.UntypedStorage",
        "torch.per_tensor_affine",
        *(f"torch.{kind}Storage" for kind in _TORCH_STORAGES),
        *(f"torch.{dtype}" for dtype in _TORCH_DTYPES),
        *(f"torch.jit._pickle.{fn}" for fn in _TORCH_JIT_PICKLE),
        *_TORCH_NN_HOOKS,
        *(f"torch.distributed.checkpoint.{name}" for name in _TORCH_DCP),
        *(f"numpy.{core}.multiarray.{fn}" for core in ("core", "_core") for fn in ("_reconstruct", "scalar")),
        *(f"numpy.{core}.numeric._frombuffer" for core in ("core", "_core")),  # protocol-5 arrays
        "numpy.ndarray",
        "numpy.dtype",
        *(f"numpy.{ufunc}" for ufunc in _NUMPY_UFUNCS),  # pure math, e.g. FunctionTransformer(np.log1p)
        "numpy.ma.MaskedArray",  # GridSearchCV's cv_results_
        "numpy.ma.core.MaskedArray",
        "numpy.ma.core._mareconstruct",
        *(f"numpy.{scalar}" for scalar in _NUMPY_SCALARS),
        *(f"numpy.random.{name}" for name in _NUMPY_RANDOM),
        "joblib.numpy_pickle.NumpyArrayWrapper",  # its raw array bytes follow in the stream and are skipped exactly
        *_SKLEARN_NEW_OBJ,  # Cython ``cls.__new__(cls)`` helpers; cls must be an allowed import
        "sklearn.compose._column_transformer.make_column_selector",  # a lower-case class: dtype / regex filter
        # scipy's sparse matrices and arrays (a neighbours model or SVC fitted on TF-IDF keeps its X): data only
        *(
            f"scipy.sparse._{k}.{k}_{kind}"
            for k in ("csr", "csc", "coo", "bsr", "dia", "dok", "lil")
            for kind in ("matrix", "array")
        ),
        "xgboost.core.Booster",  # not the rest of xgboost.core / lightgbm.basic: DMatrix and Dataset read files
        "lightgbm.basic.Booster",
        *(f"pandas.{name}" for name in _PANDAS),
        *_PANDAS_FACTORIES,
        "datetime.datetime",
        "datetime.date",
        "datetime.time",
        "datetime.timedelta",
        "datetime.timezone",
        "zoneinfo.ZoneInfo",  # a named time zone (reads the tz database by its validated key)
        "zoneinfo.ZoneInfo._unpickle",  # fetched with builtins.getattr, which only that pattern may use
        "decimal.Decimal",  # exact numbers and ids in a frame's object columns: constructors that parse a value
        "fractions.Fraction",
        "uuid.UUID",
        "pyarrow.lib.py_buffer",
        "pyarrow.lib.type_for_alias",
        "pyarrow.lib._restore_array",  # pandas' Arrow strings
    }
)

# Helpers whose first argument is a class they instantiate: safe only when that class is an allowed import.
# Cython writes one ``__pyx_unpickle_<Class>(cls, checksum, state)`` per extension class it pickles.
_TYPE_FACTORIES = frozenset(
    {
        "copyreg._reconstructor",
        "numpy.ma.core._mareconstruct",
        "numpy.core.multiarray._reconstruct",
        "numpy._core.multiarray._reconstruct",
        *_SKLEARN_NEW_OBJ,
        *_PANDAS_FACTORIES,
    }
)
_PYX_UNPICKLE = re.compile(r"__pyx_unpickle_[A-Za-z_][A-Za-z0-9_]*$")


# numpy.random's constructors call the bit-generator factory they are given: ``ctor(name, factory)``.
_FACTORY_TAKERS = {"numpy.random._pickle.__randomstate_ctor": 1, "numpy.random._pickle.__generator_ctor": 1}


def named_arguments(dotted: str) -> tuple[int, ...]:
    """Positions of an allowed helper's arguments that it instantiates or calls: each must be a named import
    (itself judged by this list) or a name string, never an object built at load time."""
    if dotted in _TYPE_FACTORIES or _PYX_UNPICKLE.match(dotted.rpartition(".")[2]):
        return (0,)
    return (_FACTORY_TAKERS[dotted],) if dotted in _FACTORY_TAKERS else ()


_CLASS = re.compile(
    r"_*[A-Z][A-Za-z0-9_]*$|__pyx_unpickle_[A-Za-z_][A-Za-z0-9_]*$"
)  # CamelCase classes, Cython helpers
# (package prefix, sub-packages excluded): CamelCase classes under the prefix are data-only constructors.
_CLASS_FAMILIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("sklearn.", ("sklearn.datasets", "sklearn.externals", "sklearn.utils._testing", "sklearn.utils._show_versions",
                  "sklearn.experimental", "sklearn.conftest", "sklearn.callback", "sklearn.utils.estimator_checks",
                  "sklearn.utils.parallel", "sklearn.utils._test_common")),
    ("torch.nn.modules.", ()),
    ("torch.optim.", ()),  # a whole optimizer or scheduler saved with its model
    ("xgboost.sklearn.", ()),
    ("lightgbm.sklearn.", ()),
)  # fmt: skip


@dataclass(frozen=True)
class Context:
    """Where a pickle sits: some loaders resolve names a plain ``pickle.load`` would import."""

    name: str = "pickle"
    safe_prefixes: tuple[str, ...] = ()


PLAIN = Context()
# torch.jit.load reads these pickles with its own unpickler: ``__torch__.X`` is a class compiled from code/.
TORCHSCRIPT = Context("torchscript", ("__torch__.",))

# Known-bad: whole modules (and their submodules) and single callables.
DANGEROUS_PREFIXES: tuple[str, ...] = (
    "os", "posix", "nt", "subprocess", "sys", "pty", "shutil", "socket", "ssl", "http", "urllib", "requests",
    "webbrowser", "runpy", "importlib", "pkgutil", "code", "codeop", "ctypes", "marshal", "pickle", "_pickle",
    "dill", "cloudpickle", "multiprocessing", "asyncio", "signal", "tempfile", "glob", "io", "_io", "operator",
    "_operator", "functools", "types", "inspect", "threading", "_thread", "timeit", "pdb", "bdb", "idlelib",
    "ensurepip", "pip", "venv", "distutils", "setuptools", "smtplib", "ftplib", "telnetlib", "mailcap",
    "cProfile", "profile", "trace", "doctest", "zipimport", "torch.load", "torch.serialization", "torch.hub", "torch.jit",
    "torch.utils.collect_env", "torch._dynamo", "torch._inductor", "torch.fx", "torch.package", "torch.ops",
    "numpy.load", "numpy.testing", "numpy.f2py", "numpy.distutils", "joblib.load", "tensorflow", "builtins.eval",
    "builtins.exec", "builtins.compile", "builtins.getattr", "builtins.setattr", "builtins.delattr",
    "builtins.__import__", "builtins.open", "builtins.globals", "builtins.locals", "builtins.vars",
    "builtins.breakpoint", "builtins.input",
    # more of picklescan's and modelscan's published gadgets (GHSA-…, protectai/modelscan#338): all already
    # fail as unknown; listed so the report says why
    "pydoc", "lib2to3", "linecache", "aiohttp", "httpx", "imp", "shelve", "dbm", "sqlite3", "_sqlite3", "xmlrpc",
    "logging.config", "_posixsubprocess", "_interpreters", "_xxsubinterpreters", "_winapi", "_ctypes",
    "uuid._get_command_stdout", "torch.utils.bottleneck", "torch.utils._config_module", "torch.utils.data.datapipes",
    "torch.from_file", "numpy.fromfile", "numpy.lib.npyio", "pandas.read_pickle", "pandas.read_csv", "pandas.io",
    "pandas.eval", "scipy.io", "mlflow.projects",
)  # fmt: skip


def classify_import(module: str, name: str, context: Context = PLAIN) -> tuple[str, Verdict]:
    """The dotted name an unpickler's ``find_class(module, name)`` imports, and its verdict.

    From protocol 4 ``name`` may be an attribute path walked from the module (``np.ctypeslib.ctypes.CDLL``
    on a scikit-learn module is ctypes' ``CDLL``): such a path reaches whatever the module imported, so a
    family (which vouches for classes *defined* in its modules) never covers it; only an exact entry does."""
    dotted = canonical(module, name)
    return dotted, classify(dotted, context, family="." not in name)


def canonical(module: str, name: str) -> str:
    """``module.name`` after the Python 2 → 3 renames the unpickler applies (``__builtin__`` → ``builtins``)."""
    module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
    return f"{_compat_pickle.IMPORT_MAPPING.get(module, module)}.{name}"


# Classes of other packages that these modules import and so re-export under their own names
# (``lightgbm.basic.NamedTemporaryFile`` is tempfile's): never trusted through a family.
_REEXPORTS = frozenset(
    {
        "Client", "Connection", "Listener", "Thread", "Queue", "NamedTemporaryFile", "TemporaryFile",
        "TemporaryDirectory", "SpooledTemporaryFile", "Popen", "ThreadpoolController", "Progress", "Path",
        "ThreadPoolExecutor", "CFloatPtr", "CNumericPtr", "CStrPptr", "CStrPtr", "_BoosterHandle", "_DatasetHandle",
        # found by listing every CamelCase callable of the family modules defined elsewhere: class makers
        # and binders that turn allowed objects into new callables, and in-memory files
        "ABC", "ABCMeta", "MethodType", "FunctionType", "StringIO", "BytesIO", "Enum", "EnumMeta", "LinearOperator",
    }
)  # fmt: skip


# Modules of pure functions that fitted objects hold by reference: a scorer's metric
# (GridSearchCV(scoring="accuracy").scorer_._score_func is accuracy_score), SelectKBest's score_func, a
# layer's activation. A public function passes only
# when the installed module's source defines it (``def``), so nothing the module imports is admitted.
_FUNCTION_MODULES = frozenset(
    {
        "sklearn.metrics._classification", "sklearn.metrics._ranking", "sklearn.metrics._regression",
        "sklearn.metrics.cluster._supervised", "sklearn.metrics.cluster._unsupervised",
        "sklearn.feature_selection._univariate_selection", "sklearn.feature_selection._mutual_info",  # score_func
        "torch.nn.functional",  # a whole TransformerEncoderLayer keeps its activation (F.relu) as an attribute
    }
)  # fmt: skip


def _defined_function(dotted: str) -> bool:
    module, _, name = dotted.rpartition(".")
    return module in _FUNCTION_MODULES and not name.startswith("_") and name in _module_functions(module)


@functools.lru_cache(maxsize=64)
def _module_functions(module: str) -> frozenset[str]:
    """The top-level ``def`` names of an installed pure-Python module, read with ``ast`` (never imported)."""
    path = _module_file(module)
    if not path or not path.endswith(".py"):
        return frozenset()
    try:
        with open(path, encoding="utf-8") as source:
            tree = ast.parse(source.read())
    except (OSError, SyntaxError, ValueError):
        return frozenset()
    return frozenset(node.name for node in tree.body if isinstance(node, ast.FunctionDef))


def _in_family(dotted: str) -> bool:
    module, _, name = dotted.rpartition(".")
    if not _CLASS.match(name) or name in _REEXPORTS:
        return False
    return (
        any(
            dotted.startswith(prefix)
            and not any(module == x or module.startswith(x + ".") for x in excluded)
            and ".tests" not in module  # fmt: skip
            for prefix, excluded in _CLASS_FAMILIES
        )
        and _module_exists(module) is not False
    )


def _module_exists(module: str) -> bool | None:
    """Whether the installed package has this module, found on disk without importing anything; ``None``
    when the package is not installed here. ``sklearn.evil.Pwn`` has the family's shape but no code of
    the family behind it: whatever would be imported under that name is not what the family vouches for."""
    found = _module_file(module)
    return None if found is None else bool(found)


@functools.lru_cache(maxsize=4096)
def _module_file(module: str) -> str | None:
    """The file of an installed module (a package's ``__init__.py``), found on disk without importing
    anything: ``""`` when the package is installed but lacks it, ``None`` when the package is not installed."""
    top, *parts = module.split(".")
    try:
        spec = importlib.util.find_spec(top)  # a top-level find imports nothing
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    folders, found = list(spec.submodule_search_locations), spec.origin or ""
    for index, part in enumerate(parts):
        packages = [os.path.join(f, part) for f in folders if os.path.isfile(os.path.join(f, part, "__init__.py"))]
        if packages:
            folders, found = packages, os.path.join(packages[0], "__init__.py")
            continue
        files = [os.path.join(f, part + s) for f in folders for s in importlib.machinery.all_suffixes()]
        return next((f for f in files if os.path.isfile(f)), "") if index == len(parts) - 1 else ""
    return found


# Modules whose import alone does something (opens a browser, starts IDLE): never reasoned about by source.
_IMPORT_SIDE_EFFECTS = frozenset({"antigravity", "this", "idlelib", "turtledemo", "__hello__", "__phello__"})


def lookup_fails(module: str, name: str) -> bool:
    """Whether ``find_class(module, name)`` certainly fails: no top-level module of that name is installed
    here; or the module — already imported, compiled into the interpreter, or pure Python read with ``ast``
    (every assignment, import, ``def`` and ``class`` counts) — binds no such name and has no submodule of
    it. A module ``__getattr__``, a star import or ``globals()`` makes it unknowable. Used only where a
    reading is itself an accident of memo layout (joblib's inner pickles under plain ``pickle.load``, whose
    names come out as the dict's keys: ``signal.dtype``), never for a file's main reading."""
    first, top = name.split(".")[0], module.split(".")[0]
    loaded = sys.modules.get(module)
    if loaded is None and module in sys.builtin_module_names:
        loaded = importlib.import_module(module)  # compiled into the interpreter: importing runs no Python
    if loaded is not None:
        bound = vars(loaded)
        return first not in bound and "__getattr__" not in bound
    try:
        spec = importlib.util.find_spec(top)  # a top-level find imports nothing
    except (ImportError, ValueError):
        return False
    if spec is None:
        return True
    path = spec.origin if module == top else _module_file(module)
    if not path or not path.endswith(".py") or module.endswith("__main__") or top in _IMPORT_SIDE_EFFECTS:
        return False
    if _module_file(f"{module}.{first}"):  # a submodule is an attribute once anything imported it
        return False
    names = _bound_names(path)
    return names is not None and first not in names


@functools.lru_cache(maxsize=256)
def _bound_names(path: str) -> frozenset[str] | None:
    """Every name the module's source could bind, over-approximated; None when it binds names dynamically."""
    try:
        with open(path, encoding="utf-8") as source:
            text = source.read()
        tree = ast.parse(text)
    except (OSError, SyntaxError, ValueError):
        return None
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            if any(alias.name == "*" for alias in node.names):
                return None
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return None if "__getattr__" in names or "globals()" in text else frozenset(names)


def classify(dotted: str, context: Context = PLAIN, family: bool = True) -> Verdict:
    """Safe only when listed (exactly, or as a class of a trusted family); unsafe when known-bad; else unknown."""
    if (
        dotted in SAFE_GLOBALS
        or (family and (_in_family(dotted) or _defined_function(dotted)))
        or any(dotted.startswith(p) for p in context.safe_prefixes)
    ):
        return Verdict.safe
    if any(dotted == p or dotted.startswith(p + ".") for p in DANGEROUS_PREFIXES):
        return Verdict.unsafe
    return Verdict.unknown
