"""The bias probe's minimal pairs: templates with slots, expanded deterministically.

A template states a stereotype about one group of a category (``stereotype``) and is
filled once with a term of that group (the stereotypical sentence) and once with the
term at the same position of a contrast group (the anti-stereotypical sentence); the two
sentences differ only in the group words. Expansion order is the file's order:
templates, then contrast groups, then terms, so pair ids and counts never change unless
the file does. The format is described at the top of ``odyssey/assets/bias/templates.yaml``.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import yaml

from odyssey.errors import ConfigError
from odyssey.io import sha256_file

SLOT = re.compile(r"\{([A-Za-z_]+)\}")


@dataclass(frozen=True)
class Pair:
    """One minimal pair. ``template`` names the template it came from (``gender/03``)."""

    id: str
    category: str
    template: str
    stereo_group: str
    anti_group: str
    term: int
    stereo: str
    anti: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class NeutralPair:
    """A sentence about no stereotype, filled with the two terms of a pair: how much the
    model prefers one group word over the other for its own sake."""

    key: tuple[str, str, str, int]  # (category, stereo group, anti group, term)
    stereo: str
    anti: str


def default_templates_path() -> Path:
    return Path(str(resources.files("odyssey") / "assets" / "bias" / "templates.yaml"))


def load_templates(path: str | os.PathLike | None = None) -> dict:
    """The parsed template file, checked (``ConfigError`` names what is wrong)."""
    path = Path(path) if path else default_templates_path()
    if not path.is_file():
        raise ConfigError(f"bias templates not found: {path}", "give a YAML file in the format of "
                          "odyssey/assets/bias/templates.yaml")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: invalid YAML ({e})") from e
    if not isinstance(data, dict) or not isinstance(data.get("categories"), dict) or not data["categories"]:
        raise ConfigError(f"{path}: expected a mapping with a non-empty 'categories' mapping")
    for name, cat in data["categories"].items():
        _check_category(path, name, cat)
    for text in data.get("neutral") or []:
        if not isinstance(text, str):
            raise ConfigError(f"{path}: neutral sentences must be strings")
    return {**data, "_path": str(path), "_sha256": sha256_file(path)}


def _check_category(path: Path, name: str, cat) -> None:
    where = f"{path}: category {name!r}"
    if not isinstance(cat, dict) or not isinstance(cat.get("groups"), dict) or not isinstance(cat.get("templates"), list):
        raise ConfigError(f"{where} needs 'groups' (a mapping) and 'templates' (a list)")
    for group, spec in cat["groups"].items():
        terms = spec.get("terms") if isinstance(spec, dict) else None
        if not isinstance(terms, list) or not terms or not all(isinstance(t, dict) for t in terms):
            raise ConfigError(f"{where}: group {group!r} needs a non-empty list of terms (mappings)")
    for i, t in enumerate(cat["templates"]):
        if not isinstance(t, dict) or not isinstance(t.get("text"), str) or t.get("stereotype") not in cat["groups"]:
            raise ConfigError(f"{where}: template {i} needs 'text' and a 'stereotype' naming one of its groups")
        for other in _contrasts(cat, t):
            if other not in cat["groups"] or other == t["stereotype"]:
                raise ConfigError(f"{where}: template {i} contrasts with {other!r}, not another group of it")
            n_s, n_o = (len(cat["groups"][g]["terms"]) for g in (t["stereotype"], other))
            if n_s != n_o:
                raise ConfigError(f"{where}: groups {t['stereotype']!r} and {other!r} are contrasted but "
                                  f"have {n_s} and {n_o} terms", "contrasted groups need aligned term lists")


def _contrasts(cat: dict, template: dict) -> list[str]:
    c = template.get("contrast")
    if c is None:
        return [g for g in cat["groups"] if g != template["stereotype"]]
    return [c] if isinstance(c, str) else list(c)


def fill(text: str, forms: dict[str, str]) -> str:
    """``fill("{Pl} are here.", {"pl": "women"})`` -> ``"Women are here."``: a slot
    written with a capital first letter capitalizes the value's first letter."""
    def sub(m: re.Match) -> str:
        slot = m.group(1)
        value = forms.get(slot.lower())
        if value is None:
            raise ConfigError(f"template {text!r} uses slot {{{slot}}}, which its terms do not define",
                              f"define {slot.lower()!r} for every term (or in the group's forms)")
        return value[:1].upper() + value[1:] if slot[:1].isupper() else value
    return SLOT.sub(sub, text)


def _forms(group: dict, term: int) -> dict[str, str]:
    return {**{k: str(v) for k, v in (group.get("forms") or {}).items()},
            **{k: str(v) for k, v in group["terms"][term].items()}}


def expand(templates: dict, categories: list[str] | None = None) -> list[Pair]:
    """Every minimal pair of the chosen categories (default: all), in file order."""
    cats = templates["categories"]
    unknown = [c for c in categories or [] if c not in cats]
    if unknown:
        raise ConfigError(f"unknown bias categories: {', '.join(unknown)}", f"use {', '.join(cats)}")
    pairs = []
    for name in categories or list(cats):
        cat = cats[name]
        for i, t in enumerate(cat["templates"]):
            s = t["stereotype"]
            for other in _contrasts(cat, t):
                for k in range(len(cat["groups"][s]["terms"])):
                    pairs.append(Pair(
                        id=f"{name}/{i:02d}/{s}-{other}/{k}", category=name, template=f"{name}/{i:02d}",
                        stereo_group=s, anti_group=other, term=k,
                        stereo=fill(t["text"], _forms(cat["groups"][s], k)),
                        anti=fill(t["text"], _forms(cat["groups"][other], k))))
    return pairs


def neutral_pairs(templates: dict, pairs: list[Pair]) -> list[NeutralPair]:
    """For each distinct (category, stereotyped group, contrast group, term) of ``pairs``,
    every neutral sentence filled with the two terms."""
    neutral = templates.get("neutral") or []
    out, seen = [], set()
    for p in pairs:
        key = (p.category, p.stereo_group, p.anti_group, p.term)
        if key in seen:
            continue
        seen.add(key)
        groups = templates["categories"][p.category]["groups"]
        for text in templates["categories"][p.category].get("neutral") or neutral:
            out.append(NeutralPair(key, fill(text, _forms(groups[p.stereo_group], p.term)),
                                   fill(text, _forms(groups[p.anti_group], p.term))))
    return out


def counts(templates: dict | None = None) -> dict[str, dict[str, int]]:
    """Per category: templates, groups and pairs (plus a ``total`` row).

    >>> counts()["total"]["pairs"]
    576
    """
    templates = templates or load_templates()
    out = {}
    for name, cat in templates["categories"].items():
        out[name] = {"templates": len(cat["templates"]), "groups": len(cat["groups"]),
                     "pairs": len(expand(templates, [name]))}
    out["total"] = {k: sum(v[k] for v in out.values()) for k in ("templates", "groups", "pairs")}
    return out
