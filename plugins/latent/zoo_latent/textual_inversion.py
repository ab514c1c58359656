"""Textual-inversion embeddings (Gal et al. 2023, "An Image is Worth One Word") on any latent text-to-image model.

An embedding is 1..n new rows of the text encoder's token-embedding matrix, reached through a new token: a token
with n vectors is added as ``token, token_1, ..., token_{n-1}`` and the tokenizer expands ``token`` in a prompt
into all n (diffusers' ``maybe_convert_prompt`` convention), so prompts name it once. Files read:

- diffusers: ``learned_embeds.safetensors`` (or ``.bin``) = ``{token: tensor[n, dim]}`` (also ``[dim]``);
- AUTOMATIC1111: ``.pt`` with ``string_to_param: {"*": tensor[n, dim]}`` (token: ``name``, else the file name),
  read with ``torch.load(weights_only=True)`` only: a pickle that needs code is refused;
- the single-key ``{"emb_params": tensor[n, dim]}`` safetensors (token: the file name unless given).

Everything is checked before the model changes (a token already in the vocabulary, a dimension that is not the
text encoder's, a file without embeddings), so a refused file leaves the model as it was. The rows of the
vocabulary the model came with stay bit-identical through load and unload.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch
from torch import nn

from zoo_core import weights
from zoo_core.errors import WeightsError

if TYPE_CHECKING:
    from zoo_latent.text_encoder import CLIPTextModel
    from zoo_latent.tokenizer import CLIPTokenizer


class TextModel(Protocol):
    """What textual inversion changes in a latent text-to-image model (``LatentTextToImageModel`` is one). The
    model offers ``load_textual_inversion`` on top of this module, so this module names it only by what it touches."""

    tokenizer: CLIPTokenizer | None
    text_encoder: CLIPTextModel
    config: Any  # config.text_encoder.vocab_size follows the embedding's rows


LEARNED_EMBEDS = "learned_embeds.safetensors"
#: in a saved model's tokenizer/: the loaded embeddings' tokens, ``{"tokens": {token: [token, token_1, ...]}}``
TOKENS_FILE = "zoo_textual_inversion.json"
#: the files looked for in a folder or Hub repository, in order
EMBEDDING_FILES = (LEARNED_EMBEDS, "learned_embeds.bin")
EmbeddingSource = str | os.PathLike[str] | Mapping[str, Any] | torch.Tensor


def vector_names(token: str, n: int) -> list[str]:
    """The tokens of an n-vector embedding: ``token, token_1, ..., token_{n-1}``."""
    return [token] + [f"{token}_{i}" for i in range(1, n)]


def save_learned_embeds(embeds: Mapping[str, torch.Tensor], path: str | os.PathLike[str]) -> Path:
    """Write ``{token: tensor[n, dim]}`` as safetensors, the file diffusers' ``load_textual_inversion`` reads."""
    path = Path(path)
    if path.suffix != ".safetensors":
        path = path / LEARNED_EMBEDS
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {t: v.detach().float().cpu().contiguous().reshape(-1, v.shape[-1]) for t, v in embeds.items()}
    weights.save_safetensors(state, path)
    return path


def _find_file(source: str | os.PathLike[str]) -> Path:
    text = os.fspath(source)
    path = Path(text).expanduser()
    if (
        not path.exists()
        and not weights.is_hub_source(text)
        and text.count("/") == 1
        and not text.startswith(".")
    ):
        text = f"hf://{text}"  # "org/repo", as diffusers takes it
    path = weights.resolve(text)
    if path.is_file():
        return path
    for name in EMBEDDING_FILES:
        if (path / name).is_file():
            return path / name
    candidates = sorted(p for p in path.iterdir() if p.suffix in (".safetensors", ".pt", ".bin"))
    if len(candidates) == 1:
        return candidates[0]
    raise WeightsError(
        f"{text!r} holds {len(candidates)} embedding-like files and no {LEARNED_EMBEDS}: name the file to load"
    )


