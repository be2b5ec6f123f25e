"""One registry for every extension point (sources, mitigations, similarity measures).

A :class:`Registry` holds named items of one kind, filled in one place (the module
that lists them). It type-checks each entry, refuses a name registered twice, and
answers an unknown name with a :class:`~odyssey.errors.ConfigError` that suggests the
closest known one.

>>> MEASURES = Registry("measure", Measure, [JSDivergence(), RareTokenRate()])
>>> MEASURES.get("js_divergense")
Traceback (most recent call last):
ConfigError: unknown measure 'js_divergense'; did you mean 'js_divergence'? ...
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

from odyssey.errors import ConfigError

T = TypeVar("T")


def unknown_name_message(what: str, name: str, known: Iterable[str]) -> str:
    """``unknown WHAT 'name'``, with ``; did you mean 'x'?`` when a known name is close."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f"unknown {what} {name!r}" + (f"; did you mean {close[0]!r}?" if close else "")


def _name_attribute(item: object) -> str:
    return item.name  # type: ignore[attr-defined]


class Registry(Generic[T]):
    """Named items of one kind, in registration order.

    ``what`` names the kind in messages ("source", "mitigation"); ``kind`` is the class
    every item must be an instance of (or, with ``classes=True``, a subclass of: for
    registries of plug-in classes); ``key`` gives an item's name (default: its ``name``).
    Registering a second item under a name, or an item of another kind, is a mistake in
    the code, so those raise ``ValueError``/``TypeError`` that say what to fix.
    """

    def __init__(self, what: str, kind: type, items: Iterable[T] = (), *, classes: bool = False,
                 key: Callable[[T], str] = _name_attribute):
        self.what, self.kind, self.classes, self.key = what, kind, classes, key
        self._items: dict[str, T] = {}
        for item in items:
            self.register(item)

    def register(self, item: T) -> T:
        """Add ``item`` (returned, so this also works as a class decorator)."""
        ok = (isinstance(item, type) and issubclass(item, self.kind)) if self.classes else isinstance(item, self.kind)
        if not ok:
            wanted = f"a subclass of {self.kind.__name__}" if self.classes else f"a {self.kind.__name__}"
            raise TypeError(f"a {self.what} must be {wanted}, got {item!r}")
        name = self.key(item)
        if not isinstance(name, str) or not name:
            raise TypeError(f"a {self.what} needs a non-empty string name, got {name!r}")
        if name in self._items:
            raise ValueError(f"{self.what} {name!r} is already registered: give the new one another name")
        self._items[name] = item
        return item

    def get(self, name: str) -> T:
        """The item named ``name``; an unknown name raises ``ConfigError`` with a "did you mean" hint."""
        try:
            return self._items[name]
        except KeyError:
            raise ConfigError(unknown_name_message(self.what, name, self._items),
                              f"known {self.what}s: {', '.join(self._items)}") from None

    def names(self) -> list[str]:
        return list(self._items)

    def __iter__(self) -> Iterator[T]:
        return iter(self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items
