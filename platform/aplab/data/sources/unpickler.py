"""An unpickler that admits plain containers and numpy arrays only, so a data file cannot run code."""

from __future__ import annotations

import importlib
import pickle
from typing import Any, BinaryIO

import numpy as np


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only, so a data file cannot run code."""

    _ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a data file")
        if module.startswith("numpy.core.") and hasattr(np, "_core"):
            module = "numpy._core." + module.removeprefix("numpy.core.")  # numpy>=2 home
        return getattr(importlib.import_module(module), name)


def load_numpy_pickle(handle: BinaryIO) -> Any:
    """The object pickled in ``handle`` (latin1 strings, as the Python 2 pickles of CIFAR need)."""
    return NumpyOnlyUnpickler(handle, encoding="latin1").load()
