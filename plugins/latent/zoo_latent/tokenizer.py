"""The CLIP byte-level BPE tokenizer (Radford et al. 2021, openai/CLIP ``simple_tokenizer.py``).

Built on the ``tokenizers`` library from a ``vocab.json`` + ``merges.txt`` pair (the files of a diffusers pipeline's
``tokenizer/`` folder). Text is NFC-normalised, runs of whitespace become one space and everything is lower-cased;
words are split as CLIP does (letters, single digits, runs of other symbols, English contractions), mapped to
printable byte characters and merged with the BPE ranks; the last piece of each word carries ``</w>``. A prompt is
wrapped in ``<|startoftext|>`` ... ``<|endoftext|>`` and cut or padded to ``max_length`` (77) tokens, padding with
the pad token the tokenizer config names (``<|endoftext|>`` for SD v1, ``!`` for SD v2).
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers
from tokenizers.models import BPE

from zoo_core.errors import WeightsError

# CLIP's word pattern: special tokens, contractions, letter runs, single digits, runs of other non-space symbols.
CLIP_WORD_PATTERN = (
    r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"
)
END_OF_WORD = "</w>"
VOCAB_NAME = "vocab.json"
MERGES_NAME = "merges.txt"
ADDED_TOKENS_NAME = "added_tokens.json"
TOKENIZER_JSON_NAME = "tokenizer.json"


class PromptTruncatedWarning(UserWarning):
    """A prompt longer than the text encoder's context was cut."""


def read_merges(path: str | os.PathLike[str]) -> list[tuple[str, str]]:
    """``merges.txt`` -> ordered merge pairs; the ``#version`` header and blank lines are skipped."""
    merges = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#version"):
            continue
        first, _, second = line.strip().partition(" ")
        merges.append((first, second))
    return merges


def _read_tokenizer_json(path: Path) -> tuple[dict[str, int], list[tuple[str, str]], dict[str, int]]:
    """(vocab, merges, added tokens outside the vocab) of a tokenizers-library BPE ``tokenizer.json``."""
    data = json.loads(path.read_text(encoding="utf-8"))
    model = data.get("model") or {}
    if model.get("type") != "BPE":
        raise WeightsError(f"{path} holds a {model.get('type')!r} tokenizer, not the BPE one CLIP uses")
    vocab = model["vocab"]
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    added = {t["content"]: t["id"] for t in data.get("added_tokens", []) if t["content"] not in vocab}
    return vocab, merges, added


def _token_content(value: Any) -> str | None:
    """Special tokens in tokenizer_config.json are strings or AddedToken dicts (``{"content": ...}``)."""
    if isinstance(value, Mapping):
        return value.get("content")
    return value


