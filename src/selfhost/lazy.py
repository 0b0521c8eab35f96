"""Package attributes imported on first use.

A package's ``__init__`` that imports its whole service makes every submodule
import (a constant for a command-line option, say) pay for all of it; the
command line then starts slowly. A package lists its public names here
instead, and each is imported when first read.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping


def exports(package: str, names: Mapping[str, str]) -> Callable[[str], object]:
    """A module ``__getattr__`` for ``package``: ``names`` maps each public name to
    the submodule that defines it."""

    def __getattr__(name: str) -> object:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)  # later reads skip this function
        return value

    return __getattr__