def _read(source: EmbeddingSource) -> tuple[Any, str, str]:
    """(the file's content, the name for messages, the file stem: A1111's default token)."""
    if isinstance(source, (torch.Tensor, Mapping)):
        return source, "the given embeddings", ""
    path = _find_file(source)
    if path.suffix == ".safetensors":
        content: Any = weights.load_safetensors(path)
    else:
        content = weights.load_torch_checkpoint(path)  # weights_only=True: code in the pickle is refused
    return content, str(path), path.stem


def parse_embeddings(content: Any, token: str | None, where: str, stem: str = "") -> dict[str, torch.Tensor]:
    """``{token: tensor[n, dim]}`` from the content of any of the three formats (see the module docstring)."""
    if isinstance(content, torch.Tensor):
        if token is None:
            raise WeightsError(f"{where} is a bare tensor: pass token='<name>' to load it")
        found = {token: content}
    elif not isinstance(content, Mapping) or not content:
        raise WeightsError(f"{where} holds no embeddings (an empty file or not a mapping of tensors)")
    elif "string_to_param" in content:  # AUTOMATIC1111
        params = content["string_to_param"]
        if not isinstance(params, Mapping) or len(params) != 1:
            raise WeightsError(f"{where}: string_to_param should hold one tensor (under '*')")
        name = content.get("name") if isinstance(content.get("name"), str) else stem
        found = {token or name: next(iter(params.values()))}
    elif "emb_params" in content and len(content) == 1:
        if not (token or stem):
            raise WeightsError(f"{where} is an emb_params embedding: pass token='<name>'")
        found = {token or stem: content["emb_params"]}
    elif all(isinstance(v, torch.Tensor) for v in content.values()):  # diffusers {token: tensor}
        if token is not None and len(content) > 1:
            raise WeightsError(
                f"{where} holds {len(content)} tokens ({', '.join(map(str, content))}); token= renames only a "
                "one-token file"
            )
        found = dict(content) if token is None else {token: next(iter(content.values()))}
    else:
        keys = ", ".join(map(str, list(content)[:6]))
        raise WeightsError(
            f"{where} is not a textual-inversion embedding I know (keys: {keys}): expected {{token: tensor}} "
            "(diffusers), string_to_param (AUTOMATIC1111 .pt) or emb_params"
        )
    out = {}
    for name, value in found.items():
        if not isinstance(value, torch.Tensor) or not value.is_floating_point() or value.ndim not in (1, 2):
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise WeightsError(
                f"{where}: the embedding of {name!r} should be a float [n, dim] tensor, got {shape}"
            )
        if not value.numel():
            raise WeightsError(f"{where}: the embedding of {name!r} is empty")
        out[str(name)] = value.reshape(-1, value.shape[-1])
    return out


def _loaded(model: TextModel) -> dict[str, list[str]]:
    return model.__dict__.setdefault("_textual_inversion", {})


def _set_rows(model: TextModel, ids: Sequence[int], vectors: torch.Tensor | None, rows: int) -> None:
    """Give the text encoder ``rows`` token embeddings: the first ones kept bit for bit, ``ids`` set to
    ``vectors``."""
    old = model.text_encoder.token_embedding
    weight = old.weight.detach()
    new = nn.Embedding(rows, weight.shape[1], device=weight.device, dtype=weight.dtype)
    keep = min(rows, weight.shape[0])
    with torch.no_grad():
        new.weight[:keep] = weight[:keep]
        if vectors is not None:
            new.weight[list(ids)] = vectors.to(weight)
    new.weight.requires_grad_(old.weight.requires_grad)
    model.text_encoder.text_model.embeddings.token_embedding = new
    model.text_encoder.config.vocab_size = rows
    model.config.text_encoder.vocab_size = rows


