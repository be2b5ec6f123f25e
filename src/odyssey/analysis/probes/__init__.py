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
"""

from odyssey.analysis.probes.bias import bias_probe
from odyssey.analysis.probes.config import BiasProbeConfig, MemorizationProbeConfig
from odyssey.analysis.probes.memorization import memorization_probe
from odyssey.analysis.probes.summary import load_probes, probe_headline, save_probe, summarize_probe
from odyssey.analysis.probes.templates import counts as template_counts
from odyssey.analysis.probes.templates import expand as expand_templates
from odyssey.analysis.probes.templates import load_templates

__all__ = ["BiasProbeConfig", "MemorizationProbeConfig", "bias_probe", "expand_templates", "load_probes",
           "load_templates", "memorization_probe", "probe_headline", "save_probe", "summarize_probe",
           "template_counts"]
