"""The Model base class: every zoo model samples, saves and loads the same way.

A model is a ``torch.nn.Module`` with a pydantic ``config``. ``sample`` is shared: it picks a sampler from the
registry, draws seeded noise, runs the sampler and decodes. Subclasses provide the network, ``kind`` ("diffusion"
models implement the Denoiser protocol, "gan" models the Generator protocol) and, if they are conditional,
``prepare_conditioning``.
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import torch
from torch import nn

from zoo_core import weights
from zoo_core.config import Config
from zoo_core.errors import ConfigError, UnverifiedWeightsWarning, WeightsError
from zoo_core.hardware import FastPath, choose_fast_path
from zoo_core.seeding import Seed, make_generator

if TYPE_CHECKING:
    from zoo_core.cards import ModelCard
    from zoo_core.converter import Converter
    from zoo_core.sampler import SamplerOption

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
#: endings of the weights files ``from_pretrained`` reads itself (safetensors; torch files with weights_only=True)
NATIVE_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
CARD_NAME = "card.json"
ARCH_KEY = "_zoo_architecture"


_INIT_FUNCTIONS = (
    "uniform_",
    "normal_",
    "trunc_normal_",
    "constant_",
    "ones_",
    "zeros_",
    "eye_",
    "dirac_",
    "xavier_uniform_",
    "xavier_normal_",
    "kaiming_uniform_",
    "kaiming_normal_",
    "orthogonal_",
)


@contextlib.contextmanager
def empty_init() -> Iterator[None]:
    """Build modules on the meta device without running their initialisers: weights are loaded right after.

    Random init on meta tensors goes through torch's reference implementations, which import torch._dynamo (seconds)
    — the same reason transformers skips init when loading.
    """
    saved = {name: getattr(torch.nn.init, name) for name in _INIT_FUNCTIONS}
    try:
        for name in _INIT_FUNCTIONS:
            setattr(torch.nn.init, name, lambda tensor, *args, **kwargs: tensor)
        with torch.device("meta"):
            yield
    finally:
        for name, function in saved.items():
            setattr(torch.nn.init, name, function)


def read_saved_card(directory: Path) -> ModelCard | None:
    """The card ``save_pretrained`` stored beside the weights, so a saved copy keeps its sampler defaults."""
    from zoo_core.cards import parse_card

    path = directory / CARD_NAME if directory.is_dir() else None
    if path is None or not path.exists():
        return None
    return parse_card(json.loads(path.read_text(encoding="utf-8")), str(path))


def parse_dtype(dtype: torch.dtype | str | None) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    names = {
        "float32": torch.float32,
        "fp32": torch.float32,
        "float16": torch.float16,
        "fp16": torch.float16,
        "half": torch.float16,
        "bfloat16": torch.bfloat16,
        "bf16": torch.bfloat16,
        "float64": torch.float64,
    }
    if str(dtype) not in names:
        raise ValueError(
            f"Unknown dtype {dtype!r}; expected one of {', '.join(names)}, or 'auto' for the hardware's fast path"
        )
    return names[str(dtype)]


def image_seeds(seed: int | Sequence[int] | None, n: int) -> list[int]:
    """The seed of each of ``n`` images: ``seed + i``, a list given per image, or a fresh base for None."""
    if seed is None:
        seed = int(torch.randint(0, 2**62, (1,)).item())
    if isinstance(seed, torch.Generator):
        raise ValueError(
            "batched sampling needs an int seed (image i gets seed + i) or a list of ints, not a torch.Generator"
        )
    if isinstance(seed, int):
        return [seed + i for i in range(n)]
    seeds = [int(s) for s in seed]
    if len(seeds) != n:
        raise ValueError(
            f"seed is a list of {len(seeds)} entries but {n} images were asked for: give one per image"
        )
    return seeds


def _is_per_image(value: Any, n: int) -> bool:
    if isinstance(value, torch.Tensor):
        return value.ndim > 0 and value.shape[0] == n
    return isinstance(value, list | tuple) and len(value) == n


def _take(values: Any, chunk: list[int]) -> Any:
    if isinstance(values, torch.Tensor):
        return values[chunk]
    return [values[i] for i in chunk]


class Model(nn.Module):
    """Base of every zoo model. Subclasses set ``architecture``, ``config_class`` and ``kind``."""

    architecture: ClassVar[str]
    config_class: ClassVar[type[Config]] = Config
    kind: ClassVar[str] = "diffusion"
    default_sampler: str | None = None
    default_steps: int | None = None
    #: what ``save_pretrained(format=...)`` can write (zoo_core.export.FORMATS)
    export_formats: ClassVar[tuple[str, ...]] = ("zoo",)
    #: the layouts ``from_pretrained`` reads itself (converters add the official ones), named in errors
    native_formats: ClassVar[tuple[str, ...]] = (
        "zoo (a save_pretrained folder: config.json + model.safetensors, or that model.safetensors)",
    )

    def __init__(self, config: Config | Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.config = self.config_class.parse(config, where=type(self).__name__)
        self.card: ModelCard | None = None
        self.fast_path: FastPath | None = None

    # -- device and dtype ---------------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        for tensor in self.parameters():
            return tensor.device
        for tensor in self.buffers():
            return tensor.device
        return torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        for tensor in self.parameters():
            if tensor.is_floating_point():
                return tensor.dtype
        return torch.float32

    # -- sampling -----------------------------------------------------------------------------------------------
    def sample(
        self,
        n: int = 1,
        *,
        sampler: str | Any | None = None,
        steps: int | None = None,
        seed: Seed = None,
        output: Literal["tensor", "pil", "numpy"] = "tensor",
        progress: bool = False,
        x_T: torch.Tensor | None = None,
        callback: Any = None,
        batch_size: int | None = None,
        **kwargs: Any,
    ) -> Any:
        """Draw ``n`` images: a tensor [n, C, H, W] in [-1, 1] (or PIL images / uint8 arrays with ``output``).

        ``sampler`` is a registered name (``zoo samplers``) or a Sampler instance; keyword arguments the sampler
        declares in ``options`` (``eta`` for DDIM, ...) go to it, the rest to ``prepare_conditioning``.
        The same ``seed`` gives the same images on the same device and dtype. With ``batch_size`` the images are
        drawn ``batch_size`` at a time through ``sample_iter`` (image ``i`` seeded ``seed + i``, so they do not
        depend on the batch size); without it, in one batch.
        """
        if batch_size is not None:
            batches = list(
                self.sample_iter(
                    n,
                    batch_size=batch_size,
                    sampler=sampler,
                    steps=steps,
                    seed=seed,
                    output=output,
                    progress=progress,
                    x_T=x_T,
                    callback=callback,
                    **kwargs,
                )
            )
            if output == "pil":
                return [image for batch in batches for image in batch]
            if output == "numpy":
                import numpy as np

                return np.concatenate(batches)
            return torch.cat(batches)
        from zoo_core.registry import get_sampler
        from zoo_core.sampler import Sampler

        if not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive integer number of images, got {n!r}")
        if sampler is None and self.default_sampler is None:
            raise ValueError(
                f"{type(self).__name__} has no default sampler: pass sampler=... (see `zoo samplers`)"
            )
        sampler_obj = (
            sampler if isinstance(sampler, Sampler) else get_sampler(sampler or self.default_sampler)
        )
        sampler_obj.check(self)
        sampler_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in sampler_obj.options}
        generator = make_generator(seed, n)
        if steps is None and sampler_obj.name == self.default_sampler:
            steps = self.default_steps  # the card's steps belong to the card's sampler
        fast = self.fast_path.autocast() if self.fast_path is not None else contextlib.nullcontext()
        with torch.no_grad(), fast:
            cond, sample_model = self.prepare_conditioning(n, **kwargs)
            # the model to sample may be a view of this one at another size (latent models: height/width)
            shape = (n, *(sample_model.sample_shape if self.kind == "diffusion" else self.latent_shape))
            x = sampler_obj(
                sample_model,
                shape,
                steps=steps,
                generator=generator,
                cond=cond,
                x_T=x_T,
                callback=callback,
                progress=progress,
                **sampler_kwargs,
            )
            images = self.decode(x) if self.kind == "diffusion" else x
            if self.fast_path is not None:
                images = images.float()  # autocast may hand back low-precision images; the weights are fp32
            images = images.clamp(-1, 1)  # the contract: images in [-1, 1], as image pipelines clip
        return self.format_output(images, output)

    def sample_iter(
        self,
        n: int,
        *,
        batch_size: int,
        seed: int | Sequence[int] | None = 0,
        indices: Sequence[int] | None = None,
        output: Literal["tensor", "pil", "numpy"] = "tensor",
        **kwargs: Any,
    ) -> Iterator[Any]:
        """Yield the ``n`` images ``batch_size`` at a time, so memory holds one batch whatever ``n`` is.

        Image ``i`` is seeded ``seed + i`` (or ``seed[i]`` for a list of ``n`` seeds; None draws a fresh base), so
        an image is the same whatever the batch size, and a run can be split (``indices``: draw only these images,
        in this order, e.g. the missing ones or one shard's). Per-image arguments — lists, tuples or tensors of
        length ``n`` (``labels``, ``prompt``, ``x_T``) — are sliced with the batch; the rest go to every call.
        """
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"n must be a positive integer number of images, got {n!r}")
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        seeds = image_seeds(seed, n)
        order = list(range(n)) if indices is None else [int(i) for i in indices]
        bad = [i for i in order if not 0 <= i < n]
        if bad:
            raise ValueError(f"indices must lie in 0..{n - 1}, got {bad[0]}")
        per_image = {k: v for k, v in kwargs.items() if _is_per_image(v, n)}
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            call = dict(kwargs)
            for key, values in per_image.items():
                call[key] = _take(values, chunk)
            yield self.sample(len(chunk), seed=[seeds[i] for i in chunk], output=output, **call)

    @classmethod
    def sample_options(cls, config: Config, card: ModelCard | None = None) -> dict[str, SamplerOption]:
        """The keywords ``sample()`` takes beyond n, sampler, steps, seed and the sampler's options (labels,
        prompt, ...), with their defaults, for a model of ``config``: what ``zoo sample NAME --help`` lists without
        loading weights. Conditional models override this beside ``prepare_conditioning``."""
        return {}

    def prepare_conditioning(self, n: int, **kwargs: Any) -> tuple[Any, Any]:
        """(conditioning, model to sample) for ``n`` images; conditional models override this.

        The second value lets a model wrap itself, e.g. in classifier-free guidance.
        """
        if kwargs:
            raise TypeError(
                f"{type(self).__name__}.sample() got unexpected arguments {sorted(kwargs)}; it is unconditional "
                "and takes only n, sampler, steps, seed, output and the sampler's options"
            )
        return None, self

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """Sampler space -> images in [-1, 1]. Pixel-space models return ``x`` unchanged."""
        return x

    @staticmethod
    def format_output(images: torch.Tensor, output: str) -> Any:
        from zoo_core import images as imaging

        if output == "tensor":
            return images
        if output == "pil":
            return imaging.to_pil(images)
        if output == "numpy":
            return imaging.to_uint8(images)
        raise ValueError(f"output must be 'tensor', 'pil' or 'numpy', got {output!r}")

    # -- persistence --------------------------------------------------------------------------------------------
    def config_dict(self) -> dict[str, Any]:
        return {ARCH_KEY: self.architecture, **self.config.model_dump(mode="json")}

    def save_pretrained(
        self, directory: str | os.PathLike[str], format: str = "zoo", variant: str | None = None
    ) -> Path:
        """Write the model to ``directory`` in ``format``: "zoo" (``config.json`` + ``model.safetensors``, each
        written atomically; ``from_pretrained`` reads it), "diffusers" (a pipeline folder diffusers loads unchanged)
        or "official" (the original code's checkpoint, written by the registered converter of this architecture that
        has a ``write``), where the family has one (``export_formats``). ``variant``
        ("fp16") writes diffusers' half-precision variant files. ``zoo export`` writes a whole folder atomically."""
        from zoo_core.export import ExportError, check_variant, unsupported_format

        directory = Path(directory)
        if format not in self.export_formats:
            raise unsupported_format(type(self).__name__, format, self.export_formats)
        check_variant(variant)
        if format == "official":
            if variant is not None:
                raise ExportError(
                    f"variant={variant!r} names diffusers' half-precision files; the official checkpoint is written "
                    "as the original code saves it (drop --variant)"
                )
            directory.mkdir(parents=True, exist_ok=True)
            return self.official_converter().save(self, directory)
        if format != "zoo":
            directory.mkdir(parents=True, exist_ok=True)
            return self.export(directory, format, variant)
        if variant is not None:
            raise ExportError(
                f"variant={variant!r} names diffusers' half-precision files: use format='diffusers', or .half() "
                "the model before saving it in the zoo format"
            )
        directory.mkdir(parents=True, exist_ok=True)
        weights.save_safetensors(
            self.state_dict(),
            directory / WEIGHTS_NAME,
            metadata={"format": "pt", "zoo_architecture": self.architecture},
        )
        weights.write_json_atomic(self.config_dict(), directory / CONFIG_NAME)
        if self.card is not None:
            weights.write_json_atomic(self.card.model_dump(mode="json"), directory / CARD_NAME)
        return directory

    @classmethod
    def official_converter(cls) -> Converter:
        """The registered converter that writes this architecture's official checkpoint (``format="official"``)."""
        from zoo_core.registry import get_registry

        writers = [c for c in get_registry().converters() if c.architecture == cls.architecture and c.write]
        if len(writers) != 1:
            found = ", ".join(c.name for c in writers) or "none is registered"
            raise WeightsError(
                f"{cls.__name__} needs exactly one converter that writes the official {cls.architecture!r} layout; "
                f"{found} (see `zoo convert --list`)"
            )
        return writers[0]

    def export(self, directory: Path, format: str, variant: str | None) -> Path:
        """Write a format other than zoo's and the official one (which its converter writes) into the existing
        ``directory``; families that list more ``export_formats`` implement it."""
        raise NotImplementedError(
            f"{type(self).__name__} lists {format!r} in export_formats but does not write it"
        )

    @classmethod
    def read_config(cls, directory: Path, overrides: Mapping[str, Any] | None = None) -> Config:
        """The config stored with the weights (our format; for a weights file, the config.json beside it), else
        ``overrides`` (the card's); subclasses also read other layouts (diffusers)."""
        directory = directory if directory.is_dir() else directory.parent
        path = directory / CONFIG_NAME
        if not path.exists():
            if overrides is not None:
                return cls.config_class.parse(overrides, where="the model card")
            raise WeightsError(f"{directory} has no {CONFIG_NAME}: is it a saved zoo model?")
        data = json.loads(path.read_text(encoding="utf-8"))
        arch = data.pop(ARCH_KEY, None)
        if arch is not None and arch != cls.architecture:
            raise WeightsError(f"{path} holds a {arch!r} model, not {cls.architecture!r}")
        return cls.config_class.parse(data, where=str(path))

    @classmethod
    def read_state_dict(cls, directory: Path) -> dict[str, torch.Tensor]:
        """The state dict stored in ``directory``, mapped onto our parameter names; subclasses add layouts."""
        path = directory / WEIGHTS_NAME if directory.is_dir() else directory
        if not path.exists():
            raise WeightsError(f"{directory} has no {WEIGHTS_NAME}")
        return weights.load_safetensors(path)

    @classmethod
    def from_pretrained(
        cls,
        path_or_repo: str | os.PathLike[str],
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | str | None = None,
        revision: str | None = None,
        card: ModelCard | None = None,
        **options: Any,
    ) -> Model:
        """Load a model saved by ``save_pretrained``, from a directory, ``hf://org/repo`` or ``embedded:...``; or an
        official checkpoint through the converter the card's ``weights.format`` names (``options`` go to it, e.g.
        ``allow_pickle=True``)."""
        converter = cls.weights_converter(path_or_repo, card)
        if converter is not None:
            return cls._load_converted(
                converter, path_or_repo, card=card, device=device, dtype=dtype, revision=revision, **options
            )
        if options:
            raise TypeError(
                f"{cls.__name__}.from_pretrained() got unexpected arguments {sorted(options)}: they are converter "
                f"options, and {os.fspath(path_or_repo)} holds zoo or diffusers weights"
            )
        spec = card.weights if card is not None and card.weights is not None else None
        directory = weights.resolve(
            path_or_repo,
            revision=revision or (spec.revision if spec else None),
            files=spec.files if spec else (),
            sha256=spec.sha256 if spec else None,
            model=card.name if card is not None else None,
        )
        unknown = cls._unrecognised_local(path_or_repo)
        if unknown is not None and unknown.is_file() and not unknown.name.endswith(NATIVE_SUFFIXES):
            raise WeightsError(f"{unknown} is not a weights file zoo reads. {cls.formats_read()}")
        try:
            config = cls.read_config(directory, overrides=card.config if card is not None else None)
            with empty_init():
                model = cls(config)
            state = cls.read_state_dict(directory)
            weights.check_state_dict(model, state, str(path_or_repo))
        except WeightsError as exc:
            if unknown is None:
                raise
            raise WeightsError(f"{str(exc).rstrip('.')}. {cls.formats_read()}") from None
        weights.check_finite(state, str(path_or_repo))
        model.load_state_dict(state, strict=True, assign=True)
        model._materialize_non_persistent()
        model.load_extras(directory)
        if card is None:
            card = read_saved_card(directory)
        return model._finish_loading(card, device, dtype)

    @classmethod
    def weights_converter(cls, source: str | os.PathLike[str], card: ModelCard | None) -> Converter | None:
        """The converter that reads ``source``: for a local file (or a folder holding one) the registered converter
        of this architecture that claims it (its ending and content, ``Converter.claims``), whatever the card's
        format; else the one the card's ``weights.format`` names; None for zoo/diffusers weights, including a
        folder an official checkpoint was converted into."""
        from zoo_core.converter import NATIVE_FORMATS
        from zoo_core.registry import get_registry

        source = os.fspath(source)
        local = None if weights.is_hub_source(source) or source.startswith("embedded:") else Path(source)
        fmt = card.weights.format if card is not None and card.weights is not None else "auto"
        if local is not None and local.expanduser().exists():
            local = local.expanduser()
            if local.is_dir() and any((local / n).exists() for n in (CONFIG_NAME, "model_index.json")):
                return None  # a converted copy, or a diffusers folder
            claims = cls.claiming_converters(local)
            named = [c for c in claims if c.name == fmt]
            if len(claims) > 1 and not named:
                raise WeightsError(
                    f"{local} is claimed by several converters of {cls.architecture!r} "
                    f"({', '.join(c.name for c in claims)}): name one in the card's weights.format"
                )
            if claims:
                return (named or claims)[0]
            if fmt in NATIVE_FORMATS:
                return None
        if fmt not in NATIVE_FORMATS:
            return get_registry().converter_for_card(card)
        return None

    @classmethod
    def claiming_converters(cls, path: Path) -> list[Converter]:
        """The registered converters of this architecture that read the file ``path``, or a file in the folder
        ``path``."""
        from zoo_core.registry import get_registry

        files = [path] if path.is_file() else sorted(p for p in path.iterdir() if not p.name.startswith("."))
        return [
            c
            for c in get_registry().converters()
            if c.architecture == cls.architecture and any(c.claims(f) for f in files)
        ]

    @classmethod
    def formats_read(cls) -> str:
        """One sentence naming every layout this architecture loads from: its own and its converters'."""
        from zoo_core.registry import get_registry

        converters = [c for c in get_registry().converters() if c.architecture == cls.architecture]
        listing = "; ".join(
            [*cls.native_formats, *(f"{c.name}: {c.reads}" for c in converters if c.suffixes)]
        )
        return f"{cls.__name__} ({cls.architecture}) loads: {listing} (`zoo convert --list`)"

    @classmethod
    def _unrecognised_local(cls, source: str | os.PathLike[str]) -> Path | None:
        """``source`` if it is a local file, or a local folder in none of the native layouts; else None."""
        source = os.fspath(source)
        if weights.is_hub_source(source) or source.startswith("embedded:"):
            return None
        path = Path(source).expanduser()
        if path.is_file():
            return path
        if path.is_dir() and not any((path / n).exists() for n in (CONFIG_NAME, "model_index.json", WEIGHTS_NAME)):
            return path
        return None

    @classmethod
    def published_config(cls, card: ModelCard) -> dict[str, Any]:
        """The architecture config of the card's published files, when they are on this machine (embedded, a local
        folder, the Hugging Face cache): what a weights file given for the card is read with when it records none
        (an official ``netG.pth``, a lone ``model.safetensors``). Empty when unknown; never downloads."""
        if card.config or card.weights is None:
            return dict(card.config)
        from zoo_core import sources

        source = card.weights.source
        try:
            if source.startswith("embedded:"):
                folder: Path | None = sources.embedded_path(source)
            elif sources.is_hub_source(source):
                from huggingface_hub import try_to_load_from_cache

                hub = sources.parse_hf_source(source)
                prefix = f"{hub.subfolder}/" if hub.subfolder else ""
                found = try_to_load_from_cache(
                    hub.repo_id, prefix + CONFIG_NAME, revision=card.weights.revision or hub.revision
                )
                folder = Path(found).parent if isinstance(found, str) else None
            else:
                folder = Path(source).expanduser()
            if folder is None or not folder.is_dir():
                return {}
            return cls.read_config(folder).model_dump(mode="json")
        except Exception:  # a broken or partial copy: the file must then record its architecture itself
            return {}

    @classmethod
    def _load_converted(
        cls,
        converter: Converter,
        source: str | os.PathLike[str],
        *,
        card: ModelCard | None,
        device: Any,
        dtype: Any,
        revision: str | None,
        **options: Any,
    ) -> Model:
        from zoo_core.converter import find_weights_file

        spec = card.weights if card is not None and card.weights is not None else None
        source = os.fspath(source)
        local = not (weights.is_hub_source(source) or source.startswith("embedded:"))
        if local and not Path(source).expanduser().exists():
            name = repr(card.name) if card is not None else source
            raise WeightsError(
                f"Model {name} needs its official weights ({converter.reads}), expected at {source}. "
                f"{spec.notes if spec is not None and spec.notes else ''}".strip()
            )
        converter.verify_options(source, card=card, **options)  # before anything is downloaded
        path = weights.resolve(
            source,
            revision=revision or (spec.revision if spec else None),
            files=spec.files if spec else (),
            sha256=spec.sha256 if spec else None,
        )
        file = find_weights_file(path, spec.files if spec else (), converter.suffixes, converter.reads)
        config = card.config if card is not None and card.config else None
        model = converter.load(file, config=config, **options)
        if not isinstance(model, cls):
            raise WeightsError(
                f"converter {converter.name!r} read {file} into a {type(model).__name__}, not a {cls.__name__} "
                f"({cls.architecture!r}): the card's weights.format and architecture disagree"
            )
        weights.check_finite(model.state_dict(), str(file))
        return model._finish_loading(card, device, dtype)

    def load_extras(self, directory: Path) -> None:
        """Read what a model needs besides its tensors from the weights directory (a tokenizer's vocabulary, ...);
        called by ``from_pretrained`` after the weights are in. Nothing by default."""

    @classmethod
    def from_card(
        cls,
        card: ModelCard,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | str | None = None,
        revision: str | None = None,
        weights_source: str | os.PathLike[str] | None = None,
        **options: Any,
    ) -> Model:
        """Build the model a card describes: its weights if it names any (read by the converter its
        ``weights.format`` names, with ``options``), else a fresh model of its config."""
        source = weights_source or (card.weights.source if card.weights else None)
        unverified = False
        if weights_source is not None and card.weights is not None:
            # the card's revision, file list and checksums pin its own source, not the weights given instead (a
            # local copy, the user's training run, one weights file: read as it is, not its folder); the
            # architecture of the card's published files reads a file that records none
            unverified = bool(card.weights.sha256)
            # format "auto": what the file is decides (a converter that claims it, else zoo/diffusers)
            update = {"source": os.fspath(weights_source), "files": [], "sha256": {}, "revision": None}
            update["format"] = "auto"
            card = card.model_copy(
                update={
                    "weights": card.weights.model_copy(update=update),
                    "config": cls.published_config(card),
                }
            )
        if source is None:
            if options:
                raise TypeError(
                    f"card {card.name!r} has no weights to convert: unexpected arguments {sorted(options)}"
                )
            try:
                model = cls(card.config)
            except ConfigError as exc:
                raise ConfigError(f"Card {card.name!r}: {exc}") from None
            return model._finish_loading(card, device, dtype)
        model = cls.from_pretrained(source, device=device, dtype=dtype, revision=revision, card=card, **options)
        if unverified:  # after the load: a file that fails gets its one error, not a warning before it
            warnings.warn(
                f"{os.fspath(weights_source)}: checksums not checked (the card {card.name!r} pins its published "
                "files, not a local copy); loaded as it is",
                UnverifiedWeightsWarning,
                stacklevel=3,
            )
        return model

    def _materialize_non_persistent(self) -> None:
        """Buffers not in the state dict are still on the meta device after loading: rebuild them on the CPU."""
        meta = [name for name, b in self.named_buffers() if b.is_meta]
        if meta:
            fresh = type(self)(self.config)
            fresh_buffers = dict(fresh.named_buffers())
            for name in meta:
                module_name, _, buffer_name = name.rpartition(".")
                owner = self.get_submodule(module_name) if module_name else self
                owner._buffers[buffer_name] = fresh_buffers[name]

    def use_fast_path(self, fast: FastPath) -> Model:
        """Run ``sample`` under ``fast``'s autocast, with channels_last weights where it says (weights stay fp32)."""
        self.fast_path = fast
        if fast.channels_last:
            self.to(memory_format=torch.channels_last)
        return self

    def _finish_loading(self, card: ModelCard | None, device: Any, dtype: Any) -> Model:
        self.card = card
        if card is not None:
            self.default_sampler = card.default_sampler or self.default_sampler
            self.default_steps = card.default_steps or self.default_steps
        if dtype == "auto":  # the fast path for this hardware (zoo_core.hardware)
            self.to(device=device)
            self.use_fast_path(choose_fast_path(device))
        else:
            self.to(device=device, dtype=parse_dtype(dtype))
        return self.eval()
