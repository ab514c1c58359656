"""Step 1 of the tutorial: the entry point. It stays light: targets are import paths, loaded on first use."""

from __future__ import annotations

from zoo import hookimpl


@hookimpl
def zoo_register_models(register):
    register("example.gaussian", "zoo_plugin_example.model:GaussianDiffusionModel")


@hookimpl
def zoo_register_samplers(register):
    register("pc", "zoo_plugin_example.sampler:PredictorCorrectorSampler")


@hookimpl
def zoo_register_cards(register):
    register(
        {
            "name": "example-gaussian-digits",
            "family": "example",
            "plugin": "example",
            "architecture": "example.gaussian",
            "description": "The exact denoiser of a rank-32 Gaussian fitted to the handwritten digits (16x16).",
            "weights": {"source": "embedded:zoo_plugin_example/weights/gaussian-digits"},
            "default_sampler": "pc",
            "default_steps": 50,
            "resolution": 16,
            "channels": 1,
            "license": "Apache-2.0",
            "dataset": "sklearn load_digits (UCI ML hand-written digits), upsampled to 16x16",
            "training_command": "python -m zoo_plugin_example.fit --out zoo_plugin_example/weights/gaussian-digits",
        }
    )
