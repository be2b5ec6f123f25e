"""Configuration of the evaluate stage."""

from __future__ import annotations

from pydantic import Field, field_validator

from odyssey.config import StageConfig


class EvalConfig(StageConfig):
    """How to compute per-token NLLs, perplexity and bits per byte."""

    context_length: int | None = Field(
        None, ge=1,
        description="Input tokens per window (L); default: the model's maximum positions.")
    stride: int | None = Field(
        None, ge=1,
        description="Tokens the window advances by (S, 1 <= S <= L); each target after the "
                    "first window gets at least L - S tokens of context. Default: L // 2.")
    batch_size: int = Field(
        8, ge=1,
        description="Full-length windows per forward pass; shorter windows are packed more "
                    "per pass within the same token budget (batch_size x context length).")
    max_documents: int | None = Field(
        None, ge=1, description="Evaluate only the first this many documents.")
    max_tokens: int | None = Field(
        None, ge=1,
        description="Stop adding documents once this many target tokens are reached "
                    "(quick in-training evaluations).")
    dtype: str = Field(
        "float32",
        description="Compute dtype: float32, bfloat16 or float16. evaluate() loads the model "
                    "in it; a float32 model given to evaluate_documents runs under autocast. "
                    "NLLs are always computed in float32.")
    device: str = Field(
        "cpu", description="Device evaluate() loads the model on (evaluate_documents uses the "
                           "model's own device).")
    progress: bool = Field(True, description="Show a progress bar on stderr.")

    @field_validator("dtype")
    @classmethod
    def _known_dtype(cls, v: str) -> str:
        from odyssey.models.load import known_dtype

        return known_dtype(v)
