"""Keep pyarrow from importing pandas when it builds its first array from a Python list.

`pa.array(list)` first asks whether the list is a pandas object, and to ask, pyarrow
imports pandas (once per process): about 0.45 s and 50 MB inside the first step that
writes a table, though no table here ever comes from pandas (bench/, issue 8 P2 and P5).
`keep_pandas_lazy` lets that first question find no pandas: pyarrow then remembers
"no pandas" for its list check only; whatever really needs pandas (`Table.to_pandas`)
imports it again when called (pyarrow's pandas shim retries on `raise_=True`), so nothing
is lost. Only the calling thread's import is refused, for the length of one tiny array.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

_done = False


class _RefusePandas:
    """A meta path finder that refuses `pandas` to one thread."""

    def __init__(self) -> None:
        self.thread = threading.get_ident()

    def find_spec(
        self, name: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if name.partition(".")[0] == "pandas" and threading.get_ident() == self.thread:
            raise ModuleNotFoundError("pandas is not needed to build Arrow arrays", name=name)
        return None


def keep_pandas_lazy() -> None:
    """Make pyarrow's list-to-array path skip its pandas import (idempotent)."""
    global _done
    if _done:
        return
    _done = True
    if "pandas" in sys.modules:
        return  # already paid for: pyarrow may as well use it
    import pyarrow as pa

    finder = _RefusePandas()
    sys.meta_path.insert(0, finder)
    try:
        pa.array([0])
    finally:
        sys.meta_path.remove(finder)
