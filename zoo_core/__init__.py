"""zoo core: interfaces, plugin registry, model cards, weights, samplers and the training loop.

Importing this package is cheap: torch and plugin code load only when a model is built.
"""

__version__ = "0.1.0"
