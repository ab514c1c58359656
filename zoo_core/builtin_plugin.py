"""The core's own samplers and conditioners, registered through the same hooks a third-party plugin uses.

Every first-party sampler lives here, in ``zoo_core/samplers`` (one algorithm per file): a sampler needs only the
Denoiser protocol and the core's schedule and prediction conversion, so none belongs to a family's plugin (the
rule is in docs/samplers.md).
"""

from __future__ import annotations

from zoo_core.hookspecs import Register, hookimpl


@hookimpl
def zoo_register_samplers(register: Register) -> None:
    register("ddpm", "zoo_core.samplers.ddpm:DDPMSampler")
    register("ddim", "zoo_core.samplers.ddim:DDIMSampler")
    register("ddgan", "zoo_core.samplers.ddgan:DDGANSampler")
    register("dpm++2m", "zoo_core.samplers.dpm_solver:DPMSolverMultistepSampler")
    register("euler", "zoo_core.samplers.euler:EulerSampler")
    register("euler-a", "zoo_core.samplers.euler:EulerAncestralSampler")
    register("heun", "zoo_core.samplers.heun:HeunSampler")
    register("pndm", "zoo_core.samplers.pndm:PNDMSampler")
    register("gan", "zoo_core.samplers.gan:GANSampler")


@hookimpl
def zoo_register_conditioners(register: Register) -> None:
    register("none", "zoo_core.conditioner:NoConditioner")
    register("class-label", "zoo_core.conditioner:ClassLabelConditioner")
