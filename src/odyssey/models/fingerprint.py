"""What identifies a model's weights, so that a stored result is reused only for the
same model."""

from __future__ import annotations

import os
from pathlib import Path

from odyssey.io import sha256_file


def model_fingerprint(model: str | os.PathLike | None) -> str | None:
    """sha256 of a local model's ``model.safetensors`` (an odyssey run directory is read
    through its ``model/``); ``None`` for a hub id or a model without that file.

    >>> model_fingerprint("src/odyssey/assets/default-base")[:12]
    """
    if model is None:
        return None
    path = Path(model)
    if path.is_dir() and not (path / "config.json").exists() and (path / "model" / "config.json").exists():
        path = path / "model"
    weights = path / "model.safetensors"
    return sha256_file(weights) if weights.is_file() else None
