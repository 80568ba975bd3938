"""Text tokenizer: a HF tokenizers tokenizer.json, byte-level BPE with CosyVoice 2's special tokens.

Small packs use a pure byte vocabulary (256 byte tokens, no merges): every UTF-8 byte is one token, so the
Python reference below encodes exactly like the HF tokenizers runtime in Java. Real packs carry the Qwen2.5
(CosyVoice-BlankEN) vocabulary and merges instead (export_cosyvoice2.py)."""
import json
import re
import unicodedata
from typing import Dict, List

# CosyVoice2Tokenizer's special tokens, in its order.
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|endofprompt|>", "[breath]", "<strong>",
                  "</strong>", "[noise]", "[laughter]", "[cough]", "[clucking]", "[accent]", "[quick_breath]",
                  "<laughter>", "</laughter>", "[hissing]", "[sigh]", "[vocalized-noise]", "[lipsmack]", "[mn]"]


def bytes_to_unicode() -> Dict[int, str]:
    """GPT-2's reversible byte -> printable character map used by the ByteLevel pre-tokenizer."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def added_token(i: int, content: str) -> dict:
    return {"id": i, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
            "normalized": False, "special": True}


def tokenizer_json(vocab: Dict[str, int], merges: List[str], specials: List[str]) -> dict:
    first = max(vocab.values()) + 1
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [added_token(first + i, s) for i, s in enumerate(specials)],
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": True},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": merges},
    }


def byte_level() -> dict:
    table = bytes_to_unicode()
    return tokenizer_json({table[b]: b for b in range(256)}, [], SPECIAL_TOKENS)


def write(doc: dict, path: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, indent=1, sort_keys=False)
        f.write("\n")


class ByteTokenizer:
    """Python twin of the byte-level tokenizer.json: NFC, special tokens matched first, then UTF-8 bytes."""

    def __init__(self):
        self.special = {s: 256 + i for i, s in enumerate(SPECIAL_TOKENS)}
        self.pattern = re.compile("(" + "|".join(re.escape(s) for s in sorted(SPECIAL_TOKENS, key=len, reverse=True)) + ")")

    @property
    def vocab_size(self) -> int:
        return 256 + len(SPECIAL_TOKENS)

    def encode(self, text: str) -> List[int]:
        ids: List[int] = []
        for part in self.pattern.split(unicodedata.normalize("NFC", text)):
            if part in self.special:
                ids.append(self.special[part])
            elif part:
                ids.extend(part.encode("utf-8"))
        return ids
