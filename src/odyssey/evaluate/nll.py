"""Per-token negative log-likelihoods of documents under a causal LM, fast.

Where the time goes, and what this module does about it (compared with a loop that
runs ``model(ids).logits`` per window and takes a full-vocabulary ``log_softmax``):

- **Padding.** The windows of *all* documents are pooled and sorted by length, so a
  batch holds windows of (nearly) the same length; a batch is ``batch_size`` full
  windows or, within the same token budget, more shorter ones. A batch with no
  padding runs with no attention mask (the causal-only fast path of SDPA).
- **Logits nobody reads.** The vocabulary projection is by far the largest matmul
  of a small model. The transformer body runs once per batch; the output head runs
  only on the scored, non-padding positions (with stride ``L // 2`` about half of
  them), in chunks small enough that the ``(rows, vocab)`` logits stay in cache-
  and allocator-friendly buffers instead of one ``(B, T, vocab)`` tensor.
- **A slow GEMM.** Intel's MKL, which torch uses on x86, runs well below peak on AMD
  CPUs, where numpy's OpenBLAS is ~1.5x faster on the head's float32 matmul; there the
  head runs on OpenBLAS (exact float32 too). The route is a fixed rule of the machine
  (CPU vendor, BLAS libraries), never a timing: a route chosen by timing changed with
  the load of the machine, and the two GEMMs round differently, so a repeated
  evaluation differed in the last bits (nll_sum by ~1e-9 relative).
- **Per-request Python.** Index arrays are built once per batch with numpy; results
  go back to the host once per batch.
- ``torch.inference_mode``, ``use_cache=False`` (no key/value cache is built).

The head is applied separately only when that reproduces the model's own logits
(checked once, on a short probe, against ``model(ids).logits``); a model that
post-processes its logits (soft-capping, scaling) falls back to the full forward.
NLLs are always computed in float32 from the logits.

Reproducibility: on one machine, with the same model, data, settings, thread count and
libraries, per-token NLLs are bit-identical from run to run, and so are their sums
(float64, in document order). Another thread count can change OpenBLAS's summation
order, and another machine or library another kernel: per-token NLLs then agree to
about 1e-5 nats (float32 rounding), sums to about 1e-8 relative.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from odyssey.evaluate.windows import Window, rolling_windows
from odyssey.progress import progress_bar

# Logits per head chunk. On CPU 8M float32 (32 MiB) is about the best trade between
# matmul efficiency (more rows) and memory traffic, and stays below glibc's largest
# mmap threshold, so chunk buffers are reused rather than page-faulted in each time.
_CHUNK_ELEMS = {"cpu": 1 << 23, "cuda": 1 << 27}


def model_device(model) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def _autocast(model, device: torch.device, dtype: str):
    """Autocast a float32 model to a lower ``dtype``; a model already in a low
    precision (or ``dtype == "float32"``) runs as it is."""
    from odyssey.models.load import DTYPES

    target = DTYPES[dtype]
    param = next(model.parameters(), None)
    if target == torch.float32 or param is None or param.dtype != torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=target)


class _Scorer:
    """Turns a padded batch into NLLs at the requested positions."""

    def __init__(self, model, device: torch.device, split_head: bool):
        self.model = model
        self.device = device
        self.chunk_elems = _CHUNK_ELEMS.get(device.type, 1 << 26)
        self.decoder = self.head = None
        if split_head:
            self.decoder, self.head = _split_head(model)
        params = inspect.signature(model.forward).parameters
        self.keep_arg = "logits_to_keep" in params
        self.vocab = None  # logits per row, known after check_split
        self.cpu_head = None  # the head as run on CPU (see _CpuHead), chosen on first use
        self.total_rows = 0  # scored positions in the whole evaluation

    def check_split(self, probe: torch.Tensor) -> None:
        """Keep the body + head split only if it reproduces ``model(probe).logits``."""
        if self.head is None:
            return
        want = self.model(input_ids=probe, use_cache=False).logits
        exact = want.dtype == torch.float32 and probe.is_cpu  # else reductions may differ more
        want = want.float()
        try:
            got = self.head(self.decoder(input_ids=probe, use_cache=False)[0]).float()
        except Exception:  # a body that cannot run on its own: use the full forward
            got = None
        tol = 1e-3 if exact else 5e-2
        if got is None or got.shape != want.shape or not torch.allclose(got, want, rtol=tol, atol=tol):
            self.decoder = self.head = None
        self.vocab = want.shape[-1]

    def __call__(self, ids: torch.Tensor, mask: torch.Tensor | None, flat_pos: torch.Tensor,
                 targets: torch.Tensor, first_pos: int) -> torch.Tensor:
        """NLLs (float32, shape ``(P,)``) of ``targets`` at ``flat_pos`` (row * T + col) of
        ``ids`` (B, T). ``first_pos`` is the smallest scored column."""
        B, T = ids.shape
        if self.head is not None:
            hidden = self.decoder(input_ids=ids, attention_mask=mask, use_cache=False)[0]  # (B, T, H)
            rows = hidden.reshape(B * T, -1).index_select(0, flat_pos)  # (P, H)
            return self._chunked_nll(rows, targets, self.head)
        kwargs = {"logits_to_keep": T - first_pos} if self.keep_arg else {}
        logits = self.model(input_ids=ids, attention_mask=mask, use_cache=False, **kwargs).logits
        kept = logits.shape[1]  # (B, kept, V): the last `kept` positions
        cols = flat_pos % T - (T - kept)
        rows = logits.reshape(B * kept, -1).index_select(0, (flat_pos // T) * kept + cols)
        return self._chunked_nll(rows, targets, None)

    def _chunked_nll(self, rows: torch.Tensor, targets: torch.Tensor, head) -> torch.Tensor:
        P = rows.shape[0]
        vocab = rows.shape[-1] if head is None else self.vocab
        step = max(1, self.chunk_elems // max(1, vocab))
        if head is not None:
            if self.cpu_head is None:
                self.cpu_head = _CpuHead.wrap(head, self.device, self.total_rows)
            head = self.cpu_head
        out = torch.empty(P, dtype=torch.float32, device=rows.device)
        for s in range(0, P, step):
            logits = rows[s:s + step] if head is None else head(rows[s:s + step])  # (p, V)
            out[s:s + step] = F.cross_entropy(logits.float(), targets[s:s + step], reduction="none")
        return out


class _CpuHead:
    """A float32 ``nn.Linear`` head on CPU run by numpy's GEMM (OpenBLAS), where that is
    the faster one (see :func:`numpy_gemm_is_faster`). Exact float32 like torch's."""

    def __init__(self, head: torch.nn.Linear):
        self.head = head
        self.weight_t = head.weight.detach().numpy().T  # (H, V), a view
        self.bias = None if head.bias is None else head.bias.detach().numpy()
        self.use_numpy = True

    @classmethod
    def wrap(cls, head, device: torch.device, total_rows: int):
        """``head`` itself unless the numpy route applies and is the faster one here."""
        fits = (device.type == "cpu" and type(head) is torch.nn.Linear and head.weight.dtype == torch.float32
                and not torch.is_autocast_enabled("cpu"))
        return cls(head) if fits and _has_threadpoolctl() and numpy_gemm_is_faster() else head

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self._numpy(x) if self.use_numpy else self.head(x)

    def _numpy(self, x: torch.Tensor) -> torch.Tensor:
        out = x.detach().numpy() @ self.weight_t  # (p, V)
        if self.bias is not None:
            out += self.bias
        return torch.from_numpy(out)


