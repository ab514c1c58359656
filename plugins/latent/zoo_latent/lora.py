"""LoRA adapters (Hu et al. 2022) on latent text-to-image models, in the file formats diffusers users already have.

A LoRA adds ``factor * up @ down`` to the weight of a linear (or convolution) layer, ``down`` [r, in] and ``up``
[out, r], ``factor = weight * alpha / r``. ``load_lora`` reads these layouts of ``pytorch_lora_weights.safetensors``
(what ``StableDiffusionPipeline.load_lora_weights`` reads):

- peft / diffusers >= 0.25 (``save_lora_weights``, ``train_dreambooth_lora.py``):
  ``unet.<module>.lora_A.weight`` / ``lora_B.weight`` (``text_encoder.`` for the text tower), alpha from the
  ``lora_adapter_metadata`` JSON in the safetensors header when present, else alpha = r;
- a raw peft state dict: ``base_model.model.<module>.lora_A[.<adapter>].weight``;
- the older diffusers layouts: ``<module>.lora.down.weight`` / ``lora.up.weight`` (LoRACompatibleLinear),
  ``<attn>.processor.to_q_lora.down.weight`` (attention processors, with or without the ``unet.`` prefix) and
  ``<module>.lora_linear_layer.down.weight`` (text encoder), with an optional ``<module>.alpha``.

Adapters are applied as forward hooks on the layers (the state dict of the model is unchanged, so
``save_pretrained`` saves the base weights); several can be active with their own weights, and ``fuse`` folds the
active ones into the weights (``unfuse`` takes the same amounts out again). ``save_lora_weights`` writes the
peft/diffusers layout.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from zoo_core.errors import WeightsError

LORA_WEIGHTS_NAME = "pytorch_lora_weights.safetensors"
METADATA_KEY = "lora_adapter_metadata"
COMPONENTS = ("unet", "text_encoder")

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^(?P<module>.+)\.lora_(?P<which>[AB])(?:\.[^.]+)?\.weight$"), "peft"),
    (re.compile(r"^(?P<module>.+)\.lora(?:_linear_layer)?\.(?P<which>down|up)\.weight$"), "old"),
    (
        re.compile(
            r"^(?P<attn>.+)\.processor\.(?P<proj>to_q|to_k|to_v|to_out)_lora\.(?P<which>down|up)\.weight$"
        ),
        "processor",
    ),
)


@dataclass
class LoRAPair:
    """One layer's adapter: ``down`` [r, in, ...], ``up`` [out, r, ...] and alpha (None: alpha = r)."""

    down: torch.Tensor | None = None
    up: torch.Tensor | None = None
    alpha: float | None = None

    @property
    def rank(self) -> int:
        assert self.down is not None
        return int(self.down.shape[0])

    @property
    def scale(self) -> float:
        return 1.0 if self.alpha is None else self.alpha / self.rank


def _split_component(key: str) -> tuple[str, str]:
    for prefix in ("base_model.model.",):
        if key.startswith(prefix):
            key = key[len(prefix) :]
    for component in COMPONENTS:
        if key.startswith(component + "."):
            return component, key[len(component) + 1 :]
    return "unet", key  # the oldest files name UNet modules without a prefix


def parse_lora_state_dict(
    state: Mapping[str, torch.Tensor], metadata: Mapping[str, Any] | None = None
) -> dict[str, dict[str, LoRAPair]]:
    """``{component: {module path: LoRAPair}}`` from any of the layouts in the module docstring."""
    out: dict[str, dict[str, LoRAPair]] = {}
    unmatched: list[str] = []
    alphas: dict[tuple[str, str], float] = {}
    for key, tensor in state.items():
        component, rest = _split_component(key)
        if rest.endswith(".alpha"):
            alphas[(component, rest[: -len(".alpha")])] = float(tensor)
            continue
        for pattern, kind in _PATTERNS:
            match = pattern.match(rest)
            if match is None:
                continue
            if kind == "processor":
                proj = match["proj"]
                module = f"{match['attn']}.{'to_out.0' if proj == 'to_out' else proj}"
            else:
                module = match["module"]
            down = match["which"] in ("A", "down")
            pair = out.setdefault(component, {}).setdefault(module, LoRAPair())
            if down:
                pair.down = tensor
            else:
                pair.up = tensor
            break
        else:
            unmatched.append(key)
    if unmatched:
        raise WeightsError(
            f"{len(unmatched)} keys are not in a LoRA layout this loader reads (peft lora_A/lora_B, diffusers "
            f"lora.down/lora.up, attention processors): {', '.join(unmatched[:5])}"
        )
    for (component, module), alpha in alphas.items():
        pair = out.get(component, {}).get(module)
        if pair is None:
            raise WeightsError(f"The LoRA file has an alpha for {component}.{module} but no weights for it")
        pair.alpha = alpha
    for component, pairs in out.items():
        config = _component_metadata(metadata or {}, component)
        for module, pair in pairs.items():
            if pair.down is None or pair.up is None:
                raise WeightsError(
                    f"The LoRA for {component}.{module} has only its {'up' if pair.down is None else 'down'} matrix"
                )
            if pair.alpha is None and config.get("lora_alpha") is not None:
                pair.alpha = _pattern_value(config, "alpha_pattern", module, config["lora_alpha"])
    if not out:
        raise WeightsError("The LoRA file holds no LoRA weights")
    return out