def load_textual_inversion(
    model: TextModel,
    source: EmbeddingSource | Sequence[EmbeddingSource],
    token: str | Sequence[str | None] | None = None,
    *,
    force: bool = False,
) -> list[str]:
    """Add the embeddings of ``source`` (a file, a folder or Hub repo with ``learned_embeds.safetensors``, a state
    dict, or a list of these with a list of tokens) to ``model``; returns the tokens to use in prompts.

    A token that is already loaded, or a whole word of the vocabulary, is refused unless ``force``: then the loaded
    token is unloaded and replaced, and a word is shadowed in prompts by the new token (the word's own row is kept,
    so unloading brings the word back). The model's own tokens can never be replaced."""
    if model.tokenizer is None:
        raise WeightsError("this model has no tokenizer, so it cannot take textual-inversion tokens")
    many = isinstance(source, (list, tuple))
    sources = list(source) if many else [source]
    tokens = list(token) if isinstance(token, (list, tuple)) else [token] * len(sources)
    if len(tokens) != len(sources):
        raise ValueError(f"{len(sources)} embeddings but {len(tokens)} tokens: give one token per embedding")
    if many and any(t is not None for t in tokens) and len(set(tokens)) != len(tokens):
        raise ValueError(f"tokens must differ from each other, got {tokens}")

    dim = model.text_encoder.token_embedding.weight.shape[1]
    found: dict[str, torch.Tensor] = {}
    for src, tok in zip(sources, tokens, strict=True):
        content, where, stem = _read(src)
        for name, vectors in parse_embeddings(content, tok, where, stem).items():
            if vectors.shape[1] != dim:
                raise WeightsError(
                    f"the embedding of {name!r} in {where} has shape {tuple(vectors.shape)} (dimension "
                    f"{vectors.shape[1]}) but this model's text encoder takes {dim}-dimensional token embeddings: "
                    "it was made for another model"
                )
            if name in found:
                raise WeightsError(f"token {name!r} comes twice in the embeddings to load")
            found[name] = vectors
    replaced: list[str] = []  # loaded tokens the new ones replace (force)
    for name, vectors in found.items():
        for piece in vector_names(name, vectors.shape[0]):
            kind, owner = vocabulary_conflict(model, piece)
            if kind == "token":
                raise ValueError(
                    f"{piece!r} is one of the model's own tokens and cannot be replaced, not even with force: "
                    "load the embedding under another name (token='<new-name>')"
                )
            if kind == "loaded" and not force:
                raise ValueError(
                    f"textual-inversion token {piece!r} is already loaded: unload_textual_inversion({owner!r}) "
                    "first, or force=True to replace it"
                )
            if kind == "word" and not force:
                raise ValueError(
                    f"token {piece!r} is already in the model's vocabulary: load the embedding under another name "
                    "(token='<new-name>'), or force=True to make it stand for the word in prompts"
                )
            if kind == "loaded":
                replaced.append(owner)
    if replaced:
        unload_textual_inversion(model, sorted(set(replaced)))
    _add(model, found)
    return list(found)


def vocabulary_conflict(model: TextModel, token: str) -> tuple[str | None, str]:
    """How a new token ``token`` would clash with the model's vocabulary: ``("loaded", owner)`` for a piece of the
    loaded textual-inversion token ``owner``; ``("token", token)`` for one of the model's own tokens (never
    replaceable: its row is part of the model); ``("word", word)`` for a whole word of the vocabulary (``star`` is
    ``star</w>``), which an added token would shadow in every prompt (its own row kept); ``(None, "")`` if free."""
    for owner, pieces in _loaded(model).items():
        if token in pieces:
            return "loaded", owner
    tokenizer = model.tokenizer
    assert tokenizer is not None
    for kind, piece in (("token", token), ("word", f"{token}</w>")):
        try:
            tokenizer.token_to_id(piece)
        except KeyError:
            continue
        return kind, token
    return None, ""


def _add(model: TextModel, found: Mapping[str, torch.Tensor]) -> None:
    tokenizer = model.tokenizer
    assert tokenizer is not None
    if "_textual_inversion_base" not in model.__dict__:  # what unload restores
        rows = model.text_encoder.token_embedding.weight.shape[0]
        model.__dict__["_textual_inversion_base"] = (copy.deepcopy(tokenizer), rows)
    loaded = _loaded(model)
    for name, vectors in found.items():
        names = vector_names(name, vectors.shape[0])
        ids = tokenizer.add_tokens(names)
        rows = max(model.text_encoder.token_embedding.weight.shape[0], max(ids) + 1)
        _set_rows(model, ids, vectors, rows)
        if len(names) > 1:
            tokenizer.multi_vector[name] = names
        loaded[name] = names


