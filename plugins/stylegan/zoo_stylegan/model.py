"""StyleGAN2(-ADA) as a zoo model: the generator (``G_ema`` of an official snapshot) behind the GAN sampler.

Karras et al. 2020, "Analyzing and Improving the Image Quality of StyleGAN" (arXiv:1912.04958) and "Training
Generative Adversarial Networks with Limited Data" (arXiv:2006.06676); code: NVlabs/stylegan2-ada-pytorch.

``model.sample(n, seed=0, truncation_psi=0.7, labels=[3] * n)`` draws z (and, in ``noise_mode="random"``, the
per-layer noise) from the seed. For editing in w space the two halves are exposed: ``model.mapping(z, c)`` gives
ws [N, num_ws, w_dim] and ``model.synthesis(ws)`` the image. The state dict uses the official names, so
``G_ema.state_dict()`` loads unchanged; official ``.pkl`` snapshots load through ``convert.py`` (opt-in).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from zoo_core import weights
from zoo_core.conditioner import ClassLabelConditioner, labels_for_batch, pop_labels
from zoo_core.errors import WeightsError
from zoo_core.model import WEIGHTS_NAME, Model
from zoo_core.seeding import GeneratorLike, Seed, make_generator, randn
from zoo_stylegan.config import StyleGANConfig
from zoo_stylegan.generator import NOISE_MODES, MappingNetwork, NoiseMode, SynthesisNetwork
from zoo_stylegan.pickle_loader import OPT_IN_FLAG, PKL_FORMAT

if TYPE_CHECKING:
    from zoo_stylegan.discriminator import Discriminator

#: the discriminator the converter keeps beside a converted generator, for fine-tuning
DISCRIMINATOR_WEIGHTS = "discriminator.safetensors"


def random_labels(n: int, num_classes: int, generator: GeneratorLike) -> torch.Tensor:
    """``n`` class labels drawn from the seed (one generator, or one per image)."""
    if isinstance(generator, list):
        return torch.cat(
            [torch.randint(num_classes, (1,), generator=g, device=g.device).cpu() for g in generator]
        )
    device = generator.device if generator is not None else "cpu"
    return torch.randint(num_classes, (n,), generator=generator, device=device).cpu()


class StyleGANModel(Model):
    """The StyleGAN2 generator: ``synthesis`` (w -> image) and ``mapping`` (z, c -> w), as in the official G."""

    architecture = "stylegan2"
    config_class = StyleGANConfig
    kind = "gan"
    default_sampler = "gan"
    #: diffusers has no StyleGAN pipeline; "official" is G_ema's state dict as safetensors (stylegan2-ada-safetensors)
    export_formats = ("zoo", "official")
    config: StyleGANConfig

    def __init__(self, config: StyleGANConfig | Mapping[str, Any] | None = None) -> None:
        super().__init__(config)
        cfg = self.config
        s = cfg.synthesis
        self.synthesis = SynthesisNetwork(
            w_dim=cfg.w_dim,
            img_resolution=cfg.img_resolution,
            img_channels=cfg.img_channels,
            channel_base=s.channel_base,
            channel_max=s.channel_max,
            num_fp16_res=s.num_fp16_res,
            architecture=s.architecture,
            resample_filter=s.resample_filter,
            conv_clamp=s.conv_clamp,
            fp16_channels_last=s.fp16_channels_last,
            kernel_size=s.kernel_size,
            use_noise=s.use_noise,
            activation=s.activation,
        )
        self.num_ws = self.synthesis.num_ws
        m = cfg.mapping
        self.mapping = MappingNetwork(
            z_dim=cfg.z_dim,
            c_dim=cfg.c_dim,
            w_dim=cfg.w_dim,
            num_ws=self.num_ws,
            num_layers=m.num_layers,
            embed_features=m.embed_features,
            layer_features=m.layer_features,
            activation=m.activation,
            lr_multiplier=m.lr_multiplier,
            w_avg_beta=m.w_avg_beta,
        )

    # -- the Generator protocol -------------------------------------------------------------------------------
    @property
    def latent_shape(self) -> tuple[int]:
        return (self.config.z_dim,)

    @property
    def num_classes(self) -> int:
        """Number of classes of a conditional model (``c_dim``); 0 when unconditional."""
        return self.config.c_dim

    def forward(
        self,
        z: torch.Tensor,
        c: torch.Tensor | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        noise_mode: NoiseMode = "random",
        generator: GeneratorLike = None,
        update_w_avg: bool | None = None,
        **synthesis_kwargs: Any,
    ) -> torch.Tensor:
        """The official ``G(z, c)``: unclamped float32 images. ``c`` is one-hot [N, c_dim] (None if unconditional)."""
        ws = self.mapping(z, c, truncation_psi, truncation_cutoff, update_w_avg=update_w_avg)
        return self.synthesis(ws, noise_mode=noise_mode, generator=generator, **synthesis_kwargs)

    def generate(
        self,
        z: torch.Tensor,
        cond: torch.Tensor | None = None,
        generator: GeneratorLike = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        noise_mode: NoiseMode = "const",
        mix_seed: Seed = None,
        mix_layer: int | None = None,
    ) -> torch.Tensor:
        """Images in [-1, 1] from latents z [N, z_dim]; what the ``gan`` sampler calls.

        - ``cond``: one-hot labels [N, c_dim] or class indices [N]; for a conditional model, None draws random
          labels from ``generator`` (after z), so a seed fixes them too.
        - ``truncation_psi`` / ``truncation_cutoff``: w <- w_avg + psi (w - w_avg), on the first ``cutoff`` ws.
        - ``noise_mode``: "const" (the stored maps, default as in the official generate.py), "random" (drawn from
          ``generator``, so still deterministic for a seed) or "none".
        - ``mix_seed`` / ``mix_layer``: style mixing; ws from index ``mix_layer`` on (default ``num_ws // 2``) are
          replaced by those of latents drawn from ``mix_seed`` (an int, or one seed per image).
        """
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {', '.join(NOISE_MODES)}, got {noise_mode!r}")
        n = z.shape[0]
        c = self.labels_to_onehot(cond, n, generator)
        ws = self.mapping(z.to(self.device), c, truncation_psi, truncation_cutoff, update_w_avg=False)
        if mix_seed is not None:
            layer = self.num_ws // 2 if mix_layer is None else int(mix_layer)
            if not 0 <= layer <= self.num_ws:
                raise ValueError(
                    f"mix_layer must be in 0..{self.num_ws} (this model has {self.num_ws} ws), got {layer}"
                )
            z2 = randn((n, *self.latent_shape), make_generator(mix_seed, n), device=self.device)
            ws2 = self.mapping(z2, c, truncation_psi, truncation_cutoff, update_w_avg=False)
            ws = torch.cat([ws[:, :layer], ws2[:, layer:]], dim=1)
        elif mix_layer is not None:
            raise ValueError("mix_layer needs mix_seed (the seed of the second latent)")
        img = self.synthesis(ws, noise_mode=noise_mode, generator=generator)
        return img.clamp(-1, 1)

    def labels_to_onehot(
        self, cond: torch.Tensor | None, n: int, generator: GeneratorLike = None
    ) -> torch.Tensor | None:
        """One-hot c [n, c_dim] from indices or one-hot rows (None: random labels from ``generator``)."""
        c_dim = self.config.c_dim
        if c_dim == 0:
            if cond is not None:
                raise ValueError(f"{self._name()} is unconditional (c_dim=0): it takes no class labels")
            return None
        if cond is None:
            cond = random_labels(n, c_dim, generator)
        cond = torch.as_tensor(cond)
        if cond.ndim == 2 and cond.shape[1] == c_dim and cond.is_floating_point():
            onehot = cond
        else:
            labels = ClassLabelConditioner(c_dim).encode(cond)
            if labels.numel() == 1:
                labels = labels.expand(n)
            onehot = torch.nn.functional.one_hot(labels, c_dim)
        if onehot.shape[0] != n:
            raise ValueError(f"got {onehot.shape[0]} class labels for {n} latents")
        return onehot.to(device=self.device, dtype=self.dtype)

    @classmethod
    def sample_options(cls, config: Any, card: Any = None) -> dict[str, Any]:
        from zoo_core.sampler import SamplerOption

        if not config.c_dim:
            return {}
        return {
            "labels": SamplerOption(
                f"class label(s) in 0..{config.c_dim - 1}: one for all images, or one per image",
                None,
                "random from the seed",
            )
        }

    def prepare_conditioning(self, n: int, **kwargs: Any) -> tuple[Any, Any]:
        """``labels`` (alias ``class_labels``): an int for all images or n ints in 0..c_dim-1.

        A conditional model sampled without labels gets random labels drawn from the seed (documented, so
        ``zoo sample stylegan2-ada-cifar10`` works); labels given to an unconditional model are an error.
        """
        labels = pop_labels(kwargs)
        if kwargs:
            raise TypeError(
                f"{self._name()}.sample() got unexpected arguments {sorted(kwargs)}; it takes labels and the gan "
                "sampler's options (truncation_psi, truncation_cutoff, noise_mode, mix_seed, mix_layer)"
            )
        if labels is None:
            return None, self
        if self.config.c_dim == 0:
            raise ValueError(f"{self._name()} is unconditional (c_dim=0): remove labels={labels!r}")
        return labels_for_batch(labels, n, self.config.c_dim), self

    def _name(self) -> str:
        return self.card.name if self.card is not None else type(self).__name__

    # -- discriminator ----------------------------------------------------------------------------------------
    def build_discriminator(self) -> Discriminator:
        """A fresh discriminator of the config's ``discriminator`` section (defaults if it has none)."""
        from zoo_stylegan.discriminator import Discriminator

        cfg = self.config
        return Discriminator(cfg.c_dim, cfg.img_resolution, cfg.img_channels, cfg.discriminator)

    @classmethod
    def load_discriminator(
        cls, directory: str | os.PathLike[str], config: StyleGANConfig | None = None
    ) -> Discriminator:
        """The discriminator saved next to a converted model (``discriminator.safetensors``)."""
        from zoo_stylegan.discriminator import Discriminator

        directory = Path(directory)
        config = config or cls.read_config(directory)
        path = directory / DISCRIMINATOR_WEIGHTS
        if not path.exists():
            raise WeightsError(
                f"{directory} has no {DISCRIMINATOR_WEIGHTS} (convert with include_discriminator=true)"
            )
        with torch.device("meta"):
            disc = Discriminator(
                config.c_dim, config.img_resolution, config.img_channels, config.discriminator
            )
        state = weights.load_safetensors(path)
        weights.check_state_dict(disc, state, str(path))
        disc.load_state_dict(state, strict=True, assign=True)
        return disc.eval()

    # -- a folder holding a pickle is not zoo weights -----------------------------------------------------------
    @classmethod
    def read_state_dict(cls, directory: Path) -> dict[str, torch.Tensor]:
        folder = directory if directory.is_dir() else directory.parent
        if not (folder / WEIGHTS_NAME).exists() and (directory.suffix == ".pkl" or any(folder.glob("*.pkl"))):
            raise WeightsError(
                f"{directory} holds a StyleGAN2-ADA pickle, not zoo weights. Convert it (the pickle is read "
                f"with a restricted unpickler): `zoo convert {PKL_FORMAT} FILE.pkl OUT_DIR --set {OPT_IN_FLAG}=true`"
            )
        return super().read_state_dict(directory)