def _component_metadata(metadata: Mapping[str, Any], component: str) -> dict[str, Any]:
    """The peft LoraConfig fields diffusers packs into the header as ``<component>.<field>``."""
    prefix = component + "."
    return {k[len(prefix) :]: v for k, v in metadata.items() if k.startswith(prefix)}


def _pattern_value(config: Mapping[str, Any], name: str, module: str, default: float) -> float:
    for pattern, value in (config.get(name) or {}).items():
        if module == pattern or module.endswith("." + pattern) or re.search(pattern + "$", module):
            return float(value)
    return float(default)


def read_lora_file(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors and the decoded adapter metadata of a LoRA file (``.safetensors``, or ``.bin`` read safely)."""
    from zoo_core import weights

    if path.suffix == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(os.fspath(path), framework="pt") as handle:
                header = handle.metadata() or {}
                state = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118 - not a dict
        except Exception as exc:  # safetensors raises its own error types
            raise WeightsError(f"Could not read the LoRA file {path}: {exc}") from None
        metadata: dict[str, Any] = {}
        if header.get(METADATA_KEY):
            try:
                metadata = json.loads(header[METADATA_KEY])
            except json.JSONDecodeError:
                raise WeightsError(f"{path}: the {METADATA_KEY} header is not JSON") from None
        return state, metadata
    state = weights.load_torch_checkpoint(path)
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path} does not hold a LoRA state dict (a mapping of names to tensors)")
    return dict(state), {}


def resolve_lora_file(path_or_repo: str | os.PathLike[str], weight_name: str | None = None) -> Path:
    """The LoRA file a path, a folder (``pytorch_lora_weights.safetensors``) or ``hf://org/repo`` names."""
    from zoo_core import weights

    source = os.fspath(path_or_repo)
    name = weight_name or LORA_WEIGHTS_NAME
    path = weights.resolve(source, files=[name] if weights.is_hub_source(source) else ())
    if path.is_file():
        return path
    if (path / name).is_file():
        return path / name
    found = sorted(path.glob("*.safetensors"))
    if weight_name is None and len(found) == 1:
        return found[0]
    raise WeightsError(
        f"No LoRA file in {path}: expected {name}"
        + (f" (found {', '.join(p.name for p in found)}; pass weight_name=)" if found else "")
    )


# -- applying --------------------------------------------------------------------------------------------------
@dataclass
class _Delta:
    down: torch.Tensor
    up: torch.Tensor
    scale: float  # alpha / r

    def weight_delta(self, like: torch.Tensor) -> torch.Tensor:
        up, down = self.up.flatten(1).to(like.dtype), self.down.flatten(1).to(like.dtype)
        return (up @ down).reshape(like.shape) * self.scale


class _LayerHook:
    """Adds the active adapters' output to one layer's: ``y + sum_a w_a s_a up_a(down_a(x))``."""

    def __init__(self, layer: nn.Module) -> None:
        self.layer = layer
        self.deltas: dict[str, _Delta] = {}
        self.active: dict[str, float] = {}
        self.handle = layer.register_forward_hook(self)

    def __call__(self, layer: nn.Module, inputs: tuple[Any, ...], output: torch.Tensor) -> torch.Tensor:
        x = inputs[0]
        for name, weight in self.active.items():
            delta = self.deltas[name]
            down, up = delta.down.to(x.dtype), delta.up.to(x.dtype)
            if isinstance(layer, nn.Conv2d):
                h = F.conv2d(x, down, None, layer.stride, layer.padding, layer.dilation, layer.groups)
                h = F.conv2d(h, up)
            else:
                h = F.linear(F.linear(x, down), up)
            output = output + (weight * delta.scale) * h.to(output.dtype)
        return output


@dataclass
class LoRAState:
    """The adapters loaded into one model: their hooks, user weights and what is fused into the weights."""

    hooks: dict[str, _LayerHook] = field(default_factory=dict)  # "component.module" -> hook
    weights: dict[str, float] = field(default_factory=dict)  # adapter -> weight
    active: list[str] = field(default_factory=list)
    fused: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)  # layer -> the delta added

    def refresh(self) -> None:
        for hook in self.hooks.values():
            hook.active = {} if self.fused else {n: self.weights[n] for n in self.active if n in hook.deltas}