def save_tokens(model: TextModel, tokenizer_dir: Path) -> None:
    """Persist which added tokens are loaded embeddings and how each expands (``TOKENS_FILE`` beside the
    tokenizer's ``added_tokens.json``), so a saved model expands prompts as this one does."""
    loaded = _loaded(model)
    if loaded:
        weights.write_json_atomic({"tokens": loaded}, Path(tokenizer_dir) / TOKENS_FILE)


def restore_tokens(model: TextModel, tokenizer_dir: Path) -> None:
    """After loading a tokenizer with added tokens, make them loaded embeddings again (unloadable, and a
    multi-vector one expanded in prompts): from ``TOKENS_FILE`` when the folder has it (our saves), else by
    diffusers' rule (``maybe_convert_prompt``: an added token ``t`` stands for ``t t_1 t_2 ...`` as long as
    ``t_i`` is an added token too), so a pipeline diffusers saved after ``load_textual_inversion`` reads the same."""
    tokenizer = model.tokenizer
    added = tokenizer.added_tokens() if tokenizer is not None else {}
    if not added:
        return
    path = Path(tokenizer_dir) / TOKENS_FILE
    if path.is_file():
        try:
            tokens = json.loads(path.read_text(encoding="utf-8"))["tokens"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise WeightsError(f"Could not read {path}: {exc}") from None
        missing = [p for pieces in tokens.values() for p in pieces if p not in added]
        if missing:
            raise WeightsError(f"{path} names tokens the tokenizer beside it lacks: {missing[:4]}")
    else:
        tokens, members = {}, set()
        for name in sorted(added, key=added.__getitem__):
            if name in members:
                continue
            pieces = [name]
            while f"{name}_{len(pieces)}" in added:
                pieces.append(f"{name}_{len(pieces)}")
            tokens[name] = pieces
            members.update(pieces)
    pieces_of_embeddings = {p for pieces in tokens.values() for p in pieces}
    others = {t: i for t, i in added.items() if t not in pieces_of_embeddings}
    rows = min(
        (added[p] for p in pieces_of_embeddings), default=model.text_encoder.token_embedding.weight.shape[0]
    )
    if any(i >= rows for i in others.values()):
        raise WeightsError(f"{path}: the embeddings' tokens must come after every other added token")
    base = tokenizer.without_added_tokens()
    for token in sorted(others, key=others.__getitem__):
        base.add_tokens([token])
    model.__dict__["_textual_inversion_base"] = (base, rows)
    loaded = _loaded(model)
    loaded.clear()
    for name, pieces in tokens.items():
        loaded[name] = list(pieces)
        if len(pieces) > 1:
            tokenizer.multi_vector[name] = list(pieces)


def textual_inversion_embeddings(model: TextModel) -> dict[str, torch.Tensor]:
    """The loaded embeddings, ``{token: tensor[n, dim]}`` (what ``save_learned_embeds`` writes)."""
    weight = model.text_encoder.token_embedding.weight.detach()
    tokenizer = model.tokenizer
    out = {}
    for name, names in _loaded(model).items():
        ids = [tokenizer.token_to_id(n) for n in names]  # type: ignore[union-attr]
        out[name] = weight[ids].clone()
    return out


def unload_textual_inversion(model: TextModel, tokens: str | Sequence[str] | None = None) -> list[str]:
    """Remove the named loaded tokens (default: all); the model's own vocabulary and rows are untouched. Returns
    the tokens removed."""
    loaded = _loaded(model)
    wanted = list(loaded) if tokens is None else [tokens] if isinstance(tokens, str) else list(tokens)
    unknown = [t for t in wanted if t not in loaded]
    if unknown:
        raise ValueError(
            f"no textual-inversion token {unknown[0]!r} is loaded; loaded: {', '.join(loaded) or 'none'}"
        )
    if not wanted:
        return []
    keep = {t: v for t, v in textual_inversion_embeddings(model).items() if t not in wanted}
    base_tokenizer, rows = model.__dict__["_textual_inversion_base"]
    model.tokenizer = copy.deepcopy(base_tokenizer)
    _set_rows(model, [], None, rows)
    loaded.clear()
    if keep:
        _add(model, keep)
    return wanted
