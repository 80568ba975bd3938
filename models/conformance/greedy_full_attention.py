#!/usr/bin/env python3
"""Greedy speech tokens of the conformance cases with the attention CosyVoice's pinned transformers (4.51.3) applies.

CosyVoice's Qwen2Encoder.forward_one_step passes `masks[:, -1, :]` as the attention mask: at a decode step that is a
[1, 1] all-ones mask while the cache holds every earlier position. transformers 4.51.3 (CosyVoice's
requirements.txt) sees an all-ones mask with one query and drops it (full causal attention). transformers >= 4.5x
pads a 2-D mask shorter than the keys with zeros (masking_utils.prepare_padding_mask), so the new token attends to
position 0 only; expected/expected.json's greedy tokens were computed that way (transformers 4.57.6). This script
runs CosyVoice 2's decoding loop (Qwen2LM.inference_wrapper: EOS masked below min_len, stop on 6561-6563, at most
max_len) on the conformance model with transformers' own Qwen2 and an explicit all-ones mask over every key, and
writes expected/greedy_full_attention.json. Run by hand (not in CI), in a venv with torch and transformers:

    VENV/bin/python models/conformance/greedy_full_attention.py
"""
import json
import os

import torch
import transformers
from transformers import Qwen2Config, Qwen2ForCausalLM

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cosyvoice2")
STOP = (6561, 6562, 6563)


@torch.inference_mode()
def decode(model, sd, case, fixture, full: bool):
    emb_llm, speech = sd["llm_embedding.weight"], sd["speech_embedding.weight"]
    w, b = sd["llm_decoder.weight"], sd["llm_decoder.bias"]
    text = torch.cat([fixture["prompt_text_ids"], fixture["text_ids"]], 1).long()
    x = torch.cat([emb_llm[0].view(1, 1, -1), model.model.embed_tokens(text), emb_llm[1].view(1, 1, -1),
                   speech[fixture["llm_prompt_speech_token"].long()]], 1)
    cache, out, seen = None, [], 0
    for i in range(case["max_len"]):
        seen += x.shape[1]
        mask = torch.ones(1, seen, dtype=torch.bool) if full else torch.ones(1, x.shape[1], dtype=torch.bool)
        o = model.model(inputs_embeds=x, attention_mask=mask, use_cache=True, past_key_values=cache,
                        output_hidden_states=True, return_dict=True)
        cache = o.past_key_values
        logp = (o.hidden_states[-1][:, -1] @ w.t() + b).log_softmax(-1)[0]
        if i < case["min_len"]:
            logp[6561] = -float("inf")
        top = int(logp.argmax())
        if top in STOP:
            break
        out.append(top)
        x = speech[top].view(1, 1, -1)
    return out


def main():
    torch.set_num_threads(1)
    exp = json.load(open(os.path.join(HERE, "expected", "expected.json")))
    cfg = Qwen2Config.from_pretrained(os.path.join(HERE, "model", "CosyVoice-BlankEN"))
    model = Qwen2ForCausalLM(cfg).eval()
    sd = torch.load(os.path.join(HERE, "model", "llm.pt"), map_location="cpu")
    model.load_state_dict({k[len("llm.model."):]: v for k, v in sd.items() if k.startswith("llm.model.")}, strict=False)
    result = {"transformers": transformers.__version__, "torch": torch.__version__, "note": __doc__.strip().split("\n\n")[1],
              "cases": {}}
    for case in exp["cases"]:
        fixture = torch.load(os.path.join(HERE, "expected", case["fixture"]))
        padded = decode(model, sd, case, fixture, full=False)
        if padded != case["speech_tokens"]:
            raise SystemExit(f"{case['id']}: the [1, 1] mask does not reproduce expected.json ({padded[:6]}...)")
        tokens = decode(model, sd, case, fixture, full=True)
        result["cases"][case["id"]] = {"speech_tokens": tokens, "min_len": case["min_len"], "max_len": case["max_len"]}
        print(f"{case['id']}: {len(tokens)} tokens with full attention; expected.json (mask padded): {len(padded)}")
    with open(os.path.join(HERE, "expected", "greedy_full_attention.json"), "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