@functools.cache
def numpy_gemm_is_faster() -> bool:
    """Whether the head's GEMM runs on numpy here: a fixed property of the machine, so
    that every evaluation on it takes the same route (and gives the same bits)."""
    from threadpoolctl import threadpool_info

    return gemm_rule(_cpu_vendor(), {i.get("internal_api") for i in threadpool_info() if i.get("user_api") == "blas"},
                     torch.backends.mkl.is_available())


def gemm_rule(cpu_vendor: str | None, numpy_blas: set[str], torch_has_mkl: bool) -> bool:
    """numpy's OpenBLAS on AMD CPUs when torch would use MKL (slow there, ~1.5x on the
    head); torch's own GEMM everywhere else.

    >>> gemm_rule("AuthenticAMD", {"openblas"}, True), gemm_rule("GenuineIntel", {"openblas"}, True)
    (True, False)
    """
    return cpu_vendor == "AuthenticAMD" and "openblas" in numpy_blas and torch_has_mkl


def _cpu_vendor() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("vendor_id"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _has_threadpoolctl() -> bool:
    """Without threadpoolctl numpy's GEMM is not used: it would take every core, not
    the ``torch.get_num_threads()`` the rest of the evaluation runs on."""
    import importlib.util

    return importlib.util.find_spec("threadpoolctl") is not None


def _blas_threads(n: int):
    """A context that limits numpy's BLAS to ``n`` threads, and restores it on exit."""
    if not _has_threadpoolctl():
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=n, user_api="blas")


# Config fields of models that transform ``head(hidden)`` before returning logits.
_LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_softcapping", "logit_scale", "logits_scaling",
                     "output_multiplier_scale")


