"""What a ``--model`` value names, decided once, before anything slow is loaded.

Every loader (:func:`odyssey.models.load_model`, :func:`odyssey.models.load_tokenizer`)
goes through :func:`resolve_source`, which accepts:

- a short name from :mod:`odyssey.models.catalog` (``smollm2-135m``);
- a local Hugging Face model directory, or an odyssey run directory (its ``model/``);
- a ``.gguf`` file, or a directory holding exactly one and no ``config.json``;
- a peft adapter directory (``adapter_config.json``): its base model is resolved the
  same way, its tokenizer is the adapter's own if it has one, else the base's;
- a hub id (``org/name``), looked up on the hub only when the hub answers.

Anything else fails at once with one line that says what the path *is* (a corpus, a
study, a text file...) or that the hub cannot be reached, instead of a minute of
retries ending in a traceback.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from odyssey.errors import ModelError
from odyssey.models import catalog

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model")
HUB_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class ModelSource:
    """A resolved ``--model``: ``kind`` is ``hf`` (local HF directory), ``gguf``,
    ``adapter`` (with its resolved ``base``), ``hub`` or ``tokenizer`` (a directory with a
    tokenizer and no model); ``path`` the directory, file or hub id to load; ``offline``
    asks the hub loader for its local cache only."""

    spec: str
    kind: str
    path: str
    base: ModelSource | None = None
    catalog_name: str | None = None
    offline: bool = False

    def has_own_tokenizer(self) -> bool:
        return self.kind != "adapter" or any((Path(self.path) / f).is_file() for f in TOKENIZER_FILES)


def resolve_run_dir(path: Path) -> Path:
    """An odyssey run directory (``odyssey adapt`` output) -> its ``model/``."""
    if path.is_dir() and not (path / "config.json").exists() and (path / "model" / "config.json").exists():
        return path / "model"
    return path


def resolve_source(spec: str | os.PathLike, *, revision: str | None = None, check_hub: bool = True) -> ModelSource:
    """Decide what ``spec`` names; raise :class:`ModelError` (one line, a hint) if nothing.

    >>> resolve_source("smollm2-135m").kind
    'gguf'
    """
    text = str(spec)
    entry = catalog.lookup(text) if not Path(text).exists() else None
    if entry is not None:
        return ModelSource(text, "gguf", str(entry.path()), catalog_name=entry.name)
    path = Path(text).expanduser()
    if path.exists():
        return _local(text, resolve_run_dir(path), revision)
    if _looks_like_path(text):
        raise ModelError(f"model not found: {text}", _missing_path_hint(path))
    return _hub(text, revision, check_hub)


def _local(spec: str, path: Path, revision: str | None) -> ModelSource:
    if path.is_file():
        if path.suffix.lower() == ".gguf":
            return ModelSource(spec, "gguf", str(path))
        raise ModelError(f"{spec} is {describe_file(path)}, not a model",
                         "give a model directory (with config.json), a .gguf file or an adapter directory")
    if (path / "adapter_config.json").is_file():
        return ModelSource(spec, "adapter", str(path), base=_adapter_base(spec, path, revision))
    if (path / "config.json").is_file():
        return ModelSource(spec, "hf", str(path))
    ggufs = sorted(path.glob("*.gguf"))
    if len(ggufs) == 1:
        return ModelSource(spec, "gguf", str(ggufs[0]))
    if len(ggufs) > 1:
        raise ModelError(f"{spec} holds {len(ggufs)} .gguf files",
                         f"give one of them, e.g. {ggufs[0]}")
    if any((path / f).is_file() for f in TOKENIZER_FILES):  # a tokenizer saved on its own
        return ModelSource(spec, "tokenizer", str(path))
    raise ModelError(f"{spec} is {describe_dir(path)}, not a model",
                     "give a model directory (with config.json), a .gguf file, an adapter directory, "
                     "or a name from `odyssey models`")


def _adapter_base(spec: str, path: Path, revision: str | None) -> ModelSource:
    """The base model an adapter directory names (``base_model_name_or_path``), resolved
    as given, else relative to the adapter (runs moved together with their base)."""
    try:
        cfg = json.loads((path / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelError(f"{path / 'adapter_config.json'}: unreadable ({e})") from e
    base = cfg.get("base_model_name_or_path") if isinstance(cfg, dict) else None
    if not base:
        raise ModelError(f"the adapter {spec} does not name its base model",
                         "set base_model_name_or_path in its adapter_config.json")
    near = path / base
    if not Path(base).expanduser().exists() and not catalog.lookup(base) and near.exists():
        base = str(near)
    try:
        return resolve_source(base, revision=revision)
    except ModelError as e:
        raise ModelError(f"the base model of the adapter {spec} cannot be loaded: {e.message}", e.hint) from e


def _looks_like_path(text: str) -> bool:
    """A name that cannot be a hub id (``org/name``), or whose first folder exists here."""
    if text.startswith((".", "/", "~")) or "\\" in text or text.lower().endswith((".gguf", ".safetensors", ".bin")):
        return True
    if not HUB_ID.match(text):
        return True
    head = text.split("/", 1)[0]
    return "/" in text and Path(head).is_dir()


def _missing_path_hint(path: Path) -> str:
    parent = path.parent if str(path.parent) not in ("", ".") else Path(".")
    if parent.is_dir():
        near = difflib.get_close_matches(path.name, [p.name for p in parent.iterdir()], n=1, cutoff=0.6)
        if near:
            return f"did you mean {parent / near[0] if str(parent) != '.' else near[0]}?"
        return f"{parent}/ exists but holds no {path.name}; check the spelling"
    return "check the path"


def _hub(name: str, revision: str | None, check_hub: bool) -> ModelSource:
    near = catalog.near_names(name)
    if near and "/" not in name:
        raise ModelError(f"unknown model {name!r}", f"did you mean {near[0]}? (`odyssey models` lists them)")
    if not check_hub:
        return ModelSource(name, "hub", name)
    if _in_hub_cache(name, revision):
        return ModelSource(name, "hub", name, offline=not hub_reachable())
    from huggingface_hub import constants

    hint = ("give a local path, a .gguf file, or a name from `odyssey models` (e.g. smollm2-135m)")
    if constants.HF_HUB_OFFLINE:
        raise ModelError(f"{name!r} is not a local path and not in the hub cache, and HF_HUB_OFFLINE is set",
                         hint)
    if not hub_reachable():
        raise ModelError(f"{name!r} is not a local path, and the model hub ({constants.ENDPOINT}) cannot "
                         "be reached to fetch it", hint)
    return ModelSource(name, "hub", name)


def _in_hub_cache(name: str, revision: str | None) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        hit = try_to_load_from_cache(name, "config.json", revision=revision)
    except Exception:  # an id huggingface_hub rejects: not cached
        return False
    return isinstance(hit, str)


def hub_reachable(timeout: float = HUB_TIMEOUT_S) -> bool:
    """Whether the hub endpoint answers an HTTP request within ``timeout`` seconds
    (through the proxies huggingface_hub itself would use)."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    try:
        from huggingface_hub.utils import get_session

        get_session().head(constants.ENDPOINT, timeout=timeout)
        return True
    except Exception:  # DNS failure, refused, timed out, proxy error: all mean "not now"
        return False


