"""Write a tiny Hugging Face Llama and its byte-level BPE as a GGUF file, the way
llama.cpp's ``convert_hf_to_gguf.py`` does (tensor names, the q/k row permutation,
the ``llama.*`` and ``tokenizer.ggml.*`` metadata), so that the tests exercise
transformers' real GGUF reader on a model of a few thousand parameters."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def _permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's permutation of q/k rows (transformers' GGUF reader undoes it)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _tensor_names(n_layers: int) -> dict[str, str]:
    names = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
             "lm_head.weight": "output.weight"}
    per_layer = {"input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
                 "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
                 "post_attention_layernorm": "ffn_norm", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
                 "mlp.down_proj": "ffn_down"}
    for i in range(n_layers):
        for hf, gg in per_layer.items():
            names[f"model.layers.{i}.{hf}.weight"] = f"blk.{i}.{gg}.weight"
    return names


def write_tiny_gguf(model_dir: Path, out: Path, qtype: str = "F32") -> Path:
    """``model_dir`` (a saved tiny Llama with its tokenizer) as ``out`` (a .gguf file);
    ``qtype`` quantizes the 2-D weights (``F32``, ``Q8_0``, ``Q4_1``)."""
    import gguf
    from safetensors.numpy import load_file

    cfg = json.loads((model_dir / "config.json").read_text())
    tok = json.loads((model_dir / "tokenizer.json").read_text())
    weights = load_file(str(model_dir / "model.safetensors"))
    quant = gguf.GGMLQuantizationType[qtype]
    w = gguf.GGUFWriter(str(out), "llama")
    w.add_name("tiny-llama")
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(cfg["num_attention_heads"])
    w.add_head_count_kv(cfg["num_key_value_heads"])
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_rope_freq_base((cfg.get("rope_parameters") or {}).get("rope_theta", cfg.get("rope_theta", 10000.0)))
    w.add_rope_dimension_count(cfg["hidden_size"] // cfg["num_attention_heads"])
    w.add_vocab_size(cfg["vocab_size"])
    w.add_file_type({"F32": gguf.LlamaFileType.ALL_F32, "Q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
                     "Q4_1": gguf.LlamaFileType.MOSTLY_Q4_1}[qtype])
    vocab = tok["model"]["vocab"]
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    special = {a["content"] for a in tok.get("added_tokens", []) if a.get("special")}
    w.add_tokenizer_model("gpt2")
    w.add_token_list(tokens)
    w.add_token_types([gguf.TokenType.CONTROL if t in special else gguf.TokenType.NORMAL for t in tokens])
    w.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]])
    eos = vocab["<|endoftext|>"]
    w.add_bos_token_id(eos)
    w.add_eos_token_id(eos)
    w.add_pad_token_id(eos)
    tied = "lm_head.weight" not in weights or cfg.get("tie_word_embeddings", False)
    for hf, name in _tensor_names(cfg["num_hidden_layers"]).items():
        if hf not in weights or (tied and hf == "lm_head.weight"):
            continue
        t = weights[hf].astype(np.float32)
        if hf.endswith("q_proj.weight"):
            t = _permute(t, cfg["num_attention_heads"])
        elif hf.endswith("k_proj.weight"):
            t = _permute(t, cfg["num_key_value_heads"])
        if t.ndim == 2 and quant != gguf.GGMLQuantizationType.F32:
            w.add_tensor(name, gguf.quants.quantize(t, quant), raw_dtype=quant)
        else:
            w.add_tensor(name, t)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return out
