"""Package namespaces whose names are imported on first use (PEP 562).

A package ``__init__`` that imported its submodules eagerly would make every import of
one light module of the package (a config, as the CLI does for ``--help``) pay for
torch, scipy or numba. Instead:

>>> __getattr__, __all__ = lazy_exports(__name__, {"evaluate": "odyssey.evaluate.run"})
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str | tuple[str, str]]
                 ) -> tuple[Callable[[str], Any], list[str]]:
    """``(__getattr__, __all__)`` for ``package``: ``exports`` maps each public name to the
    module that defines it, or to ``(module, name there)`` for a name exported under
    another one."""

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, attribute = exports[name] if isinstance(exports[name], tuple) else (exports[name], name)
        return getattr(importlib.import_module(module), attribute)

    return __getattr__, sorted(exports)
