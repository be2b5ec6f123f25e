"""Options that set a config field take their help from that field's description.

One text, one place: the pydantic ``Field(description=...)`` is both the config's
documentation and the flag's ``--help``, so the two cannot drift apart.

>>> max_steps: int = option_for(AdaptConfig, "train.max_steps", "--max-steps")
"""

from __future__ import annotations

import types
import typing
from typing import Any

import typer
from pydantic import BaseModel


def config_field(config: type[BaseModel], dotted: str):
    """The pydantic field at ``dotted`` (``"train.max_steps"``), following nested configs."""
    *sections, leaf = dotted.split(".")
    model = config
    for key in sections:
        model = _submodel(model, key, dotted)
    if leaf not in model.model_fields:
        raise KeyError(f"{config.__name__} has no field {dotted!r}")
    return model.model_fields[leaf]


def _submodel(model: type[BaseModel], key: str, dotted: str) -> type[BaseModel]:
    if key not in model.model_fields:
        raise KeyError(f"{model.__name__} has no field {key!r} (in {dotted!r})")
    annotation = model.model_fields[key].annotation
    # `Section | None` and plain `Section` both lead to the section's class.
    candidates = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else (annotation,)
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    raise KeyError(f"{model.__name__}.{key} is not a config section (in {dotted!r})")


def field_help(config: type[BaseModel], dotted: str) -> str:
    """The description of the field at ``dotted``; a field without one is an error here, at
    import, rather than a flag without help."""
    description = config_field(config, dotted).description
    if not description:
        raise ValueError(f"{config.__name__}.{dotted} has no description to serve as --help")
    return description


def field_default(config: type[BaseModel], dotted: str) -> Any:
    """The value ``config`` gives the field at ``dotted`` when nothing sets it, as a section's
    default factory sets it (``Recipe.train.batch_size`` is 8, not ``TrainConfig``'s); ``None``
    where there is none (a required field, or a section without a default)."""
    value: Any = config
    for key in dotted.split("."):
        if isinstance(value, type):  # a class: its field's own default
            field = value.model_fields[key]
            if field.is_required():
                return None
            value = field.get_default(call_default_factory=True)
        else:  # an instance made by a default factory: its value
            value = getattr(value, key, None)
        if value is None:
            return None
    return value


def option_for(config: type[BaseModel], dotted: str, *flags: str, more: str = "", **kwargs) -> Any:
    """A ``typer.Option`` whose help is the description of ``config``'s field ``dotted``
    (``more`` adds what only the command line has to say, such as "repeat for several").

    The option's default stays ``None`` ("not given"), so that the config's own default, a
    YAML file or an override decides; ``--help`` shows that default where it is a plain value.
    The option remembers its field and addition (``.config_field``) for the test that checks
    every such help against its description.
    """
    help_text = field_help(config, dotted) + (f" {more}" if more else "")
    default = field_default(config, dotted)
    if isinstance(default, str | int | float) and not isinstance(default, bool):
        kwargs.setdefault("show_default", str(default))
    info = typer.Option(None, *flags, help=help_text, **kwargs)
    info.config_field = (config, dotted, more)
    return info