def _state(model: Any) -> LoRAState:
    state = getattr(model, "_lora_state", None)
    if state is None:
        state = LoRAState()
        object.__setattr__(model, "_lora_state", state)
    return state


def _check_layer(where: str, layer: nn.Module, pair: LoRAPair) -> str | None:
    """Why ``pair`` does not fit ``layer`` (None: it fits)."""
    assert pair.down is not None and pair.up is not None
    if isinstance(layer, nn.Linear):
        expected_down, expected_up = (pair.rank, layer.in_features), (layer.out_features, pair.rank)
        if tuple(pair.down.shape) != expected_down or tuple(pair.up.shape) != expected_up:
            return (
                f"{where}: LoRA down {tuple(pair.down.shape)} / up {tuple(pair.up.shape)} do not fit the model's "
                f"layer {layer.in_features} -> {layer.out_features} (needs {expected_down} / {expected_up})"
            )
        return None
    if isinstance(layer, nn.Conv2d):
        in_ok = pair.down.ndim == 4 and pair.down.shape[1] == layer.in_channels // layer.groups
        out_ok = (
            pair.up.ndim == 4 and pair.up.shape[0] == layer.out_channels and pair.up.shape[1] == pair.rank
        )
        if not (in_ok and out_ok and tuple(pair.down.shape[2:]) == tuple(layer.kernel_size)):
            return (
                f"{where}: LoRA down {tuple(pair.down.shape)} / up {tuple(pair.up.shape)} do not fit the model's "
                f"convolution weight {tuple(layer.weight.shape)}"
            )
        return None
    return f"{where} is a {type(layer).__name__}, not a linear or convolution layer"


def load_lora(
    model: Any,
    path_or_repo: str | os.PathLike[str] | Mapping[str, torch.Tensor],
    *,
    scale: float = 1.0,
    adapter_name: str | None = None,
    weight_name: str | None = None,
) -> str:
    """Load a LoRA file into ``model`` (a latent text-to-image model) as adapter ``adapter_name`` (default
    ``default_0``, ``default_1``, ...), active with weight ``scale`` next to those already active. Every layer is
    checked before anything changes: a file for another architecture leaves the model as it was."""
    if isinstance(path_or_repo, Mapping):
        tensors, metadata, source = dict(path_or_repo), {}, "the given state dict"
    else:
        path = resolve_lora_file(path_or_repo, weight_name)
        tensors, metadata = read_lora_file(path)
        source = str(path)
    parsed = parse_lora_state_dict(tensors, metadata)
    state = _state(model)
    if adapter_name is None:
        adapter_name = next(
            f"default_{i}" for i in range(len(state.weights) + 1) if f"default_{i}" not in state.weights
        )
    if adapter_name in state.weights:
        raise ValueError(
            f"An adapter named {adapter_name!r} is loaded already: unload it or pick another name"
        )
    layers: dict[str, tuple[nn.Module, LoRAPair]] = {}
    missing, problems = [], []
    for component, pairs in parsed.items():
        root = getattr(model, component)
        modules = dict(root.named_modules())
        for module, pair in pairs.items():
            layer = modules.get(module)
            if layer is None and component == "text_encoder":  # transformers 5 saves without ``text_model.``
                layer = modules.get("text_model." + module)
            if layer is None:
                missing.append(f"{component}.{module}")
                continue
            problem = _check_layer(f"{component}.{module}", layer, pair)
            if problem:
                problems.append(problem)
            layers[f"{component}.{module}"] = (layer, pair)
    if missing:
        raise WeightsError(
            f"The LoRA in {source} is for another architecture: {len(missing)} of its layers are not in this "
            f"{type(model).__name__}, first {', '.join(missing[:5])}"
        )
    if problems:
        raise WeightsError(f"The LoRA in {source} does not match the model: " + "; ".join(problems[:3]))
    if state.fused:
        raise ValueError("Adapters are fused into the weights: unfuse_lora() before loading another")
    for where, (layer, pair) in layers.items():
        hook = state.hooks.get(where) or state.hooks.setdefault(where, _LayerHook(layer))
        assert pair.down is not None and pair.up is not None
        ref = layer.weight
        hook.deltas[adapter_name] = _Delta(
            pair.down.to(ref.device, ref.dtype), pair.up.to(ref.device, ref.dtype), pair.scale
        )
    state.weights[adapter_name] = float(scale)
    state.active.append(adapter_name)
    state.refresh()
    return adapter_name


