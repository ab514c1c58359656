"""A small CLIP-format BPE vocabulary learnt from a word list, for text encoders trained from scratch.

CLIP's vocabulary (``vocab.json`` + ``merges.txt``) has the 256 byte symbols, the same with the end-of-word mark
``</w>``, one symbol per merge and the start/end tokens. Learning the merges greedily on the caption vocabulary
(each word counted once, ties broken by the pair itself, so the result is a pure function of the word set) until
no pair is left makes every known word a single token, while any other text still encodes byte by byte. The
files load with ``CLIPTokenizer.from_pretrained`` like a published tokenizer.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable
from typing import Any

from zoo_latent.tokenizer import END_OF_WORD, CLIPTokenizer

BOS, EOS = "<|startoftext|>", "<|endoftext|>"


_PRINTABLE = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]


def byte_chars() -> list[str]:
    """GPT-2/CLIP's reversible byte map: the printable character standing for byte b, at index b."""
    out, extra = [], 0
    for b in range(256):
        if b in _PRINTABLE:
            out.append(chr(b))
        else:
            out.append(chr(256 + extra))
            extra += 1
    return out


def byte_symbols() -> list[str]:
    """The 256 byte symbols in CLIP's vocabulary order: printable bytes first, then the remapped ones."""
    chars = byte_chars()
    return [chars[b] for b in _PRINTABLE] + [chars[b] for b in range(256) if b not in _PRINTABLE]


def learn_merges(words: Iterable[str]) -> list[tuple[str, str]]:
    """BPE merges that turn every word of ``words`` (lower-cased, deduplicated) into one symbol."""
    byte_char = byte_chars()
    splits = {}
    for word in sorted({w.lower() for w in words if w}):
        symbols = [byte_char[b] for b in word.encode("utf-8")]
        symbols[-1] += END_OF_WORD
        splits[word] = symbols
    merges: list[tuple[str, str]] = []
    while True:
        pairs: collections.Counter[tuple[str, str]] = collections.Counter()
        for symbols in splits.values():
            pairs.update(zip(symbols, symbols[1:], strict=False))
        if not pairs:
            return merges
        best = max(pairs, key=lambda pair: (pairs[pair], pair))
        merges.append(best)
        for word, symbols in splits.items():
            merged, i = [], 0
            while i < len(symbols):
                if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
                    merged.append(symbols[i] + symbols[i + 1])
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            splits[word] = merged


def word_tokenizer(words: Iterable[str], max_length: int = 77) -> CLIPTokenizer:
    """A CLIP tokenizer whose vocabulary makes each of ``words`` one token (see the module docstring)."""
    merges = learn_merges(words)
    base = byte_symbols()
    symbols = base + [c + END_OF_WORD for c in base]
    for a, b in merges:
        if a + b not in symbols:
            symbols.append(a + b)
    symbols += [BOS, EOS]
    vocab = {s: i for i, s in enumerate(symbols)}
    return CLIPTokenizer(vocab, merges, max_length=max_length, bos_token=BOS, eos_token=EOS, pad_token=EOS)


def caption_words(dataset: Any, limit: int = 10_000) -> list[str]:
    """The words of a captioned dataset: from its vocabularies when it declares them (the shapes dataset), else
    from the captions of its first ``limit`` items."""
    from zoo_core.data.shapes import CAPTION_TEMPLATE

    if all(hasattr(dataset, k) for k in ("shapes", "colors", "backgrounds")):
        template = CAPTION_TEMPLATE.replace("{", " ").replace("}", " ").split()
        fixed = [w for w in template if w not in ("color", "shape")]
        return sorted({*fixed, "an", *dataset.shapes, *dataset.colors, *dataset.backgrounds})
    words: set[str] = set()
    for i in range(min(len(dataset), limit)):
        item = dataset[i]
        caption = item.get("caption") if isinstance(item, dict) else item[1]
        if not isinstance(caption, str):
            raise ValueError(
                "the dataset has no captions: a text-to-image model needs (image, caption) items"
            )
        words.update(caption.lower().replace(",", " ").replace(".", " ").split())
    return sorted(words)
