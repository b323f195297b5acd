"""The globals a pickle may import: an allow-list of what real data files need, and nothing else.

Peers (picklescan, modelscan) deny-list and are bypassed by every callable their list forgot
(CVE-2025-1716, CVE-2025-10155..10157, ``pkgutil.resolve_name``). Here anything not listed is
"unknown" and fails; the deny-list below only makes the message for known-bad callables clearer.
"""

from __future__ import annotations

import _compat_pickle

from modelshield.core.severity import RankedEnum


class Verdict(RankedEnum):
    """A scan's judgement, ordered from best to worst."""

    safe = "safe"
    unknown = "unknown"
    unparsed = "unparsed"
    unsafe = "unsafe"


_TORCH_STORAGES = (
    "Float", "Double", "Half", "BFloat16", "Long", "Int", "Short", "Char", "Byte", "Bool", "ComplexFloat",
    "ComplexDouble", "Untyped",
)  # fmt: skip
_TORCH_DTYPES = ("float16", "float32", "float64", "bfloat16", "int8", "int16", "int32", "int64", "uint8", "bool")
_SKLEARN = {
    "linear_model._logistic": ("LogisticRegression", "LogisticRegressionCV"),
    "linear_model._base": ("LinearRegression",),
    "linear_model._ridge": ("Ridge", "RidgeClassifier"),
    "linear_model._stochastic_gradient": ("SGDClassifier", "SGDRegressor"),
    "tree._classes": ("DecisionTreeClassifier", "DecisionTreeRegressor", "ExtraTreeClassifier", "ExtraTreeRegressor"),
    "tree._tree": ("Tree",),
    "ensemble._forest": ("RandomForestClassifier", "RandomForestRegressor", "ExtraTreesClassifier", "ExtraTreesRegressor"),
    "svm._classes": ("SVC", "SVR", "LinearSVC", "LinearSVR"),
    "preprocessing._data": ("StandardScaler", "MinMaxScaler", "MaxAbsScaler", "RobustScaler"),
    "preprocessing._label": ("LabelEncoder",),
    "pipeline": ("Pipeline",),
    "decomposition._pca": ("PCA",),
    "naive_bayes": ("GaussianNB",),
}  # fmt: skip

SAFE_GLOBALS: frozenset[str] = frozenset(
    {
        "collections.OrderedDict",
        "builtins.set",
        "builtins.frozenset",
        "builtins.slice",
        "builtins.complex",
        "builtins.bytearray",
        "_codecs.encode",  # protocol 0-2 spelling of bytes
        "torch._utils._rebuild_tensor",
        "torch._utils._rebuild_tensor_v2",
        "torch._utils._rebuild_parameter",
        "torch._utils._rebuild_parameter_with_state",
        "torch.Size",
        "torch.storage.UntypedStorage",
        *(f"torch.{kind}Storage" for kind in _TORCH_STORAGES),
        *(f"torch.{dtype}" for dtype in _TORCH_DTYPES),
        *(f"numpy.{core}.multiarray.{fn}" for core in ("core", "_core") for fn in ("_reconstruct", "scalar")),
        "numpy.ndarray",
        "numpy.dtype",
        "numpy.random._pickle.__randomstate_ctor",
        "numpy.random._pickle.__bit_generator_ctor",
        "numpy.random._pickle.__generator_ctor",
        "numpy.random.mtrand.RandomState",
        "numpy.random._mt19937.MT19937",
        "numpy.random._pcg64.PCG64",
        *(f"sklearn.{module}.{cls}" for module, classes in _SKLEARN.items() for cls in classes),
    }
)

# Known-bad: whole modules (and their submodules) and single callables.
DANGEROUS_PREFIXES: tuple[str, ...] = (
    "os", "posix", "nt", "subprocess", "sys", "pty", "shutil", "socket", "ssl", "http", "urllib", "requests",
    "webbrowser", "runpy", "importlib", "pkgutil", "code", "codeop", "ctypes", "marshal", "pickle", "_pickle",
    "dill", "cloudpickle", "multiprocessing", "asyncio", "signal", "tempfile", "glob", "io", "_io", "operator",
    "_operator", "functools", "types", "inspect", "threading", "_thread", "timeit", "pdb", "bdb", "idlelib",
    "ensurepip", "pip", "venv", "distutils", "setuptools", "smtplib", "ftplib", "telnetlib", "mailcap",
    "cProfile", "profile", "trace", "doctest", "zipimport", "torch.load", "torch.serialization", "torch.hub", "torch.jit",
    "torch.utils.collect_env", "numpy.load", "joblib.load", "builtins.eval", "builtins.exec", "builtins.compile",
    "builtins.getattr", "builtins.setattr", "builtins.delattr", "builtins.__import__", "builtins.open",
    "builtins.globals", "builtins.locals", "builtins.vars", "builtins.breakpoint", "builtins.input",
)  # fmt: skip


def canonical(module: str, name: str) -> str:
    """``module.name`` after the Python 2 → 3 renames the unpickler applies (``__builtin__`` → ``builtins``)."""
    module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
    return f"{_compat_pickle.IMPORT_MAPPING.get(module, module)}.{name}"


def classify(dotted: str) -> Verdict:
    """Safe only when listed exactly; unsafe when known-bad; unknown — and failing — otherwise."""
    if dotted in SAFE_GLOBALS:
        return Verdict.safe
    if any(dotted == p or dotted.startswith(p + ".") for p in DANGEROUS_PREFIXES):
        return Verdict.unsafe
    return Verdict.unknown
