"""The generic registry every extension point uses: type checks, duplicates, did-you-mean."""

from dataclasses import dataclass

import pytest

from odyssey.errors import ConfigError
from odyssey.registry import Registry, unknown_name_message


@dataclass(frozen=True)
class Item:
    name: str


class Base:
    name = ""


class Good(Base):
    name = "good"


def test_items_keep_registration_order_and_are_found_by_name():
    reg = Registry("widget", Item, [Item("b"), Item("a")])
    assert reg.names() == ["b", "a"] and [i.name for i in reg] == ["b", "a"] and len(reg) == 2
    assert reg.get("a") == Item("a") and "a" in reg and "c" not in reg


def test_duplicates_wrong_kinds_and_empty_names_are_refused():
    reg = Registry("widget", Item, [Item("a")])
    with pytest.raises(ValueError, match="widget 'a' is already registered"):
        reg.register(Item("a"))
    with pytest.raises(TypeError, match="must be a Item"):
        reg.register("a")
    with pytest.raises(TypeError, match="non-empty string name"):
        reg.register(Item(""))
    assert reg.names() == ["a"]


def test_class_registries_take_subclasses_and_work_as_a_decorator():
    reg = Registry("method", Base, classes=True)

    @reg.register
    class Other(Base):
        name = "other"

    assert reg.register(Good) is Good and reg.names() == ["other", "good"]
    with pytest.raises(TypeError, match="subclass of Base"):
        reg.register(Good())
    with pytest.raises(TypeError):
        reg.register(int)


def test_unknown_names_are_config_errors_with_a_suggestion():
    reg = Registry("widget", Item, [Item("replay"), Item("l2sp")])
    with pytest.raises(ConfigError, match="unknown widget 'replya'; did you mean 'replay'") as err:
        reg.get("replya")
    assert err.value.hint == "known widgets: replay, l2sp"
    assert unknown_name_message("widget", "zzz", reg.names()) == "unknown widget 'zzz'"
