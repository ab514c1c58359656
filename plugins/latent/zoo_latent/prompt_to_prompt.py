"""Prompt-to-Prompt image editing by cross-attention control (Hertz et al. 2022, google/prompt-to-prompt).

A source prompt and an edited (target) prompt are sampled in one batch from the same noise. While the first part
of the trajectory is denoised, the target's attention maps are taken from the source's, so the layout and
composition of the source image carry over and only what the edited words describe changes:

- ``replace`` (word swap, "a red circle" -> "a red square"): the target's cross-attention maps are the source's,
  word for word (``M``: source token -> target token; a swapped word of a different token count spreads evenly).
- ``refine`` (added words, "a circle" -> "a red circle"): tokens that occur in both prompts (aligned by a global
  Needleman-Wunsch alignment of the token sequences) take the source's maps; new tokens keep their own.
- ``reweight``: the source's maps with the columns of chosen words scaled (``weights``: word -> factor); the same
  ``weights`` may also be given to ``replace`` / ``refine``, applied after their mapping (the paper's
  ``AttentionReweight`` with a previous controller).

The cross-attention edit runs while ``t >= (1 - cross_steps) * T`` (T training timesteps), i.e. during the first
``cross_steps`` share of the trajectory measured in noise level; the target's self-attention maps are replaced by
the source's while ``t >= (1 - self_steps) * T`` in layers with at most ``self_max_tokens`` query positions (the
paper's code: 16x16 and below). With DDIM's leading spacing this is exactly the paper's "first int(steps * f)
steps"; measuring by timestep keeps the meaning for samplers that evaluate the model several times per step.
As in the paper's code only the conditional branch of classifier-free guidance is edited. Unlike it, ``refine``
maps only tokens the alignment matches exactly (a mismatched aligned pair keeps its own map: that is a swap, which
``replace`` expresses).

``model.sample(n, edit={...})`` returns 2n images: rows 0..n-1 for the source prompt, n..2n-1 for the edited one,
row i and n+i from the same noise (also for stochastic samplers: their generators are duplicated).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

import torch
from pydantic import Field, model_validator

from zoo_core.config import Config
from zoo_core.errors import ConfigError
from zoo_core.seeding import Seed, make_generator, randn

if TYPE_CHECKING:
    from zoo_core.schedule import NoiseSchedule
    from zoo_latent.tokenizer import CLIPTokenizer


class EditableModel(Protocol):
    """What an edit uses of a latent text-to-image model (``LatentTextToImageModel`` is one). The model offers
    ``sample(edit=...)`` on top of this module, so this module names the model only by what it touches."""

    tokenizer: CLIPTokenizer | None
    unet: torch.nn.Module
    schedule: NoiseSchedule
    config: Any  # reads config.unet.in_channels

    def conditioner(self, clip_skip: int | None = None) -> Any: ...

    def latent_size(self, height: int | None = None, width: int | None = None) -> tuple[int, int]: ...

    def set_attention_controller(self, controller: Any) -> list[str]: ...


class PromptEdit(Config):
    """One Prompt-to-Prompt edit: ``model.sample(n, edit=PromptEdit(...) or a dict of these fields)``."""

    type: Literal["replace", "refine", "reweight"] = Field(
        description="replace: swap words (same word count); refine: add words; reweight: scale words' attention"
    )
    source: str = Field(description="the prompt whose attention maps are kept")
    target: str | None = Field(
        None, description="the edited prompt (reweight: default and only value, source)"
    )
    cross_steps: float = Field(
        0.8, ge=0, le=1, description="share of the trajectory with cross-attention edited"
    )
    self_steps: float = Field(
        0.4, ge=0, le=1, description="share of the trajectory with self-attention replaced"
    )
    self_max_tokens: int = Field(
        256, ge=1, description="self-attention is replaced only up to this many tokens"
    )
    weights: dict[str, float] = Field(
        default_factory=dict, description="target-prompt words -> factor on their cross-attention maps"
    )

    @model_validator(mode="after")
    def _check(self) -> PromptEdit:
        if not self.source.strip():
            raise ValueError("source must be a non-empty prompt")
        if self.type == "reweight":
            if self.target is not None and self.target != self.source:
                raise ValueError(
                    "a reweight edit keeps the source prompt (target must be omitted or equal to source); to "
                    "reweight an edited prompt give `weights` to a replace or refine edit"
                )
            if not self.weights:
                raise ValueError("a reweight edit needs `weights`: {word of the prompt: factor}")
        elif self.target is None or not self.target.strip():
            raise ValueError(f"a {self.type} edit needs the edited prompt as `target`")
        return self

    @property
    def target_prompt(self) -> str:
        return self.source if self.target is None else self.target


# -- token alignment (pure functions) -----------------------------------------------------------------------------
def word_tokens(tokenizer: CLIPTokenizer, prompt: str) -> list[tuple[str, list[int]]]:
    """The whitespace-separated words of ``prompt`` with the positions of their tokens in the padded sequence
    (position 0 is the start token). CLIP tokenizes words independently, which this checks."""
    words = prompt.split()
    out, position = [], 1
    for word in words:
        ids = tokenizer.encode(word)[1:-1]
        out.append((word, list(range(position, position + len(ids)))))
        position += len(ids)
    whole = tokenizer.encode(prompt)
    if len(whole) != position + 1:
        raise ValueError(f"the prompt {prompt!r} does not tokenize word by word; cannot align its words")
    if len(whole) > tokenizer.max_length:
        raise ValueError(
            f"the prompt {prompt!r} has {len(whole)} tokens but the text encoder takes {tokenizer.max_length}: "
            "an edited prompt must fit without truncation"
        )
    return out


def replacement_mapper(
    source: Sequence[tuple[str, list[int]]], target: Sequence[tuple[str, list[int]]], length: int
) -> torch.Tensor:
    """``M`` [length, length] with target map ``j`` = sum_i source map ``i`` * M[i, j] (word swap).

    Words are paired in order (same word count). A word pair with equal token counts maps token to token; a
    swapped word of k_s source and k_t target tokens gives each target token 1 / k_t of every source token. The
    start token, the end token and the padding after it map in order.
    """
    if len(source) != len(target):
        raise ValueError(
            f"a replace edit swaps words one for one, but the source has {len(source)} words and the target "
            f"{len(target)}; use a refine edit to add or remove words"
        )
    mapper = torch.zeros(length, length)
    mapper[0, 0] = 1.0  # start token
    for (_, src), (_, tgt) in zip(source, target, strict=True):
        if len(src) == len(tgt):
            mapper[src, tgt] = 1.0
        else:
            for j in tgt:
                mapper[src, j] = 1.0 / len(tgt)
    i = 1 + sum(len(p) for _, p in source)  # end token, then padding
    for j in range(1 + sum(len(p) for _, p in target), length):
        mapper[min(i, length - 1), j] = 1.0
        i += 1
    return mapper


def align_tokens(source: Sequence[int], target: Sequence[int]) -> list[int]:
    """For each target position, the source position it matches in a global alignment (Needleman-Wunsch: match
    +1, mismatch -1, gap -1; ties prefer the diagonal), or -1 when it is new or aligned to a different token."""
    n, m = len(source), len(target)
    score = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(1, n + 1):
        score[i][0] = -i
    for j in range(1, m + 1):
        score[0][j] = -j
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            diagonal = score[i - 1][j - 1] + (1 if source[i - 1] == target[j - 1] else -1)
            score[i][j] = max(diagonal, score[i - 1][j] - 1, score[i][j - 1] - 1)
    mapping = [-1] * m
    i, j = n, m
    while i > 0 and j > 0:
        match = source[i - 1] == target[j - 1]
        if score[i][j] == score[i - 1][j - 1] + (1 if match else -1):
            if match:
                mapping[j - 1] = i - 1
            i, j = i - 1, j - 1
        elif score[i][j] == score[i - 1][j] - 1:
            i -= 1
        else:
            j -= 1
    return mapping


def refinement_index(source: Sequence[int], target: Sequence[int], length: int) -> list[int]:
    """``align_tokens`` over the prompts' tokens (start to end token); the padding after them maps in order."""
    index = align_tokens(source, target)
    index += [min(len(source) + k, length - 1) for k in range(length - len(target))]
    return index


