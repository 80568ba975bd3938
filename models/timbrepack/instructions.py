"""The instructions a pack declares in pack.json (`family`, `system_prompt`, `instructions`), per model family.

The service accepts `instruct` only from this list and builds the LLM's prompt from it (io.timbre.engine.PromptPlan):
CosyVoice 2: text + "<|endofprompt|>"; CosyVoice 3: system_prompt + " " + text + "<|endofprompt|>".

CosyVoice 3's list is upstream's fixed one (cosyvoice/utils/common.py, instruct_list: dialects, loud/soft, slow/fast,
emotions, role-play), each entry without its "You are a helpful assistant. " head and "<|endofprompt|>" tail.
CosyVoice 2 takes free-form instructions; its list holds the instructions of upstream's CosyVoice 2 example
(example.py: "用四川话说这句话") and the ones users report working in the same form (issue #1472: "用粤语说这句话"),
plus the same form for the other controls CosyVoice 3 lists. A deployment may edit a pack's list; the service reads it
at start.
"""

COSYVOICE3_SYSTEM_PROMPT = "You are a helpful assistant."

COSYVOICE2 = [
    ("sichuanese", "用四川话说这句话"),
    ("cantonese", "用粤语说这句话"),
    ("shanghainese", "用上海话说这句话"),
    ("tianjin", "用天津话说这句话"),
    ("happy", "用开心的语气说这句话"),
    ("sad", "用伤心的语气说这句话"),
    ("angry", "用生气的语气说这句话"),
    ("fast", "用尽可能快地语速说这句话"),
    ("slow", "用尽可能慢地语速说这句话"),
]

COSYVOICE3 = [
    ("cantonese", "请用广东话表达。"),
    ("northeastern", "请用东北话表达。"),
    ("gansu", "请用甘肃话表达。"),
    ("guizhou", "请用贵州话表达。"),
    ("henan", "请用河南话表达。"),
    ("hubei", "请用湖北话表达。"),
    ("hunan", "请用湖南话表达。"),
    ("jiangxi", "请用江西话表达。"),
    ("minnan", "请用闽南话表达。"),
    ("ningxia", "请用宁夏话表达。"),
    ("shanxi", "请用山西话表达。"),
    ("shaanxi", "请用陕西话表达。"),
    ("shandong", "请用山东话表达。"),
    ("shanghainese", "请用上海话表达。"),
    ("sichuanese", "请用四川话表达。"),
    ("tianjin", "请用天津话表达。"),
    ("yunnan", "请用云南话表达。"),
    ("loud", "Please say a sentence as loudly as possible."),
    ("soft", "Please say a sentence in a very soft voice."),
    ("slow", "请用尽可能慢地语速说一句话。"),
    ("fast", "请用尽可能快地语速说一句话。"),
    ("happy", "请非常开心地说一句话。"),
    ("sad", "请非常伤心地说一句话。"),
    ("angry", "请非常生气地说一句话。"),
    ("peppa-pig", "我想体验一下小猪佩奇风格，可以吗？"),
    ("robot", "你可以尝试用机器人的方式解答吗？"),
]


def declaration(family: str) -> dict:
    """The pack.json keys that declare `family`'s prompt: family, system_prompt (CosyVoice 3) and instructions."""
    if family == "cosyvoice2":
        return {"family": family, "instructions": [{"id": i, "text": t} for i, t in COSYVOICE2]}
    if family == "cosyvoice3":
        return {"family": family, "system_prompt": COSYVOICE3_SYSTEM_PROMPT,
                "instructions": [{"id": i, "text": t} for i, t in COSYVOICE3]}
    raise ValueError(f"unknown family {family!r} (cosyvoice2 or cosyvoice3)")
