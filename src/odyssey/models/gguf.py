"""GGUF files (the llama.cpp format) as ordinary Hugging Face models.

transformers reads a ``.gguf`` file through the ``gguf`` package and dequantizes its
tensors to float; the model it returns remembers that it came from GGUF and refuses
``save_pretrained`` ("quantized with gguf and is not serializable"). odyssey needs to
checkpoint, adapt and save it like any model, so :func:`load_gguf_model` copies the
dequantized weights into a plain model built from the same config (the quantization
settings removed). The copy records where it came from in its config
(``dequantized_from``: file, quantization type, sha256), which is saved with every
model adapted from it: a dequantized model is not the original, and results must say so.

>>> model = load_gguf_model("SmolLM2-135M-Instruct.Q4_1.gguf")
>>> model.config.dequantized_from["quantization"]
'Q4_1'
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import io
import os
import tempfile
from collections import Counter
from pathlib import Path

from odyssey.errors import ModelError

SOURCE_KEY = "dequantized_from"  # the model config attribute that records the GGUF file
INSTALL_GGUF = "pip install gguf (or pip install 'odyssey[gguf]')"


def require_gguf() -> None:
    if importlib.util.find_spec("gguf") is None:
        raise ModelError("reading a .gguf file needs the gguf package", INSTALL_GGUF)


def _reader(path: Path):
    require_gguf()
    from gguf import GGUFReader

    try:
        return GGUFReader(str(path))  # memory-mapped: reading metadata loads no tensor data
    except Exception as e:  # gguf raises ValueError/struct.error/... for a damaged file
        raise ModelError(f"{path}: not a readable GGUF file ({str(e).splitlines()[0] if str(e) else type(e).__name__})",
                         "check that the download finished; a .gguf file starts with the bytes GGUF") from e


def _field(reader, key: str):
    f = reader.fields.get(key)
    if f is None:
        return None
    try:
        return f.contents()
    except Exception:  # an odd field type: treat as absent
        return None


def quantization_type(reader) -> str:
    """The file's quantization, as llama.cpp names it (``Q4_1``, ``Q8_0``, ``F16``...).

    From ``general.file_type`` (``MOSTLY_Q4_1`` -> ``Q4_1``); files without it get the
    most frequent type among the tensors that are not float32 (norms stay float32)."""
    from gguf import GGMLQuantizationType, LlamaFileType

    file_type = _field(reader, "general.file_type")
    if isinstance(file_type, int):
        try:
            return LlamaFileType(file_type).name.removeprefix("MOSTLY_").removeprefix("ALL_")
        except ValueError:
            pass
    counts = Counter(GGMLQuantizationType(t.tensor_type).name for t in reader.tensors)
    quantized = [(n, c) for n, c in counts.most_common() if n != "F32"]
    return quantized[0][0] if quantized else "F32"


def gguf_info(path: str | os.PathLike, *, sha256: bool = True) -> dict:
    """What a GGUF file is, from its metadata: architecture, quantization, tensor types.

    >>> gguf_info("model.Q4_1.gguf")["quantization"]
    'Q4_1'
    """
    from gguf import GGMLQuantizationType

    from odyssey.io import sha256_file

    path = Path(path)
    reader = _reader(path)
    info = {"format": "gguf", "file": path.name, "architecture": _field(reader, "general.architecture"),
            "quantization": quantization_type(reader),
            "tensor_types": dict(Counter(GGMLQuantizationType(t.tensor_type).name for t in reader.tensors)),
            "bytes": path.stat().st_size}
    if sha256:
        info["sha256"] = sha256_file(path)
    return info


@contextlib.contextmanager
def _alone(path: Path):
    """``(folder, file)`` arguments that make transformers read ``path`` and nothing else.

    transformers reads a GGUF file as ``gguf_file`` inside a folder, and also reads the
    folder's ``tokenizer_config.json`` and ``config.json`` if there are any: a GGUF saved
    beside another model's files would get that model's special tokens. An empty folder
    and the file's absolute path (which the folder join leaves as it is) avoid that."""
    with tempfile.TemporaryDirectory(prefix="odyssey-gguf-") as empty:
        yield empty, str(path.resolve())


def load_gguf_tokenizer(path: str | os.PathLike):
    """The tokenizer a GGUF file carries, as a fast Hugging Face tokenizer."""
    from transformers import AutoTokenizer

    path = Path(path)
    require_gguf()
    try:
        with _alone(path) as (folder, file):
            return AutoTokenizer.from_pretrained(folder, gguf_file=file)
    except Exception as e:
        raise ModelError(f"cannot read the tokenizer of {path}: {_first_line(e)}",
                         "the file may lack tokenizer metadata; pass a tokenizer with --tokenizer") from e


def load_gguf_model(path: str | os.PathLike, *, dtype=None):
    """A plain (saveable, trainable) causal LM with the dequantized weights of ``path``.

    ``dtype``: a torch dtype for the weights (default float32, what transformers
    dequantizes to)."""
    import torch
    from transformers import AutoModelForCausalLM

    path = Path(path)
    info = gguf_info(path)
    dtype = dtype if isinstance(dtype, torch.dtype) else torch.float32
    try:
        # transformers draws a bare tqdm bar per file ("Converting and de-quantizing..."),
        # which no verbosity setting turns off; odyssey reports its own progress
        with _alone(path) as (folder, file), contextlib.redirect_stderr(io.StringIO()):
            loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=file, dtype=dtype)
    except Exception as e:
        raise ModelError(f"cannot load {path}: {_first_line(e)}",
                         "transformers loads GGUF files of the architectures it knows (llama, mistral, "
                         "qwen2, gemma...)") from e
    plain = plain_copy(loaded)
    setattr(plain.config, SOURCE_KEY, info)
    plain.name_or_path = str(path.resolve())  # what peft records as an adapter's base model
    return plain.eval()


def plain_copy(model):
    """``model`` itself if it saves normally; a model transformers loaded from GGUF (which
    refuses ``save_pretrained``) copied into a plain model of the same config."""
    from transformers import AutoModelForCausalLM

    quant = getattr(model.config, "quantization_config", None)
    method = quant.get("quant_method") if isinstance(quant, dict) else getattr(quant, "quant_method", None)
    if str(getattr(method, "value", method)) != "gguf":
        return model
    config = copy.deepcopy(model.config)
    del config.quantization_config
    # The weights move into a model that knows nothing of GGUF, so it saves normally.
    plain = AutoModelForCausalLM.from_config(config, dtype=model.dtype)
    plain.load_state_dict(model.state_dict(), strict=True)
    plain.generation_config = model.generation_config
    if not isinstance(getattr(config, SOURCE_KEY, None), dict):  # loaded by the caller: the file name is known
        file = quant.get("gguf_file") if isinstance(quant, dict) else getattr(quant, "gguf_file", None)
        setattr(plain.config, SOURCE_KEY, {"format": "gguf", "file": file, "quantization": None})
    return plain.to(model.device)


def model_source(model) -> dict | None:
    """The GGUF file a model was dequantized from (also for models adapted from one), or None."""
    src = getattr(getattr(model, "config", None), SOURCE_KEY, None)
    return dict(src) if isinstance(src, dict) else None


def _first_line(e: Exception) -> str:
    return str(e).splitlines()[0] if str(e) else type(e).__name__