def word_weights(
    words: Sequence[tuple[str, list[int]]], weights: Mapping[str, float], length: int
) -> torch.Tensor:
    """Per-token factors [length]: 1 except the tokens of the named words (every occurrence)."""
    factors = torch.ones(length)
    known = {w.lower().strip(".,;:!?") for w, _ in words}
    for name, value in weights.items():
        key = name.lower()
        if key not in known:
            raise ValueError(
                f"reweighted word {name!r} is not in the edited prompt (its words: {', '.join(sorted(known))})"
            )
        for word, positions in words:
            if word.lower().strip(".,;:!?") == key:
                factors[positions] = float(value)
    return factors


# -- the controller -------------------------------------------------------------------------------------------------
class PromptToPromptController:
    """The attention controller of one edit over a batch of ``n`` source/target pairs.

    The UNet's batch holds [source x n, target x n], preceded by the same for the unconditional branch when
    classifier-free guidance is on. ``set_timestep`` (called before every UNet evaluation) decides which layers
    are edited; the rest run the fused attention kernel.
    """

    def __init__(
        self,
        edit: PromptEdit,
        n: int,
        num_train_timesteps: int,
        *,
        mapper: torch.Tensor | None = None,
        alignment: torch.Tensor | None = None,
        factors: torch.Tensor | None = None,
    ) -> None:
        self.edit, self.n, self.T = edit, n, num_train_timesteps
        self.mapper, self.alignment, self.factors = mapper, alignment, factors
        self.t: float | None = None

    def set_timestep(self, t: float) -> None:
        self.t = float(t)

    def _active(self, fraction: float) -> bool:
        if self.t is None:
            raise RuntimeError("the Prompt-to-Prompt controller ran before its timestep was set")
        return self.t >= (1.0 - fraction) * self.T

    def wants_probs(self, is_cross: bool, layer_name: str) -> bool:
        return self._active(self.edit.cross_steps if is_cross else self.edit.self_steps)

    def _pairs(self, probs: torch.Tensor) -> tuple[slice, slice]:
        b, n = probs.shape[0], self.n
        if b not in (2 * n, 4 * n):
            raise RuntimeError(f"expected a batch of {2 * n} or {4 * n} attention maps, got {b}")
        start = b - 2 * n  # the conditional half under guidance
        return slice(start, start + n), slice(start + n, start + 2 * n)

    def __call__(self, probs: torch.Tensor | None, is_cross: bool, layer_name: str) -> torch.Tensor | None:
        if probs is None:
            return None
        src, tgt = self._pairs(probs)
        if not is_cross:
            if probs.shape[2] > self.edit.self_max_tokens:
                return None
            out = probs.clone()
            out[tgt] = probs[src]
            return out
        base = probs[src].float()  # [n, heads, queries, source tokens]
        own = probs[tgt].float()
        if self.edit.type == "replace":
            edited = torch.einsum("bhqi,ij->bhqj", base, self.mapper.to(base.device))
        elif self.edit.type == "refine":
            index = self.alignment.to(base.device)
            mapped = base[..., index.clamp(min=0)]
            edited = torch.where(index >= 0, mapped, own)
        else:
            edited = base
        if self.factors is not None:
            edited = edited * self.factors.to(base.device)
        out = probs.clone()
        out[tgt] = edited.to(probs.dtype)
        return out


