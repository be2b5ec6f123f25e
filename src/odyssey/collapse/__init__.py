"""Model collapse: recursive generation and training, and detection of synthetic text.

- :mod:`odyssey.collapse.generate`: prompts cut from real text, continued by a model
  (beam search or sampling);
- :mod:`odyssey.collapse.run`: the generation loop (`odyssey collapse`);
- :mod:`odyssey.collapse.metrics`: per-sequence perplexity, histograms, tail mass,
  distinct-n, vocabulary size, repetition rate;
- :mod:`odyssey.collapse.detect`: per-document scores of being model-generated
  (perplexity, token ranks, Fast-DetectGPT's sampling discrepancy, Binoculars);
- :mod:`odyssey.collapse.calibrate`: AUROC both ways, the statistic and direction chosen
  by cross-validation, fitted detectors and the corpus filter (`odyssey detect`,
  `odyssey detect fit`, `odyssey corpus build --drop-synthetic`);
- :mod:`odyssey.collapse.grid`: detection by decoding method and generation
  (`odyssey detect grid`);
- :mod:`odyssey.collapse.report`: the HTML report.
"""
