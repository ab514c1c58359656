"""The training loop every family's trainer plugs into (see ``zoo_core.trainer`` for the interface).

Modules, one concept each: ``config`` (TrainConfig and YAML loading), ``lr`` (warm-up + constant/cosine),
``ema`` (exponential moving average of weights), ``batches`` (the seeded, resumable, sharded order of samples
and the ``Batch`` a step sees), ``datasets`` (the dataset a config names, fitted to the model), ``distributed``
(torchrun process groups and collectives), ``checkpoint`` (atomic checkpoint directories), ``state`` (the
``TrainState`` a step works with and ``optimize``), ``loop`` (``fit``) and ``api`` (``train`` / ``zoo train``).
"""
