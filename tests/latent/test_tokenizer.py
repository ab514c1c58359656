"""The CLIP tokenizer: parity with transformers' CLIPTokenizer and with CLIP's own BPE algorithm on a small vocab."""

from __future__ import annotations

import re
import warnings

import pytest
import regex
import torch
from latent_helpers import bytes_to_unicode, learn_clip_bpe, write_tokenizer_folder
from zoo_latent.tokenizer import CLIPTokenizer, PromptTruncatedWarning

from zoo_core.errors import WeightsError

PROMPTS = [
    "a photo of a red cube on a blue background",
    "",
    "   ",
    "A Photo   OF a\tRED\ncube!!",
    "an astronaut riding a horse on the moon, highly detailed, 4k, trending on artstation",
    "it's a dog's life, isn't it? they're here; we've gone, I'll go, I'd say, I'm done",
    "photograph of 3 cats and 12 dogs in 1999 -- 'sharp focus' (masterpiece) [best quality] {detail}",
    "un café très crème à paris, naïve façade, über straße",
    "東京 タワー 😀 emoji ☃ snowman",
    "cafe\u0301 decomposed accent",  # NFC turns e + combining acute into é
    "zzqx unknownword xyzzy qwfp",
    "...,,,!!!???###$$$%%%",
    " ".join(["a small yellow triangle"] * 30),  # far beyond 77 tokens
    " ".join(str(i) for i in range(200)),
]


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    return write_tokenizer_folder(tmp_path_factory.mktemp("tok") / "tokenizer")


@pytest.fixture(scope="module")
def ours(tokenizer_dir):
    return CLIPTokenizer.from_pretrained(tokenizer_dir)


def clip_reference_bpe(text: str, vocab: dict[str, int], merges: list[tuple[str, str]]) -> list[int]:
    """CLIP's algorithm written out plainly (whitespace clean, lower, regex words, greedy lowest-rank merges)."""
    import unicodedata

    ranks = {pair: i for i, pair in enumerate(merges)}
    byte_map = bytes_to_unicode()
    text = re.sub(r"\s+", " ", unicodedata.normalize("NFC", text)).strip().lower()
    ids = [vocab["<|startoftext|>"]]
    pattern = r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"
    for word in regex.findall(pattern, text):
        symbols = [byte_map[b] for b in word.encode("utf-8")]
        symbols[-1] += "</w>"
        while len(symbols) > 1:
            pairs = [
                (ranks.get(p, 1 << 30), i) for i, p in enumerate(zip(symbols, symbols[1:], strict=False))
            ]
            rank, _ = min(pairs)
            if rank == 1 << 30:
                break
            first, second = merges[rank]
            merged, i = [], 0
            while i < len(symbols):
                if i + 1 < len(symbols) and symbols[i] == first and symbols[i + 1] == second:
                    merged.append(first + second)
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            symbols = merged
        ids += [vocab[s] for s in symbols]
    return [*ids, vocab["<|endoftext|>"]]


def test_matches_transformers_clip_tokenizer(tokenizer_dir, ours):
    from transformers import CLIPTokenizer as HFTokenizer

    ref = HFTokenizer.from_pretrained(str(tokenizer_dir))
    expected = ref(
        PROMPTS, padding="max_length", max_length=77, truncation=True, return_tensors="pt"
    ).input_ids
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PromptTruncatedWarning)
        got = ours(PROMPTS)
    assert got.dtype == torch.long and got.shape == (len(PROMPTS), 77)
    for prompt, row_ours, row_ref in zip(PROMPTS, got, expected, strict=True):
        assert row_ours.tolist() == row_ref.tolist(), prompt
    for prompt in PROMPTS:  # unpadded, untruncated ids too
        assert ours.encode(prompt) == ref(prompt).input_ids, prompt


def test_matches_clip_bpe_algorithm(ours):
    vocab, merges = learn_clip_bpe()
    for prompt in PROMPTS:
        assert ours.encode(prompt) == clip_reference_bpe(prompt, vocab, merges), prompt


def test_special_tokens_and_padding(ours):
    ids = ours("a red cube")[0].tolist()
    assert ids[0] == ours.bos_token_id == ours.token_to_id("<|startoftext|>")
    eos = ours.eos_token_id
    n = ids.index(eos)
    assert ids[n:] == [eos] * (77 - n)  # SD v1 pads with the end token
    assert ours.decode(ids) == "a red cube"
    assert ours("")[0, :2].tolist() == [ours.bos_token_id, eos]


def test_pad_token_from_config(tmp_path):
    tok = CLIPTokenizer.from_pretrained(
        write_tokenizer_folder(tmp_path / "tok", pad_token="!", max_length=20)
    )
    ids = tok("a red cube")[0].tolist()
    assert len(ids) == 20 and tok.max_length == 20
    bang = tok.token_to_id("!")
    assert tok.pad_token_id == bang
    n = ids.index(tok.eos_token_id)
    assert ids[n + 1 :] == [bang] * (19 - n)


def test_truncation_warns_with_count_and_keeps_end_token(ours):
    prompt = " ".join(["triangle"] * 100)
    full = ours.encode(prompt)
    with pytest.warns(PromptTruncatedWarning, match=rf"{len(full) - 77} tokens were cut") as record:
        ids = ours(prompt)[0].tolist()
    assert "triangle" in str(record[0].message)
    assert ids == [*full[:76], ours.eos_token_id]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ours("a short prompt")  # no warning when it fits


def test_missing_files_named(tmp_path):
    (tmp_path / "vocab.json").write_text("{}")
    with pytest.raises(WeightsError, match="vocab.json and merges.txt"):
        CLIPTokenizer.from_pretrained(tmp_path)


def test_added_tokens_are_whole_words(ours, tokenizer_dir):
    tok = CLIPTokenizer.from_pretrained(tokenizer_dir)
    (new_id,) = tok.add_tokens(["<sks>"])
    assert new_id == len(learn_clip_bpe()[0])
    ids = tok.encode("a photo of <sks> dog")
    assert new_id in ids and ids.count(new_id) == 1
    with pytest.raises(ValueError, match="already in the vocabulary"):
        tok.add_tokens(["<sks>"])


def test_save_and_reload_keeps_vocab_and_added_tokens(tokenizer_dir, tmp_path):
    tok = CLIPTokenizer.from_pretrained(tokenizer_dir)
    (new_id,) = tok.add_tokens(["<cat-toy>"])
    tok.save_pretrained(tmp_path / "saved")
    again = CLIPTokenizer.from_pretrained(tmp_path / "saved")
    assert again.token_to_id("<cat-toy>") == new_id
    for prompt in [*PROMPTS[:6], "a <cat-toy> on a table"]:
        assert again.encode(prompt) == tok.encode(prompt)


def test_reads_tokenizer_json_as_transformers_5_saves_it(tokenizer_dir, ours, tmp_path):
    from transformers import CLIPTokenizer as HFTokenizer

    HFTokenizer.from_pretrained(str(tokenizer_dir)).save_pretrained(str(tmp_path / "hf"))
    assert not (tmp_path / "hf" / "vocab.json").exists()  # only tokenizer.json
    again = CLIPTokenizer.from_pretrained(tmp_path / "hf")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PromptTruncatedWarning)
        assert torch.equal(again(PROMPTS), ours(PROMPTS))