class CLIPTokenizer:
    """Prompts -> token ids [B, max_length] (int64), CLIP style; ``decode`` maps ids back to text."""

    def __init__(
        self,
        vocab: Mapping[str, int],
        merges: Sequence[tuple[str, str]],
        *,
        max_length: int = 77,
        bos_token: str = "<|startoftext|>",
        eos_token: str = "<|endoftext|>",
        pad_token: str | None = "<|endoftext|>",
        unk_token: str = "<|endoftext|>",
    ) -> None:
        if max_length < 2:
            raise ValueError(f"max_length must leave room for the start and end tokens, got {max_length}")
        for role, token in (("bos", bos_token), ("eos", eos_token), ("unk", unk_token), ("pad", pad_token)):
            if token is not None and token not in vocab:
                raise WeightsError(f"The tokenizer's {role} token {token!r} is not in its vocabulary")
        self.max_length = max_length
        self._vocab, self._merges = dict(vocab), list(merges)
        self.bos_token, self.eos_token, self.unk_token = bos_token, eos_token, unk_token
        self.pad_token = pad_token if pad_token is not None else eos_token
        model = BPE(
            vocab=self._vocab,
            merges=self._merges,
            continuing_subword_prefix="",
            end_of_word_suffix=END_OF_WORD,
            unk_token=unk_token,
            fuse_unk=False,
        )
        tok = Tokenizer(model)
        tok.normalizer = normalizers.Sequence(
            [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()]
        )
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(CLIP_WORD_PATTERN), behavior="removed", invert=True),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
        tok.decoder = decoders.ByteLevel()
        tok.add_special_tokens(
            [AddedToken(t, special=True, normalized=False) for t in {bos_token, eos_token}]
        )
        self._tok = tok
        #: multi-vector textual-inversion tokens: ``token`` in a prompt stands for all of these
        self.multi_vector: dict[str, list[str]] = {}
        self.bos_token_id = self.token_to_id(bos_token)
        self.eos_token_id = self.token_to_id(eos_token)
        self.pad_token_id = self.token_to_id(self.pad_token)

    # -- loading -------------------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike[str]) -> CLIPTokenizer:
        """Read a ``tokenizer/`` folder: vocab.json + merges.txt (or the tokenizers library's tokenizer.json, as
        transformers >= 5 writes it), the special tokens and length of tokenizer_config.json, added tokens."""
        directory = Path(directory)
        added: dict[str, int] = {}
        if (directory / VOCAB_NAME).is_file() and (directory / MERGES_NAME).is_file():
            vocab = json.loads((directory / VOCAB_NAME).read_text(encoding="utf-8"))
            merges = read_merges(directory / MERGES_NAME)
            if (directory / ADDED_TOKENS_NAME).is_file():
                added = json.loads((directory / ADDED_TOKENS_NAME).read_text(encoding="utf-8"))
        elif (directory / TOKENIZER_JSON_NAME).is_file():
            vocab, merges, added = _read_tokenizer_json(directory / TOKENIZER_JSON_NAME)
        else:
            raise WeightsError(
                f"Tokenizer folder {directory} lacks vocab.json and merges.txt (or tokenizer.json): a CLIP "
                "tokenizer needs its BPE vocabulary and merges"
            )
        options: dict[str, Any] = {}
        for name in ("special_tokens_map.json", "tokenizer_config.json"):  # the config wins
            path = directory / name
            if path.is_file():
                data = json.loads(path.read_text(encoding="utf-8"))
                for key in ("bos_token", "eos_token", "pad_token", "unk_token"):
                    if data.get(key) is not None:
                        options[key] = _token_content(data[key])
                length = data.get("model_max_length")
                if isinstance(length, int) and length < 100_000:  # "1e30" means "no limit" in transformers
                    options["max_length"] = length
        tokenizer = cls(vocab, merges, **options)
        for token, index in sorted(added.items(), key=lambda item: item[1]):
            if tokenizer._tok.token_to_id(token) is None:
                (got,) = tokenizer.add_tokens([token])
                if got != index:
                    raise WeightsError(f"{directory}: added token {token!r} should get id {index}, got {got}")
        return tokenizer

    def save_pretrained(self, directory: str | os.PathLike[str]) -> Path:
        """Write vocab.json, merges.txt, tokenizer_config.json (and added_tokens.json) as transformers does."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / VOCAB_NAME).write_text(json.dumps(self._vocab, ensure_ascii=False), encoding="utf-8")
        lines = ["#version: 0.2"] + [f"{a} {b}" for a, b in self._merges]
        (directory / MERGES_NAME).write_text("\n".join(lines) + "\n", encoding="utf-8")
        config = {
            "tokenizer_class": "CLIPTokenizer",
            "model_max_length": self.max_length,
            "bos_token": self.bos_token,
            "eos_token": self.eos_token,
            "pad_token": self.pad_token,
            "unk_token": self.unk_token,
        }
        (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
        added = self.added_tokens()
        if added:
            (directory / ADDED_TOKENS_NAME).write_text(
                json.dumps(added, ensure_ascii=False), encoding="utf-8"
            )
        return directory

    # -- vocabulary ----------------------------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size(with_added_tokens=True)

    def added_tokens(self) -> dict[str, int]:
        """The tokens added after the BPE vocabulary (textual-inversion placeholders) with their ids."""
        return {t: i for t, i in self._tok.get_vocab(with_added_tokens=True).items() if t not in self._vocab}

    def without_added_tokens(self) -> CLIPTokenizer:
        """This tokenizer as it was before any token was added (and without multi-vector rules)."""
        return CLIPTokenizer(
            self._vocab,
            self._merges,
            max_length=self.max_length,
            bos_token=self.bos_token,
            eos_token=self.eos_token,
            pad_token=self.pad_token,
            unk_token=self.unk_token,
        )

    def token_to_id(self, token: str) -> int:
        index = self._tok.token_to_id(token)
        if index is None:
            raise KeyError(f"Token {token!r} is not in the vocabulary")
        return index

    def add_tokens(self, tokens: Iterable[str]) -> list[int]:
        """Add whole-word tokens (textual inversion placeholders); returns their ids. Existing ones are refused."""
        tokens = list(tokens)
        taken = [t for t in tokens if self._tok.token_to_id(t) is not None]
        if taken:
            raise ValueError(f"Tokens already in the vocabulary: {taken}; pick placeholder names not in use")
        self._tok.add_tokens([AddedToken(t, single_word=False, normalized=True) for t in tokens])
        return [self.token_to_id(t) for t in tokens]

    # -- encoding ------------------------------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        """The ids of ``text`` between the start and end tokens, neither cut nor padded."""
        if not isinstance(text, str):
            raise TypeError(f"A prompt must be a string, got {type(text).__name__}")
        for token, names in self.multi_vector.items():
            text = text.replace(token, " ".join(names))
        ids = self._tok.encode(text, add_special_tokens=False).ids
        return [self.bos_token_id, *ids, self.eos_token_id]

    def __call__(
        self, prompts: str | Sequence[str], *, max_length: int | None = None, warn: bool = True
    ) -> torch.Tensor:
        """Token ids [B, max_length]: each prompt wrapped in start/end, cut to fit (end token kept) and padded.

        A prompt that does not fit is truncated with a ``PromptTruncatedWarning`` naming the number of tokens cut
        and the text they held.
        """
        if isinstance(prompts, str):
            prompts = [prompts]
        length = max_length or self.max_length
        rows = []
        for i, prompt in enumerate(prompts):
            ids = self.encode(prompt)
            if len(ids) > length:
                cut = ids[length - 1 : -1]
                if warn:
                    warnings.warn(
                        f"Prompt {i} is {len(ids)} tokens long but CLIP takes {length} (with start and end "
                        f"tokens): {len(cut)} tokens were cut: {self.decode(cut)!r}",
                        PromptTruncatedWarning,
                        stacklevel=2,
                    )
                ids = [*ids[: length - 1], self.eos_token_id]
            rows.append(ids + [self.pad_token_id] * (length - len(ids)))
        return torch.tensor(rows, dtype=torch.long).reshape(len(rows), length)

    def decode(self, ids: Sequence[int] | torch.Tensor, skip_special_tokens: bool = True) -> str:
        """Token ids -> text; word ends become spaces."""
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        special = {self.bos_token_id, self.eos_token_id} if skip_special_tokens else set()
        kept = [i for i in ids if i not in special]
        text = self._tok.decode(kept, skip_special_tokens=False)
        return text.replace(END_OF_WORD, " ").strip()
