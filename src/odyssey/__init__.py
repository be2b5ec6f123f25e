"""odyssey: will adapting a language model to your domain help, did it, why, and what to do about it.

From Python (see :mod:`odyssey.api`)::

    import odyssey
    result = odyssey.evaluate("smollm2-135m", "corpora/legal:test")
    run = odyssey.adapt("smollm2-135m", "corpora/legal", "runs/legal", max_steps=20)
    study = odyssey.study(only=["licenses"])
    diagnosis = odyssey.diagnose("corpora/legal")
    attribution = odyssey.attribute("evals/base", "evals/adapted")

``import odyssey`` imports nothing heavy (no torch); each function imports what it needs.
"""

from __future__ import annotations

import importlib
import sys
import types

__version__ = "0.1.0"

# `odyssey.evaluate`, `odyssey.adapt` and `odyssey.study` are subpackages *and* the API
# functions of the same names. Python sets a subpackage as an attribute of its parent
# when it is imported, which would hide a plain function of that name; so the
# subpackage itself is made callable (its module class gets a __call__ that runs the
# function in odyssey.api). `odyssey.evaluate.run` and `from odyssey.evaluate import
# EvalConfig` keep working as before.
_CALLABLE_PACKAGES = ("evaluate", "adapt", "study")
_FUNCTIONS = ("diagnose", "attribute")


class _CallablePackage(types.ModuleType):
    """A subpackage that, called, runs the :mod:`odyssey.api` function of its name."""

    def __call__(self, *args, **kwargs):
        api = importlib.import_module("odyssey.api")
        return getattr(api, self.__name__.rpartition(".")[2])(*args, **kwargs)


class _Package(types.ModuleType):
    def __setattr__(self, name: str, value) -> None:
        if name in _CALLABLE_PACKAGES and type(value) is types.ModuleType:
            value.__class__ = _CallablePackage  # set by the import system, before anyone reads it
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str):
    if name in _CALLABLE_PACKAGES:
        return importlib.import_module(f"odyssey.{name}")  # importing it makes it callable
    if name in _FUNCTIONS:
        return getattr(importlib.import_module("odyssey.api"), name)
    raise AttributeError(f"module 'odyssey' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_CALLABLE_PACKAGES, *_FUNCTIONS])
