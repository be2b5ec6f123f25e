"""Mitigations of failed adaptation and forgetting, as composable pieces of the adapt loop.

One module per method: its settings (a ``Config``) and a subclass of
:class:`~odyssey.adapt.mitigations.base.Mitigation` implementing the hooks it needs (the
contract, listed in :mod:`~odyssey.adapt.mitigations.base`), registered in
:data:`~odyssey.adapt.mitigations.registry.MITIGATIONS`.
:class:`~odyssey.adapt.mitigations.compose.Mitigations` (built by
:func:`odyssey.adapt.loop.setup`) runs the active ones; their settings are
:class:`~odyssey.adapt.mitigations.config.MitigationConfig` (``mitigation:`` in an
AdaptConfig, ``--mitigation replay,l2sp`` on the command line), one section per method.

============  ==========================================================================
replay        general text mixed into the training stream at a share of tokens
l2sp          ``alpha * ||theta - theta_base||^2`` added to the loss
ewc           ``alpha * sum F (theta - theta_base)^2``, F the diagonal Fisher on general text
lora          peft low-rank adapters; ``OUT/adapter`` and the merged ``OUT/model``
freeze        embeddings and/or lower layers frozen
early-stop    stop when the valid loss stops improving; ``OUT/model`` is the best step
normalize     whitespace/newline normalization, quality filters, near-duplicate removal
selective     target tokens down-weighted by category and/or by the base model's loss
rephrase      a generator LM rewrites training documents (WRAP styles), mixed with or replacing them
mix-similar   the general documents most similar to the domain added at a share of text
noise         blocks masked, thinned or span-infilled anew each epoch, original text as target
============  ==========================================================================

Combinations: any, except ``lora`` with ``l2sp``/``ewc`` (LoRA trains no base weight to
pull back); ``lora`` with ``freeze`` puts adapters only on the layers freeze leaves
trainable. Configs import these modules, so none imports torch, numpy or peft at module
level (they do so where they compute).
"""
