"""Model collapse: recursive generation and training, and detection of synthetic text.

- :mod:`odyssey.collapse.generate`: prompts cut from real text, continued by a model
  (beam search or sampling);
- :mod:`odyssey.collapse.run`: the generation loop (`odyssey collapse`);
- :mod:`odyssey.collapse.metrics`: per-sequence perplexity, histograms, tail mass,
  distinct-n, vocabulary size, repetition rate;
- :mod:`odyssey.collapse.detect`: per-document scores of being model-generated
  (perplexity, token ranks, Binoculars), AUROC and thresholds (`odyssey detect`);
- :mod:`odyssey.collapse.report`: the HTML report.
"""