def _split_head(model):
    """``(body, head)`` of a causal LM whose logits are ``head(body(ids)[0])``, or Nones."""
    cfg = getattr(model, "config", None)
    if any(getattr(cfg, name, None) not in (None, 1, 1.0) for name in _LOGIT_TRANSFORMS):
        return None, None
    get_decoder = getattr(model, "get_decoder", None)
    get_head = getattr(model, "get_output_embeddings", None)
    if get_decoder is None or get_head is None:
        return None, None
    try:
        decoder, head = get_decoder(), get_head()
    except Exception:  # some wrappers raise NotImplementedError
        return None, None
    if not isinstance(decoder, torch.nn.Module) or not isinstance(head, torch.nn.Module):
        return None, None
    return decoder, head


def token_nlls(
    model,
    token_ids: Sequence[np.ndarray],
    *,
    prefix_id: int,
    context_length: int,
    stride: int,
    batch_size: int = 8,
    dtype: str = "float32",
    progress: bool = False,
    split_head: bool = True,
) -> list[np.ndarray]:
    """Per-token NLLs (nats, float32) of each document, aligned with its ids.

    Each document is scored as ``[prefix_id] + ids`` with the windows of
    :func:`odyssey.evaluate.windows.rolling_windows`; a forward pass holds at most
    ``batch_size * context_length`` (padded) tokens. ``dtype`` below float32 runs a
    float32 model under autocast. ``split_head=False`` always takes the logits from
    the full forward pass. The model is put in eval mode and its previous mode
    restored afterwards.

    >>> nll = token_nlls(model, [np.array([464, 3290])], prefix_id=50256,
    ...                  context_length=1024, stride=512)
    """
    seqs = [np.concatenate(([prefix_id], np.asarray(ids, dtype=np.int64))) for ids in token_ids]
    out = [np.full(len(ids), np.nan, dtype=np.float32) for ids in token_ids]
    jobs: list[tuple[int, Window]] = [
        (d, w) for d, ids in enumerate(token_ids) for w in rolling_windows(len(ids), context_length, stride)
    ]
    if not jobs:
        return out
    # Longest first: equal lengths batch together (little padding), and an
    # out-of-memory error shows in the first batch rather than the last.
    # A batch holds `batch_size` full windows or more shorter ones, same token budget.
    jobs.sort(key=lambda j: (-j[1].n_inputs, -j[1].n_scored))
    device = model_device(model)
    scorer = _Scorer(model, device, split_head)
    scorer.total_rows = sum(w.n_scored for _, w in jobs)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), _autocast(model, device, dtype), \
                _blas_threads(torch.get_num_threads()) if device.type == "cpu" else contextlib.nullcontext(), \
                progress_bar(scorer.total_rows, "evaluate", unit="tokens", enabled=progress) as advance:
            d0, w0 = jobs[-1]
            scorer.check_split(torch.as_tensor(seqs[d0][w0.input_start:w0.input_end][:16],
                                               device=device)[None])
            for batch in _batches(jobs, batch_size * context_length):
                ids, mask, flat_pos, targets, first_pos = _collate(batch, seqs, prefix_id)
                nll = scorer(ids.to(device), None if mask is None else mask.to(device),
                             flat_pos.to(device), targets.to(device), first_pos)
                nll = nll.cpu().numpy()
                k = 0
                for d, w in batch:
                    out[d][w.score_start:w.score_end] = nll[k:k + w.n_scored]
                    k += w.n_scored
                advance(k)
    finally:
        model.train(was_training)
    return out


def _batches(jobs: list[tuple[int, Window]], budget: int) -> list[list[tuple[int, Window]]]:
    """Split windows sorted longest first into batches of at most ``budget`` padded
    tokens (rows x longest window), at least one window each."""
    batches, i = [], 0
    while i < len(jobs):
        rows = max(1, budget // jobs[i][1].n_inputs)
        batches.append(jobs[i:i + rows])
        i += rows
    return batches


def _collate(batch: list[tuple[int, Window]], seqs: list[np.ndarray], pad_id: int):
    """Right-padded ``ids`` (B, T), ``mask`` (None when nothing is padded), the flat
    positions ``row * T + col`` of the scored targets, the targets, the first scored col."""
    T = max(w.n_inputs for _, w in batch)
    ids = np.full((len(batch), T), pad_id, dtype=np.int64)
    mask = np.zeros((len(batch), T), dtype=np.int64)
    pos, tgt = [], []
    for r, (d, w) in enumerate(batch):
        n = w.n_inputs
        ids[r, :n] = seqs[d][w.input_start:w.input_end]
        mask[r, :n] = 1
        pos.append(r * T + np.arange(n - w.n_scored, n))
        # target t is seq[t + 1]
        tgt.append(seqs[d][w.score_start + 1:w.score_end + 1])
    first_pos = min(w.n_inputs - w.n_scored for _, w in batch)
    padded = not mask.all()
    return (torch.from_numpy(ids), torch.from_numpy(mask) if padded else None,
            torch.from_numpy(np.concatenate(pos)), torch.from_numpy(np.concatenate(tgt)), first_pos)