def set_adapters(
    model: Any, names: str | Sequence[str], weights: float | Sequence[float] | None = None
) -> None:
    """Make ``names`` the active adapters, with ``weights`` (one per name, or one for all; None keeps them)."""
    state = _state(model)
    names = [names] if isinstance(names, str) else list(names)
    unknown = [n for n in names if n not in state.weights]
    if unknown:
        raise ValueError(f"No adapter {unknown[0]!r}; loaded: {', '.join(state.weights) or 'none'}")
    if weights is not None:
        values = (
            [float(weights)] * len(names)
            if isinstance(weights, (int, float))
            else [float(w) for w in weights]
        )
        if len(values) != len(names):
            raise ValueError(f"{len(values)} weights for {len(names)} adapters: give one per adapter")
        state.weights.update(zip(names, values, strict=True))
    if state.fused:
        raise ValueError("Adapters are fused into the weights: unfuse_lora() before changing them")
    state.active = names
    state.refresh()


def adapters(model: Any) -> dict[str, float]:
    """The loaded adapters and their weights (the active ones in ``model._lora_state.active``)."""
    return dict(_state(model).weights)


@torch.no_grad()
def fuse(model: Any) -> None:
    """Fold the active adapters into the layer weights (sampling then costs nothing extra)."""
    state = _state(model)
    if state.fused:
        return
    for where, hook in state.hooks.items():
        weight = hook.layer.weight
        total = torch.zeros_like(weight)
        for name in state.active:
            if name in hook.deltas:
                total += state.weights[name] * hook.deltas[name].weight_delta(weight)
        weight += total
        state.fused[where] = total
    state.refresh()


@torch.no_grad()
def unfuse(model: Any) -> None:
    """Take out of the weights what ``fuse`` added."""
    state = _state(model)
    for where, total in state.fused.items():
        state.hooks[where].layer.weight -= total
    state.fused = {}
    state.refresh()


def unload(model: Any, adapter_name: str | None = None) -> None:
    """Remove one adapter (or all): unfused first, hooks removed when no adapter is left on a layer."""
    state = _state(model)
    unfuse(model)
    names = list(state.weights) if adapter_name is None else [adapter_name]
    for name in names:
        if name not in state.weights:
            raise ValueError(f"No adapter {name!r}; loaded: {', '.join(state.weights) or 'none'}")
        del state.weights[name]
        if name in state.active:
            state.active.remove(name)
        for hook in state.hooks.values():
            hook.deltas.pop(name, None)
    for where in [w for w, h in state.hooks.items() if not h.deltas]:
        state.hooks.pop(where).handle.remove()
    state.refresh()


# -- writing ---------------------------------------------------------------------------------------------------
def lora_state_dict(pairs: Mapping[str, Mapping[str, LoRAPair]]) -> dict[str, torch.Tensor]:
    """``{component: {module: pair}}`` -> the peft/diffusers keys, alpha / r folded into ``up`` (so a reader
    that assumes alpha = r, as diffusers does without metadata, computes the same layer)."""
    out: dict[str, torch.Tensor] = {}
    for component, modules in pairs.items():
        for module, pair in modules.items():
            assert pair.down is not None and pair.up is not None
            out[f"{component}.{module}.lora_A.weight"] = pair.down.detach().float().cpu().contiguous()
            out[f"{component}.{module}.lora_B.weight"] = (
                (pair.up.detach().float() * pair.scale).cpu().contiguous()
            )
    return out


def save_lora_weights(
    directory: str | os.PathLike[str],
    pairs: Mapping[str, Mapping[str, LoRAPair]],
    weight_name: str = LORA_WEIGHTS_NAME,
) -> Path:
    """Write ``pytorch_lora_weights.safetensors`` in the layout ``load_lora_weights`` reads. No adapter metadata:
    readers then take rank from the shapes and alpha = rank, which is right because the scale is folded in."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / weight_name
    save_file(lora_state_dict(pairs), os.fspath(path), metadata={"format": "pt"})
    return path
