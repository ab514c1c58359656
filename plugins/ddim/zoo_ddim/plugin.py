"""Entry point of the zoo_ddim plugin: registers the DDIM sampler (lightweight: no torch import).

The ``ddim-*`` cards live in the core's registry.yaml (section ``# --- ddim ---``): they are DDPM checkpoints
(architecture ``ddpm.unet`` from the ddpm plugin) whose default sampler is ``ddim``.
"""

from __future__ import annotations

from typing import Any

from zoo import hookimpl


@hookimpl
def zoo_register_samplers(register: Any) -> None:
    register("ddim", "zoo_ddim.sampler:DDIMSampler")
