"""Evaluation of generated images on the offline datasets.

- ``digit_classifier``: a small CNN trained here on the real digits; its features and probabilities.
- ``frechet``: the Frechet distance between two feature sets (FID-style).
- ``digits_eval``: Frechet distance, confidence, class coverage and conditional accuracy of digit samples.
- ``shapes_eval``: prompt adherence (shape / colour / background) of samples of the shapes dataset.
- ``sampling``: sampling a model for evaluation (per-image seeds, timing, network-evaluation counts).
- ``standard``: ``zoo eval``, FID / KID (torchmetrics, the ``eval`` extra) and ``precision_recall`` (Kynkäänniemi
  et al. 2019) on the ``features`` extractors (digits, shapes, inception); ``reports``: ``zoo report trilemma``.
  ``frechet`` stays because ``digits_eval`` runs without the optional torchmetrics; the two agree to 1e-3 (tested).

``python -m zoo_core.metrics.digits_eval MODEL`` and ``python -m zoo_core.metrics.shapes_eval MODEL`` measure a
registered model and print a table and JSON.
"""
