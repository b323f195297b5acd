"""Victims for the extraction tests: scikit-learn models on its bundled data, fitted on one BLAS thread."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from threadpoolctl import threadpool_limits


@pytest.fixture(scope="module", autouse=True)
def one_blas_thread() -> Iterator[None]:
    """scikit-learn's solvers on one BLAS thread: on the shared machine, many threads make a 0.2 s fit take 10 s."""
    with threadpool_limits(1):
        yield
