"""The class families of the allow-list hold only classes their own package defines.

A family trusts every CamelCase name under a module prefix, and a module's namespace also holds what it
imports: ``sklearn.callback._transport.Client`` is ``multiprocessing.connection.Client``, which opens a
socket. This walks the installed packages and fails when a family admits a class defined elsewhere,
other than type-hint and number types that do nothing when called with data."""

from __future__ import annotations

import importlib
import pkgutil
import re
import warnings

import pytest

from modelshield.integrity.allowlist import Verdict, classify

_TRUSTED_ORIGINS = ("sklearn", "torch", "xgboost", "lightgbm", "numpy", "scipy")
# type hints, containers, numbers and exceptions: nothing happens when they are built from data
_HARMLESS_ORIGINS = ("typing", "typing_extensions", "numbers", "collections", "builtins", "abc", "enum", "dataclasses",
                     "_io", "inspect", "unittest.case", "_cyutility")  # fmt: skip
_CLASS = re.compile(r"_*[A-Z][A-Za-z0-9_]*$")


def _foreign_classes(package: str) -> list[str]:
    root = importlib.import_module(package)
    names = [package] + [m.name for m in pkgutil.walk_packages(getattr(root, "__path__", []), package + ".")]
    found = []
    for name in names:
        if ".tests" in name or name.endswith("conftest"):
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                module = importlib.import_module(name)
        except Exception:  # noqa: BLE001 - optional back ends that are not installed
            continue
        for attr, value in list(vars(module).items()):
            if not (_CLASS.match(attr) and callable(value)) or classify(f"{name}.{attr}") is not Verdict.safe:
                continue
            origin = getattr(value, "__module__", None) or ""
            if not origin.startswith(_TRUSTED_ORIGINS) and not origin.startswith(_HARMLESS_ORIGINS):
                found.append(f"{name}.{attr} is {origin}.{getattr(value, '__qualname__', attr)}")
    return found


@pytest.mark.parametrize(
    "package", ["sklearn", "torch.nn.modules", "torch.optim", "xgboost.sklearn", "lightgbm.sklearn"]
)
def test_families_admit_only_their_own_classes(package: str) -> None:
    pytest.importorskip(package.split(".")[0])
    assert _foreign_classes(package) == []
