"""One way to build a configuration: defaults < YAML file < command line.

Every stage has a pydantic model for its configuration. :func:`resolve` applies a
YAML file and then dotted ``key=value`` overrides, touching only the fields the user
actually set (so ``train.bf16=false`` overrides a ``true`` in the file), validates
once and reports every problem in one error.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from odyssey.errors import ConfigError
from odyssey.io import atomic_write

T = TypeVar("T", bound=BaseModel)


class StageConfig(BaseModel):
    """Base for stage configs: unknown keys are errors (typos must not pass silently)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


def parse_override(item: str) -> tuple[list[str], Any]:
    """``"train.lr=3e-4"`` -> ``(["train", "lr"], 0.0003)``; the value is parsed as YAML."""
    if "=" not in item:
        raise ConfigError(f"override {item!r} is not key=value", "write it as section.key=value")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override {item!r} has an empty key")
    return key.split("."), parse_value(raw)


def parse_value(raw: str) -> Any:
    """A command-line value: numbers (``3e-4`` too), true/false, null, YAML lists and
    mappings; anything else stays a string (so ``no`` is the string "no", not False
    as YAML 1.1 would have it)."""
    s = raw.strip()
    for convert in (int, float):
        try:
            return convert(s)
        except ValueError:
            pass
    if s.lower() in ("true", "false"):
        return s.lower() == "true"
    if s.lower() in ("null", "none", "~"):
        return None
    if s[:1] in ("[", "{", '"', "'"):
        try:
            return yaml.safe_load(s)
        except yaml.YAMLError:
            pass
    return raw


def set_dotted(data: dict, keys: list[str], value: Any) -> None:
    node = data
    for k in keys[:-1]:
        child = node.get(k)
        if not isinstance(child, dict):
            child = {}
            node[k] = child
        node = child
    node[keys[-1]] = value


def load_yaml(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ConfigError(_yaml_problem(path, e), "fix the YAML at that place") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def _yaml_problem(path: Path, e: yaml.YAMLError) -> str:
    """One line for PyYAML's several: ``file:line:column: invalid YAML (what)``."""
    mark = getattr(e, "problem_mark", None)
    what = getattr(e, "problem", None) or str(e).splitlines()[0]
    where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
    context = getattr(e, "context", None)
    return f"{where}: invalid YAML ({what}{', ' + context if context else ''})"


def deep_merge(low: dict, high: dict) -> dict:
    """``high`` over ``low``, merging nested mappings key by key."""
    out = dict(low)
    for k, v in high.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def nested_defaults(model: type[BaseModel]) -> dict[str, Any]:
    """The defaults of fields that are themselves configs, as plain data.

    A section given only in part (``recipe.optim.weight_decay=0.1``) is merged over
    these, so it keeps the other values its default factory set (``recipe.optim.lr``)
    instead of falling back to the bare class defaults.
    """
    out: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        if field.is_required():
            continue
        default = field.get_default(call_default_factory=True)
        if isinstance(default, BaseModel):
            out[name] = default.model_dump()
    return out


def resolve(
    model: type[T],
    yaml_path: str | os.PathLike | None = None,
    overrides: list[str] | None = None,
    values: dict[str, Any] | None = None,
    base: dict[str, Any] | None = None,
) -> T:
    """Build ``model`` from defaults, then ``base`` (a preset's values), then ``yaml_path``, then ``values`` (dotted keys
    from typed CLI options; ``None`` means "not given"), then ``overrides``
    (``key=value`` strings).

    >>> cfg = resolve(AdaptConfig, "recipe.yaml", ["train.lr=1e-4"])
    """
    data: dict[str, Any] = deep_merge(nested_defaults(model), base or {})
    data = deep_merge(data, load_yaml(yaml_path) if yaml_path else {})
    for key, value in (values or {}).items():
        if value is not None:
            set_dotted(data, key.split("."), value)
    for item in overrides or []:
        keys, value = parse_override(item)
        set_dotted(data, keys, value)
    try:
        return model.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}" for err in e.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from e


def config_differences(saved: dict, now: dict, ignore: tuple[str, ...] = (), prefix: str = "") -> list[str]:
    """What differs between two configs as plain data, one ``key: old -> new`` per dotted
    key (``ignore``: top-level keys that may differ).

    >>> config_differences({"train": {"max_steps": 2}}, {"train": {"max_steps": 4}})
    ['train.max_steps: 2 -> 4']
    """
    out = []
    for key in sorted(set(saved) | set(now), key=str):
        if not prefix and key in ignore:
            continue
        a, b = saved.get(key), now.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += config_differences(a, b, (), f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return out


def save_config(cfg: BaseModel, path: str | os.PathLike) -> None:
    """Write the resolved config as plain YAML, atomically."""
    with atomic_write(path) as f:
        yaml.safe_dump(cfg.model_dump(mode="json"), f, sort_keys=False)