def build_controller(edit: PromptEdit, tokenizer: CLIPTokenizer, n: int, T: int) -> PromptToPromptController:
    """The controller of ``edit`` for ``n`` pairs, with its token maps from ``tokenizer``."""
    length = tokenizer.max_length
    target = edit.target_prompt
    source_words = word_tokens(tokenizer, edit.source)
    target_words = word_tokens(tokenizer, target)
    mapper = alignment = factors = None
    if edit.type == "replace":
        mapper = replacement_mapper(source_words, target_words, length)
    elif edit.type == "refine":
        alignment = torch.tensor(
            refinement_index(tokenizer.encode(edit.source), tokenizer.encode(target), length)
        )
    if edit.weights:
        factors = word_weights(target_words, edit.weights, length)
    return PromptToPromptController(edit, n, T, mapper=mapper, alignment=alignment, factors=factors)


# -- sampling -------------------------------------------------------------------------------------------------------
def parse_edit(edit: PromptEdit | Mapping[str, Any]) -> PromptEdit:
    if isinstance(edit, PromptEdit):
        return edit
    if not isinstance(edit, Mapping):
        raise ConfigError(f"edit must be a PromptEdit or a mapping of its fields, got {type(edit).__name__}")
    return PromptEdit.parse(edit, where="edit")


