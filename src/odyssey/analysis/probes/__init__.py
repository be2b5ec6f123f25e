"""Is it still safe to ship? Bias and memorization probes, before and after adaptation.

- :func:`bias_probe`: preference for the stereotypical sentence of project-authored
  minimal pairs (gender, religion, nationality, age, disability), per category, with
  bootstrap intervals and the shift from a base model.
- :func:`memorization_probe`: exact extraction of training text by greedy decoding, and
  the train/held-out loss gap as a membership signal, before and after.
- :func:`save_probe` writes a result as JSON (``bias.json``, ``memorization.json``);
  :func:`summarize_probe` says in plain sentences what moved beyond its interval.

>>> from odyssey.analysis.probes import bias_probe, save_probe
>>> save_probe(bias_probe("runs/legal", against="gpt2"), "runs/legal/probes")

Names are imported on first use, so that importing the probe configs (as the study
config and the CLI do) does not import torch or scipy.
"""

from __future__ import annotations

from odyssey.lazy import lazy_exports

_EXPORTS = {
    "BiasProbeConfig": ("odyssey.analysis.probes.config", "BiasProbeConfig"),
    "MemorizationProbeConfig": ("odyssey.analysis.probes.config", "MemorizationProbeConfig"),
    "bias_probe": ("odyssey.analysis.probes.bias", "bias_probe"),
    "memorization_probe": ("odyssey.analysis.probes.memorization", "memorization_probe"),
    "load_probes": ("odyssey.analysis.probes.summary", "load_probes"),
    "probe_headline": ("odyssey.analysis.probes.summary", "probe_headline"),
    "save_probe": ("odyssey.analysis.probes.summary", "save_probe"),
    "summarize_probe": ("odyssey.analysis.probes.summary", "summarize_probe"),
    "template_counts": ("odyssey.analysis.probes.templates", "counts"),
    "expand_templates": ("odyssey.analysis.probes.templates", "expand"),
    "load_templates": ("odyssey.analysis.probes.templates", "load_templates"),
}
__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)
