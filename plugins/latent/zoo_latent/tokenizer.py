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
        self.bos_token, self.eos_token, self.unk_token = bos_token, eos_token, unk_token
        self.pad_token = pad_token if pad_token is not None else eos_token
        model = BPE(
            vocab=dict(vocab),
            merges=list(merges),
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
        self.bos_token_id = self.token_to_id(bos_token)
        self.eos_token_id = self.token_to_id(eos_token)
        self.pad_token_id = self.token_to_id(self.pad_token)

    # -- loading -------------------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike[str]) -> CLIPTokenizer:
        """Read a ``tokenizer/`` folder: vocab.json, merges.txt and (optional) tokenizer_config.json."""
        directory = Path(directory)
        missing = [n for n in (VOCAB_NAME, MERGES_NAME) if not (directory / n).is_file()]
        if missing:
            raise WeightsError(
                f"Tokenizer folder {directory} lacks {' and '.join(missing)}: a CLIP tokenizer needs vocab.json "
                "and merges.txt"
            )
        vocab = json.loads((directory / VOCAB_NAME).read_text(encoding="utf-8"))
        merges = read_merges(directory / MERGES_NAME)
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
        return cls(vocab, merges, **options)

    # -- vocabulary ----------------------------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size(with_added_tokens=True)

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
