"""Text segmentation as CosyVoice 2's frontend does it before tokenizing (frontend_utils.split_paragraph with
token_max_n 80, token_min_n 60, merge_len 20, comma_split False, then punctuation-only segments dropped).
Each segment is synthesized on its own; the waveforms are concatenated in order. Text normalization
(wetext/ttsfrd, number spelling) is not part of the pack format and is not done here."""
import unicodedata
from typing import Callable, List

SENTENCE_END_ZH = ["。", "？", "！", "；", "：", "、", ".", "?", "!", ";"]
SENTENCE_END_EN = [".", "?", "!", ";", ":"]
CLOSING_QUOTES = ['"', "”"]


def is_chinese(text: str) -> bool:
    """CosyVoice's contains_chinese: any character in U+4E00..U+9FFF."""
    return any("\u4e00" <= c <= "\u9fff" for c in text)


def is_only_punctuation(text: str) -> bool:
    """True for a string made only of Unicode punctuation (P*) and symbols (S*), or an empty one."""
    return all(unicodedata.category(c)[0] in "PS" for c in text)


def split_paragraph(text: str, encode: Callable[[str], List[int]], lang: str, token_max_n: int = 80,
                    token_min_n: int = 60, merge_len: int = 20) -> List[str]:
    """Length is counted in characters for lang 'zh' and in text tokens (encode) otherwise."""
    def length(s: str) -> int:
        return len(s) if lang == "zh" else len(encode(s))

    ends = SENTENCE_END_ZH if lang == "zh" else SENTENCE_END_EN
    if not text:
        return []
    if text[-1] not in ends:
        text += "。" if lang == "zh" else "."
    sentences: List[str] = []
    start = 0
    for i, c in enumerate(text):
        if c in ends:
            if i > start:
                sentences.append(text[start:i] + c)
            if i + 1 < len(text) and text[i + 1] in CLOSING_QUOTES:
                if sentences:
                    sentences[-1] += text[i + 1]
                start = i + 2
            else:
                start = i + 1
    out: List[str] = []
    cur = ""
    for s in sentences:
        if length(cur + s) > token_max_n and length(cur) > token_min_n:
            out.append(cur)
            cur = ""
        cur += s
    if cur:
        if length(cur) < merge_len and out:
            out[-1] += cur
        else:
            out.append(cur)
    return out


def segments(text: str, encode: Callable[[str], List[int]], token_max_n: int = 80, token_min_n: int = 60,
             merge_len: int = 20) -> List[str]:
    """The synthesis segments of one request text, in order."""
    text = text.strip()
    lang = "zh" if is_chinese(text) else "en"
    parts = split_paragraph(text, encode, lang, token_max_n, token_min_n, merge_len)
    return [p for p in parts if not is_only_punctuation(p)]