# -- what a path is, when it is not a model -----------------------------------------------
def describe_dir(path: Path) -> str:
    """A few words on what a directory holds: ``a corpus directory (odyssey corpus build)``."""
    if (path / "manifest.json").is_file() and any((path / s).is_dir() for s in ("train", "valid", "test")):
        return "a corpus directory (odyssey corpus build)"
    if (path / "results.sqlite").is_file():
        return "a study directory (its adapted models are in runs/<domain>/model)"
    if (path / "world.json").is_file():
        return "a world directory (odyssey world build)"
    if (path / "eval.json").is_file():
        return "an evaluation directory (odyssey evaluate --out)"
    if (path / "config.yaml").is_file() and (path / "checkpoint").is_dir():
        return "an adapt run directory without a finished model/ (resume it with --resume)"
    files = sorted(p.name for p in path.iterdir())[:4] if os.access(path, os.R_OK) else []
    if not files:
        return "an empty directory"
    return f"a directory with no config.json (it holds {', '.join(files)}{', ...' if len(files) == 4 else ''})"


def describe_file(path: Path) -> str:
    suffix = path.suffix.lower()
    kinds = {".jsonl": "a JSONL text file", ".txt": "a text file", ".json": "a JSON file",
             ".yaml": "a YAML file", ".yml": "a YAML file", ".parquet": "a parquet file",
             ".safetensors": "a weights file (give the directory that holds it and its config.json)",
             ".bin": "a weights file (give the directory that holds it and its config.json)",
             ".py": "a Python file", ".csv": "a CSV file", ".html": "an HTML file"}
    return kinds.get(suffix, f"a {suffix or 'plain'} file")