def _clone(generator: torch.Generator) -> torch.Generator:
    copy = torch.Generator(generator.device)
    copy.set_state(generator.get_state())
    return copy


def paired_noise(seed: Seed, n: int, shape: tuple[int, ...]) -> tuple[torch.Tensor, list[torch.Generator]]:
    """Initial noise [2n, *shape] with rows i and n+i equal, and 2n generators (the second n copies of the first)
    for the sampler's later draws. A single seed gives the same first noise as ``sample(n, seed=seed)``."""
    generator = make_generator(seed, n)
    if generator is None:
        generator = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,))))
    noise = randn((n, *shape), generator)
    if isinstance(generator, list):
        streams = generator
    else:
        seeds = torch.randint(0, 2**62, (n,), generator=generator).tolist()
        streams = [torch.Generator().manual_seed(s) for s in seeds]
    return torch.cat([noise, noise]), [*streams, *(_clone(g) for g in streams)]


@dataclass
class EditPlan:
    """What ``LatentTextToImageModel.sample`` needs to run an edit: the controller and the batch's arguments."""

    controller: PromptToPromptController
    sample_kwargs: dict[str, Any]

    @contextlib.contextmanager
    def controlling(self, model: EditableModel) -> Iterator[None]:
        """Install the controller on the model's UNet (and tell it each evaluation's timestep); remove it after."""

        def before_unet(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            t = args[1] if len(args) > 1 else kwargs["timestep"]
            self.controller.set_timestep(float(torch.as_tensor(t).flatten()[0]))

        handle = model.unet.register_forward_pre_hook(before_unet, with_kwargs=True)
        model.set_attention_controller(self.controller)
        try:
            yield
        finally:
            handle.remove()
            model.set_attention_controller(None)


def prepare_edit(
    model: EditableModel,
    n: int,
    edit: PromptEdit | Mapping[str, Any],
    *,
    seed: Seed = None,
    **kwargs: Any,
) -> EditPlan:
    """Check the edit and the sampling arguments, and lay out the batch of 2n (source, target) images."""
    edit = parse_edit(edit)
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be a positive integer number of image pairs, got {n!r}")
    for name in ("prompt", "x_T", "init", "strength"):
        if kwargs.get(name) is not None:
            what = "its prompts (source and target)" if name == "prompt" else "noise (edits start from x_T)"
            raise ValueError(f"sample(edit=...) sets {what} itself: do not pass {name}=")
    if model.tokenizer is None:
        model.conditioner()  # raises the missing-tokenizer error
    try:
        controller = build_controller(edit, model.tokenizer, n, model.schedule.num_train_timesteps)
    except ConfigError:
        raise
    except ValueError as exc:
        raise ConfigError(f"Invalid edit: {exc}") from None
    negative = kwargs.pop("negative_prompt", None)
    if isinstance(negative, Sequence) and not isinstance(negative, str) and len(negative) == n:
        negative = [*negative, *negative]
    latent = model.latent_size(kwargs.get("height"), kwargs.get("width"))
    x_T, generators = paired_noise(seed, n, (model.config.unet.in_channels, *latent))
    prompts = [edit.source] * n + [edit.target_prompt] * n
    sample_kwargs = {**kwargs, "seed": generators, "x_T": x_T, "prompt": prompts}
    if negative is not None:
        sample_kwargs["negative_prompt"] = negative
    return EditPlan(controller, sample_kwargs)
