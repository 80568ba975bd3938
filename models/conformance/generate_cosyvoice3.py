#!/usr/bin/env python3
"""Conformance fixtures for CosyVoice 3 (Fun-CosyVoice3-0.5B-2512), computed by CosyVoice's own code.

Run by hand, never in CI. It writes

  models/conformance/cosyvoice3/model/     a random-weight model directory in the layout of the Fun-CosyVoice3-0.5B
                                           release (cosyvoice3.yaml, llm.pt, flow.pt, hift.pt, campplus.onnx,
                                           speech_tokenizer_v3.onnx, CosyVoice-BlankEN/), with shrunk sizes;
  models/conformance/cosyvoice3/expected/  what CosyVoice's CosyVoice3 class computes on it: frontend features,
                                           greedy speech tokens, flow mel, HiFT waveform, text ids (one torch.save
                                           dict per case, plus expected.json).

It reuses the prompt WAVs of models/conformance/cosyvoice2/prompts/ and the environment, stubs and small ONNX
writers of generate_cosyvoice2.py (read that file's docstring: the same variables COSYVOICE_SRC ... TORCHAUDIO_SRC,
the same stubs, the same huggingface-hub version shim). CosyVoice 3 additionally needs:

  XTRANSFORMERS_SRC  lucidrains/x-transformers (its repository root, holding x_transformers/): the DiT imports
                     RotaryEmbedding and apply_rotary_pos_emb from it. x_transformers itself imports loguru, einx
                     and torch-einops-utils at import time: pip-install them in the venv (all three are in the
                     local mirror). No stub is needed for x_transformers.

Run:

  COSYVOICE_SRC=... MATCHA_SRC=... HYPERPYYAML_SRC=... DIFFUSERS_SRC=... WHISPER_SRC=... CONFORMER_SRC=... \\
  INFLECT_SRC=... TORCHAUDIO_SRC=... XTRANSFORMERS_SRC=... \\
  VENV/bin/python models/conformance/generate_cosyvoice3.py [--stage model|expected|all]

The model
---------
cosyvoice3.yaml is CosyVoice's own examples/libritts/cosyvoice3/conf/cosyvoice3.yaml (read from COSYVOICE_SRC at
generation time, not stored here) with these sizes replaced: llm_input/output_size 896 -> 32, the pre-lookahead
layer's channels 1024 -> 64, DiT dim 1024 -> 64, depth 22 -> 2, heads 16 -> 4, dim_head 64 -> 16, HiFT
base_channels 512 -> 32, F0 predictor cond_channels 512 -> 32. Every class, tag and other value is upstream's.

The text vocabulary has the release's layout: CosyVoice3LM.inference asserts that token 151646 (<|endofprompt|>)
is in the text, so vocab.json holds 151643 entries (640 trained byte-level BPE tokens, then unreachable filler
entries `<unused_N>` that no merge produces), <|endoftext|> / <|im_start|> / <|im_end|> are 151643-151645, and
CosyVoice3Tokenizer adds <|endofprompt|> = 151646 onwards as the release does. The Qwen2 embedding has the
release's 151936 rows (hidden 32); rows of the filler ids are 0, so the files compress.

speech_tokenizer_v3.onnx cannot be produced in its real graph form here (no weights, and the graph is not public
code): it is a small random FSQ model with the signature CosyVoice feeds (inputs by position: float32
[1, 128, T], int32 [1]; output int64 [1, N], 25 tokens/s, ids < 6561), the same writer as v2's.

Deviations from CosyVoice's code path (each also in expected.json)
------------------------------------------------------------------
  * Greedy decoding: `model.llm.sampling` replaced by argmax (as for CosyVoice 2). Everything around it is
    CosyVoice's: CosyVoice3LM.inference builds [speech_embedding[6561] (sos), text, speech_embedding[6563]
    (task_id), prompt speech]; sampling_ids masks 6561 below min_len; any of 6561..6760 stops.
  * Causal HiFT's fixed random buffers: upstream draws SineGen2.rand_ini (1x9), SineGen2.sine_waves
    (1 x 300*24000 x 9) and SourceModuleHnNSF.uv (1 x 300*24000 x 1) from the global RNG while the yaml is being
    built, so their values depend on everything constructed before (and on transformers' initialisation). They are
    replaced, after construction, by Timbre's documented draws (timbrepack.cosyvoice3.source_buffers: three
    torch.Generator seeds, torch.rand), the same values Timbre's exporter puts into hift.pt. Shorter than upstream's
    300 s (HIFT_SOURCE_SECONDS), which only bounds the longest vocoder call.
  * Greedy tokens also under full attention (expected/greedy_full_attention.json): CosyVoice's forward_one_step
    passes a [1, 1] mask that transformers 4.57 pads with zeros (see greedy_full_attention.py for CosyVoice 2);
    the fixture's own tokens are CosyVoice's as run here, the json holds the tokens with an all-ones mask.
  * No ttsfrd/wetext: CosyVoice's fallback text normalization. CPU, fp32.
"""
import argparse
import importlib.util
import json
import os

import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..'))
_spec = importlib.util.spec_from_file_location('gen2', os.path.join(HERE, 'generate_cosyvoice2.py'))
gen2 = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gen2)

ROOT = os.path.join(HERE, 'cosyvoice3')
MODEL = os.path.join(ROOT, 'model')
EXPECTED = os.path.join(ROOT, 'expected')
PROMPTS = gen2.PROMPTS

SEED = 20261130
HIFT_SOURCE_SECONDS = 20
N_TEXT_VOCAB = 640
BASE_VOCAB = 151643           # Qwen2.5's BPE vocabulary size: <|endoftext|> is 151643 in the release
EMBED_ROWS = 151936           # Qwen2.5-0.5B's embedding rows
QWEN = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)
EOS_WEIGHT = 150.0
EOS_CHANNEL = 0               # a residual channel held constant so that the bias-free llm_decoder can favour eos
RAW_TEXT_CASES = {'en_cmu'}    # run with text_frontend=False
SYSTEM = 'You are a helpful assistant.<|endofprompt|>'

SIZE_EDITS = [
    ('llm_input_size: 896', 'llm_input_size: {h}'),
    ('llm_output_size: 896', 'llm_output_size: {h}'),
    ('        channels: 1024\n', '        channels: 64\n'),
    ('            dim: 1024\n', '            dim: 64\n'),
    ('            depth: 22\n', '            depth: 2\n'),
    ('            heads: 16\n', '            heads: 4\n'),
    ('            dim_head: 64\n', '            dim_head: 16\n'),
    ('    base_channels: 512\n', '    base_channels: 32\n'),
    ('        cond_channels: 512\n', '        cond_channels: 32\n'),
]

PROMPT_CASES = [
    # id, wav, transcript: CosyVoice 3 prompt texts carry the system prompt (upstream asserts <|endofprompt|>)
    ('en16k', 'prompt_en_16k.wav',
     SYSTEM + 'This is a short voice prompt, recorded for the conformance test of the speaker features.'),
    ('zh48k', 'prompt_zh_48k.wav', SYSTEM + '这是一段测试用的提示语音。'),
]
# id, kind, prompt id, text, instruct text (instruct2 only)
TEXT_CASES = [
    ('en_hello', 'zero_shot', 'en16k', 'Hello world, this is a conformance test.', None),
    ('zh_weather', 'zero_shot', 'zh48k', '你好，世界。今天天气很好。', None),
    # inline pinyin, as upstream's example.py (hotfix usage) writes it
    ('zh_pinyin', 'zero_shot', 'zh48k', '高管也通过电话、短信、微信等方式对报道[j][ǐ]予好评。', None),
    # inline CMU phonemes (CosyVoice3Tokenizer's [AA0]..[ZH] tokens)
    # (text_frontend=False: CosyVoice's fallback English normalization spells digits out, [AY0] -> [AYzero])
    ('en_cmu', 'zero_shot', 'en16k', 'Please read [M][AY0][N][UW1][T] slowly.', None),
    # instruct2, as upstream's example.py writes it
    ('zh_instruct', 'instruct2', 'zh48k', '好少咯，一般系放嗰啲国庆啊，中秋嗰啲可能会咯。',
     'You are a helpful assistant. 请用广东话表达。<|endofprompt|>'),
]


def write_tokenizer(blank):
    """gen2's byte-level BPE, padded to Qwen2.5's 151643 entries with unreachable filler tokens."""
    gen2.N_TEXT_VOCAB = N_TEXT_VOCAB
    n = gen2.write_tokenizer(blank) - len(gen2.QWEN_SPECIALS)
    with open(os.path.join(blank, 'vocab.json')) as f:
        vocab = json.load(f)
    assert len(vocab) == n
    for i in range(n, BASE_VOCAB):
        vocab[f'<unused_{i}>'] = i
    with open(os.path.join(blank, 'vocab.json'), 'w') as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(os.path.join(blank, 'tokenizer_config.json')) as f:
        cfg = json.load(f)
    cfg['added_tokens_decoder'] = {str(BASE_VOCAB + i): v for i, v in enumerate(cfg['added_tokens_decoder'].values())}
    with open(os.path.join(blank, 'tokenizer_config.json'), 'w') as f:
        json.dump(cfg, f, indent=2, ensure_ascii=False)
        f.write('\n')
    return n


def build_model():
    import torch
    import transformers
    from hyperpyyaml import load_hyperpyyaml
    from timbrepack import cosyvoice3 as cv3
    os.makedirs(MODEL, exist_ok=True)
    blank = os.path.join(MODEL, 'CosyVoice-BlankEN')
    n_bpe = write_tokenizer(blank)
    torch.manual_seed(SEED)
    cfg = transformers.Qwen2Config(
        vocab_size=EMBED_ROWS, max_position_embeddings=32768, rope_theta=1000000.0, rms_norm_eps=1e-6,
        tie_word_embeddings=True, use_sliding_window=False, sliding_window=32768,
        max_window_layers=QWEN['num_hidden_layers'], bos_token_id=BASE_VOCAB, eos_token_id=BASE_VOCAB,
        hidden_act='silu', attention_dropout=0.0, torch_dtype='float32', initializer_range=0.3, use_cache=True, **QWEN)
    qwen = transformers.Qwen2ForCausalLM(cfg)
    with torch.no_grad():
        qwen.model.embed_tokens.weight[n_bpe:BASE_VOCAB] = 0.0
    gen2.quantize_(qwen, 2 ** -8)
    qwen.save_pretrained(blank, safe_serialization=True)
    with open(os.path.join(os.environ['COSYVOICE_SRC'], 'examples/libritts/cosyvoice3/conf/cosyvoice3.yaml')) as f:
        text = f.read()
    for old, new in SIZE_EDITS:
        assert text.count(old) == 1, f'cosyvoice3.yaml: {old!r} occurs {text.count(old)} times'
        text = text.replace(old, new.format(h=QWEN['hidden_size']))
    header = ('# Random-weight CosyVoice 3 model for Timbre\'s conformance fixtures: CosyVoice\'s\n'
              '# examples/libritts/cosyvoice3/conf/cosyvoice3.yaml with shrunk sizes. NOT a speaking model.\n'
              '# Written by models/conformance/generate_cosyvoice3.py.\n')
    with open(os.path.join(MODEL, 'cosyvoice3.yaml'), 'w') as f:
        f.write(header + text)
    with open(os.path.join(MODEL, 'cosyvoice3.yaml')) as f:
        configs = load_hyperpyyaml(f, overrides={'qwen_pretrain_path': blank})
    llm, flow, hift = configs['llm'], configs['flow'], configs['hift']
    torch.manual_seed(SEED + 1)
    h = QWEN['hidden_size']
    with torch.no_grad():
        llm.llm_decoder.weight.normal_(0, 0.5)
        llm.speech_embedding.weight.normal_(0, 0.15)
        # CosyVoice3's llm_decoder has no bias: a residual channel held at a constant plays its part, so that eos
        # (6561) wins as soon as it is allowed and 6562..6760 never do. The channel is kept out of every layer's
        # input (its input/post-attention norm weights are 0) and no layer writes to it (rows of o_proj/down_proj
        # are 0), so the transformer sees only the other channels; only the final norm and llm_decoder read it.
        qm = llm.llm.model.model
        emb = qm.embed_tokens.weight
        emb[:, EOS_CHANNEL] = torch.where(emb.abs().sum(1) != 0, torch.ones_like(emb[:, EOS_CHANNEL]),
                                          torch.zeros_like(emb[:, EOS_CHANNEL]))
        llm.speech_embedding.weight[:, EOS_CHANNEL] = 1.0
        for layer in qm.layers:
            layer.input_layernorm.weight[EOS_CHANNEL] = 0.0
            layer.post_attention_layernorm.weight[EOS_CHANNEL] = 0.0
            layer.self_attn.o_proj.weight[EOS_CHANNEL] = 0.0
            layer.mlp.down_proj.weight[EOS_CHANNEL] = 0.0
        llm.llm_decoder.weight[:, EOS_CHANNEL] = 0.0
        llm.llm_decoder.weight[6561] = 0.0
        llm.llm_decoder.weight[6561, EOS_CHANNEL] = EOS_WEIGHT
        llm.llm_decoder.weight[6562:, EOS_CHANNEL] = -EOS_WEIGHT
    gen2.quantize_(llm.llm, 2 ** -8)
    for m in (llm.speech_embedding, llm.llm_decoder):
        gen2.quantize_(m, 2 ** -4)
    gen2.quantize_(flow, 2 ** -7)
    gen2.quantize_(hift, 2 ** -10)
    assert h == llm.llm_input_size
    torch.save(llm.state_dict(), os.path.join(MODEL, 'llm.pt'))
    torch.save(flow.state_dict(), os.path.join(MODEL, 'flow.pt'))
    torch.save(hift.state_dict(), os.path.join(MODEL, 'hift.pt'))
    gen2.write_campplus(os.path.join(MODEL, 'campplus.onnx'))
    gen2.write_speech_tokenizer(os.path.join(MODEL, 'speech_tokenizer_v3.onnx'))
    del cv3


def set_source_buffers(hift):
    from timbrepack import cosyvoice3 as cv3
    rand_ini, sine_waves, uv = cv3.source_buffers(HIFT_SOURCE_SECONDS * 24000, hift.nb_harmonics + 1)
    hift.m_source.l_sin_gen.rand_ini = rand_ini
    hift.m_source.l_sin_gen.sine_waves = sine_waves
    hift.m_source.uv = uv


def full_attention_tokens(cosy, mi, min_len, max_len):
    """CosyVoice3LM's decoding loop with an all-ones attention mask over every cached position."""
    import torch
    llm = cosy.model.llm
    qwen = llm.llm.model
    text = torch.cat([mi['prompt_text'], mi['text']], 1).long()
    speech = mi.get('llm_prompt_speech_token', torch.zeros(1, 0, dtype=torch.int32)).long()
    w = llm.speech_embedding.weight
    x = torch.cat([w[6561].view(1, 1, -1), qwen.model.embed_tokens(text), w[6563].view(1, 1, -1),
                   llm.speech_embedding(speech)], 1)
    cache, out, seen = None, [], 0
    with torch.inference_mode():
        for i in range(max_len):
            seen += x.shape[1]
            o = qwen(inputs_embeds=x, attention_mask=torch.ones(1, seen, dtype=torch.bool), use_cache=True,
                     past_key_values=cache, output_hidden_states=True, return_dict=True)
            cache = o.past_key_values
            logp = llm.llm_decoder(o.hidden_states[-1][:, -1]).log_softmax(-1)[0]
            if i < min_len:
                logp[6561] = -float('inf')
            top = int(logp.argmax())
            if 6561 <= top < 6761:
                break
            out.append(top)
            x = w[top].view(1, 1, -1)
    return out


def compute_expected():
    import soundfile
    import torch
    from cosyvoice.cli.cosyvoice import CosyVoice3
    os.makedirs(EXPECTED, exist_ok=True)
    t0 = time.time()
    cosy = CosyVoice3(MODEL, load_trt=False, load_vllm=False, fp16=False)
    t_load = time.time() - t0
    fe, model = cosy.frontend, cosy.model
    set_source_buffers(model.hift)
    out = {'format': 'timbre-conformance/1', 'model': 'cosyvoice3', 'prompts': [], 'cases': []}
    margins = []

    def greedy(weighted_scores, decoded_tokens, sampling):
        top2 = torch.topk(weighted_scores, 2)
        margins.append(float(top2.values[0] - top2.values[1]))
        return int(weighted_scores.argmax())

    model.llm.sampling = greedy
    for pid, wav, ptext in PROMPT_CASES:
        wav_path = os.path.join(PROMPTS, wav)
        assert cosy.add_zero_shot_spk(ptext, wav_path, pid)
        entry = fe.spk2info[pid]
        fname = f'prompt_{pid}.pt'
        torch.save({k: v.detach().cpu().contiguous() for k, v in entry.items()}, os.path.join(EXPECTED, fname))
        info = soundfile.info(wav_path)
        out['prompts'].append({
            'id': pid, 'prompt_wav': f'../../cosyvoice2/prompts/{wav}', 'sample_rate': info.samplerate,
            'frames': info.frames, 'prompt_text': ptext, 'fixture': fname,
            'tensors': {k: {'shape': list(v.shape), 'dtype': str(v.dtype).replace('torch.', '')} for k, v in entry.items()},
        })

    captured = {}
    orig_fz, orig_fi, orig_flow, orig_hift = (fe.frontend_zero_shot, fe.frontend_instruct2, model.flow.inference,
                                              model.hift.inference)

    def keep(r):
        captured['model_input'] = {kk: vv.detach().cpu().clone() for kk, vv in r.items() if torch.is_tensor(vv)}
        return r

    def flow_inf(**k):
        mel, cache = orig_flow(**k)
        captured['flow_in'] = {kk: (vv.detach().cpu().clone() if torch.is_tensor(vv) else vv) for kk, vv in k.items()}
        captured['mel'] = mel.detach().cpu().clone()
        return mel, cache

    def hift_inf(speech_feat, finalize=True):
        captured['hift_in'] = speech_feat.detach().cpu().clone()
        speech, source = orig_hift(speech_feat=speech_feat, finalize=finalize)
        captured['wav'] = speech.detach().cpu().clone()
        captured['source'] = source.detach().cpu().clone()
        return speech, source

    fe.frontend_zero_shot = lambda *a, **k: keep(orig_fz(*a, **k))
    fe.frontend_instruct2 = lambda *a, **k: keep(orig_fi(*a, **k))
    model.flow.inference, model.hift.inference = flow_inf, hift_inf
    prompts = {p[0]: p for p in PROMPT_CASES}
    full = {}
    for cid, kind, pid, text, instruct in TEXT_CASES:
        _, wav, ptext = prompts[pid]
        wav_path = os.path.join(PROMPTS, wav)
        tf = cid not in RAW_TEXT_CASES
        norm_text = fe.text_normalize(text, split=True, text_frontend=tf)
        assert len(norm_text) == 1, f'{cid}: expected one segment, got {norm_text}'
        captured.clear()
        margins.clear()
        t1 = time.time()
        if kind == 'zero_shot':
            norm_prompt = fe.text_normalize(ptext, split=False, text_frontend=tf)
            outputs = list(cosy.inference_zero_shot(text, ptext, wav_path, stream=False, speed=1.0, text_frontend=tf))
        else:
            norm_prompt = instruct
            outputs = list(cosy.inference_instruct2(text, instruct, wav_path, stream=False, speed=1.0,
                                                    text_frontend=True))
        dt = time.time() - t1
        assert len(outputs) == 1
        mi = captured['model_input']
        tokens = captured['flow_in']['token'].to(torch.int32)
        n_text = int(mi['text_len'][0])
        min_len, max_len = int(n_text * 2), int(n_text * 20)
        stop = 'max_len' if tokens.shape[1] == max_len else 'stop_token'
        assert torch.equal(outputs[0]['tts_speech'], captured['wav'])
        llm_prompt = mi.get('llm_prompt_speech_token', torch.zeros(1, 0, dtype=torch.int32))
        full_tokens = full_attention_tokens(cosy, mi, min_len, max_len)
        full[cid] = {'speech_tokens': full_tokens, 'min_len': min_len, 'max_len': max_len}
        tensors = {
            'text_ids': mi['text'].to(torch.int32),
            'prompt_text_ids': mi['prompt_text'].to(torch.int32),
            'llm_prompt_speech_token': llm_prompt.to(torch.int32),
            'flow_prompt_speech_token': mi['flow_prompt_speech_token'].to(torch.int32),
            'prompt_speech_feat': mi['prompt_speech_feat'].float(),
            'embedding': mi['flow_embedding'].float(),
            'speech_tokens': tokens.contiguous(),
            'speech_tokens_full_attention': torch.tensor([full_tokens], dtype=torch.int32),
            'mel': captured['mel'].float().contiguous(),
            'wav': captured['wav'].float().contiguous(),
            'hift_source': captured['source'].float().contiguous(),
            'greedy_margin': torch.tensor(margins, dtype=torch.float32),
        }
        fname = f'case_{cid}.pt'
        torch.save(tensors, os.path.join(EXPECTED, fname))
        out['cases'].append({
            'id': cid, 'kind': kind, 'prompt': pid, 'text': text, 'prompt_text': ptext, 'instruct_text': instruct,
            'text_frontend': tf, 'normalized_text': norm_text[0], 'normalized_prompt_text': norm_prompt,
            'text_ids': mi['text'][0].tolist(), 'prompt_text_ids': mi['prompt_text'][0].tolist(),
            'llm_prompt_speech_tokens': llm_prompt.shape[1],
            'speech_tokens': tokens[0].tolist(), 'speech_tokens_full_attention': full_tokens,
            'min_len': min_len, 'max_len': max_len, 'ended_by': stop,
            'greedy_margin_min': min(margins), 'greedy_steps': len(margins), 'fixture': fname, 'seconds': round(dt, 2),
            'tensors': {k: {'shape': list(v.shape), 'dtype': str(v.dtype).replace('torch.', '')} for k, v in tensors.items()},
            'wav_stats': {'max_abs': float(captured['wav'].abs().max()), 'rms': float(captured['wav'].pow(2).mean().sqrt())},
            'mel_stats': {'min': float(captured['mel'].min()), 'max': float(captured['mel'].max())},
        })
        print(f'{cid}: text {n_text} ids, {tokens.shape[1]} tokens ({stop}), full-attention {len(full_tokens)}, '
              f'mel {list(captured["mel"].shape)}, wav {list(captured["wav"].shape)}, {dt:.1f}s', flush=True)

    tok = fe.tokenizer
    tok_texts = [c[3] for c in TEXT_CASES] + [p[2] for p in PROMPT_CASES] + [
        c[4] for c in TEXT_CASES if c[4]] + ['<|endofprompt|>[breath]Hello<strong>world</strong>', '',
                                             '[j][ǐ][AH0]<|endofsystem|>', '混合 mixed 文本 text']
    out['tokenizer'] = {
        'class': type(tok.tokenizer).__name__, 'len': len(tok.tokenizer),
        'special_tokens': {t: tok.tokenizer.convert_tokens_to_ids(t)
                           for t in gen2.QWEN_SPECIALS + tok.special_tokens['additional_special_tokens']},
        'encodings': [{'text': t, 'ids': tok.encode(t)} for t in tok_texts],
    }
    out['text_frontend'] = fe.text_frontend or 'none (neither ttsfrd nor wetext installed: CosyVoice\'s fallback)'
    out['timing_seconds'] = {'load': round(t_load, 2)}
    out['silent_tokens'] = list(model.silent_tokens)
    with open(os.path.join(EXPECTED, 'greedy_full_attention.json'), 'w') as f:
        json.dump({'note': 'CosyVoice3LM greedy decoding with an all-ones attention mask over every cached position '
                           '(generate_cosyvoice3.py full_attention_tokens)', 'cases': full}, f, indent=1)
        f.write('\n')
    return out


# Streamed cases: (id, prompt id, number of speech tokens, token seed), fed to CosyVoice3Model.tts(stream=True) in
# place of the LLM (see compute_streamed). With the prompts' 143 / 107 tokens: s_en200 (pad 7) -> hops 32, 50, 100
# and an 18-token flush; s_zh60 (pad 18) -> one 43-token hop and a 17-token flush.
STREAM_CASES = [('s_en200', 'en16k', 200, 31), ('s_zh60', 'zh48k', 60, 32)]


def compute_streamed():
    """CosyVoice 3's own chunked streaming on the committed model directory: for each STREAM_CASES entry a FRESH
    CosyVoice3Model (upstream keeps the hop length on the model object and grows it per hop; a fresh one starts at
    25 as a first request does) runs tts(stream=True) with the prompt's spk2info features; its LLM thread is replaced
    by one that appends the case's tokens at once and ends (token2wav, the flow and the causal HiFT are upstream's
    own). Records every flow call (tokens in, streaming, finalize, its mel after token_offset) and every HiFT call
    (mel frames, finalize, samples), the emitted chunks, and the non-streamed output of the same tokens (a fresh
    model, stream=False). Writes expected/stream_<id>.pt and expected/streamed.json; other fixtures are untouched."""
    import torch
    from cosyvoice.cli.cosyvoice import CosyVoice3
    from cosyvoice.cli.model import CosyVoice3Model
    cosy = CosyVoice3(MODEL, load_trt=False, load_vllm=False, fp16=False)
    base = cosy.model
    set_source_buffers(base.hift)
    out = {'format': 'timbre-conformance-streamed/1', 'model': 'cosyvoice3', 'cases': []}
    pre = base.flow.pre_lookahead_len

    def run(spk, tokens, stream):
        m = CosyVoice3Model(base.llm, base.flow, base.hift, False)
        flow_calls, hift_calls = [], []
        orig_flow, orig_hift = m.flow.inference, m.hift.inference

        def flow_inf(**k):
            mel, cache = orig_flow(**k)
            flow_calls.append({'tokens': int(k['token'].shape[1]), 'streaming': bool(k['streaming']),
                               'finalize': bool(k['finalize']), 'mel': mel.detach().cpu().clone()})
            return mel, cache

        def hift_inf(speech_feat, finalize=True):
            speech, source = orig_hift(speech_feat=speech_feat, finalize=finalize)
            hift_calls.append({'mel_frames': int(speech_feat.shape[2]), 'finalize': bool(finalize),
                               'samples': int(speech.shape[1])})
            return speech, source

        def llm_job(text, prompt_text, llm_prompt_speech_token, llm_embedding, uuid):
            m.tts_speech_token_dict[uuid].extend(tokens)
            m.llm_end_dict[uuid] = True

        m.flow.inference, m.hift.inference, m.llm_job = flow_inf, hift_inf, llm_job
        try:
            chunks = [o['tts_speech'].detach().cpu().clone() for o in m.tts(
                text=torch.zeros(1, 1, dtype=torch.int32), flow_embedding=spk['flow_embedding'],
                llm_embedding=spk['llm_embedding'], prompt_text=spk['prompt_text'],
                llm_prompt_speech_token=spk['llm_prompt_speech_token'],
                flow_prompt_speech_token=spk['flow_prompt_speech_token'],
                prompt_speech_feat=spk['prompt_speech_feat'], stream=stream)]
        finally:
            del m.flow.inference, m.hift.inference
        return chunks, flow_calls, hift_calls

    for cid, pid, n, seed in STREAM_CASES:
        spk = torch.load(os.path.join(EXPECTED, f'prompt_{pid}.pt'))
        g = torch.Generator().manual_seed(seed)
        tokens = torch.randint(0, 6561, (n,), generator=g).tolist()
        chunks, calls, hifts = run(spk, tokens, True)
        whole, _, _ = run(spk, tokens, False)
        wav = torch.cat(chunks, dim=1)
        ref = whole[0]
        assert wav.shape == ref.shape, (wav.shape, ref.shape)
        assert len(calls) == len(hifts) == len(chunks)
        mels, hops = [], []
        offset = 0
        for c, h, ch in zip(calls, hifts, chunks):
            used = c['tokens'] - (0 if c['finalize'] else pre)
            new = c['mel'][:, :, offset * 2:]
            mels.append(new)
            hops.append({'offset': offset, 'tokens_in': c['tokens'], 'hop': used - offset, 'streaming': c['streaming'],
                         'finalize': c['finalize'], 'mel_frames': int(new.shape[2]),
                         'vocoder_mel_frames': h['mel_frames'], 'vocoder_finalize': h['finalize'],
                         'vocoder_samples': h['samples'], 'emitted_samples': int(ch.shape[1])})
            offset = used
        lengths = [int(c.shape[1]) for c in chunks]
        diff = (wav - ref)[0]
        tensors = {'prompt_text': spk['prompt_text'].to(torch.int32),
                   'flow_prompt_speech_token': spk['flow_prompt_speech_token'].to(torch.int32),
                   'prompt_speech_feat': spk['prompt_speech_feat'].float(), 'embedding': spk['flow_embedding'].float(),
                   'speech_tokens': torch.tensor([tokens], dtype=torch.int32),
                   'hop_mel': torch.cat(mels, dim=2).float().contiguous(),
                   'wav': wav.float().contiguous(),
                   'chunk_samples': torch.tensor(lengths, dtype=torch.int64)}
        fname = f'stream_{cid}.pt'
        torch.save(tensors, os.path.join(EXPECTED, fname))
        bounds = [sum(lengths[:i + 1]) for i in range(len(lengths) - 1)]
        out['cases'].append({
            'id': cid, 'prompt': pid, 'prompt_tokens': int(spk['flow_prompt_speech_token'].shape[1]),
            'speech_tokens': n, 'token_seed': seed, 'fixture': fname, 'hops': hops, 'chunk_samples': lengths,
            'seams': bounds,
            'non_streamed_vs_streamed': {
                'max_abs': float(diff.abs().max()), 'rms': float(diff.pow(2).mean().sqrt()),
                'rms_of_non_streamed': float(ref.pow(2).mean().sqrt()),
                'rms_first_hop_region': float(diff[:bounds[0]].pow(2).mean().sqrt()) if bounds else None},
            'tensors': {k: {'shape': list(v.shape), 'dtype': str(v.dtype).replace('torch.', '')} for k, v in tensors.items()},
        })
        print(f'{cid}: {n} tokens, hops {[h["hop"] for h in hops]}, chunks {lengths}, '
              f'|stream - non-stream| max {float(diff.abs().max()):.3g}', flush=True)
    out['upstream'] = {
        'cosyvoice_commit': gen2.git_head('COSYVOICE_SRC'),
        'history': {'cosyvoice/cli/model.py': gen2.git_log('COSYVOICE_SRC', 'cosyvoice/cli/model.py')},
        'behaviour': ('CosyVoice3Model.tts (CosyVoice2Model.tts, stream=True): token_hop_len 25 (grown x2 per hop to 100 '
                      'on the model object), first hop + ceil(prompt/25)*25 - prompt, a hop needs hop + 3 tokens; '
                      'CosyVoice3Model.token2wav(stream=True, finalize=False) per hop: the flow over prompt + all tokens '
                      'so far with DiT chunk masks (static_chunk_size 50 frames), the last 3 tokens the pre-lookahead '
                      'context; mel kept from token_offset * 2 and appended to the whole mel so far; the causal HiFT '
                      're-run over all of it with finalize=False (drops the F0 predictor\'s 3 and conv_pre\'s 4 '
                      'look-ahead frames and the last 480 samples); output from speech_offset on. The flush: '
                      'token2wav(finalize=True) without stream (streaming=False), HiFT finalize=True. No cross-fade, '
                      'no source cache.')}
    out['deviations'] = ['causal HiFT source buffers (rand_ini, sine_waves, uv) replaced by '
                         'timbrepack.cosyvoice3.source_buffers (as in expected.json)',
                         'the LLM thread replaced by one that appends the case\'s seeded random tokens at once']
    files = {}
    for cs in out['cases']:
        p = os.path.join(EXPECTED, cs['fixture'])
        files[cs['fixture']] = {'sha256': gen2.sha256(p), 'bytes': os.path.getsize(p)}
    out['files'] = files
    with open(os.path.join(EXPECTED, 'streamed.json'), 'w') as f:
        json.dump(out, f, indent=1, ensure_ascii=False)
        f.write('\n')


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--stage', choices=['model', 'expected', 'streamed', 'all'], default='all')
    args = ap.parse_args()
    if not os.environ.get('XTRANSFORMERS_SRC'):
        sys.exit('error: XTRANSFORMERS_SRC must name a lucidrains/x-transformers checkout')
    gen2.SOURCES.append('XTRANSFORMERS_SRC')
    gen2.bootstrap()
    import torch
    torch.set_num_threads(1)
    t0 = time.time()
    if args.stage in ('model', 'all'):
        build_model()
        print(f'model written in {time.time() - t0:.1f}s', flush=True)
    if args.stage in ('expected', 'all'):
        t1 = time.time()
        out = compute_expected()
        out['timing_seconds']['expected_total'] = round(time.time() - t1, 2)
        out['seeds'] = {'model': SEED, 'hift_source_buffers': 'timbrepack.cosyvoice3.source_buffers',
                        'hift_source_seconds': HIFT_SOURCE_SECONDS, 'yaml_seeds': 1986,
                        'flow_rand_noise': 'CausalConditionalCFM: set_all_random_seed(0)'}
        out['decoding'] = ('greedy: CosyVoice3LM.sampling replaced by argmax over CosyVoice\'s own logp; min_len/max_len, '
                           'the eos mask below min_len and the stop ids 6561..6760 are CosyVoice\'s.')
        out['deviations'] = [
            'greedy decoding instead of ras_sampling',
            'causal HiFT source buffers (rand_ini, sine_waves, uv) replaced by timbrepack.cosyvoice3.source_buffers',
            'no ttsfrd/wetext: CosyVoice\'s own fallback text normalization',
            'CPU, fp32; torchaudio Python parts from TORCHAUDIO_SRC with a soundfile-based torchaudio.load stub',
            'omegaconf.DictConfig stub (attribute dict) for cfm_params',
        ]
        out['upstream'] = {
            'cosyvoice_commit': gen2.git_head('COSYVOICE_SRC'),
            'x_transformers_commit': gen2.git_head('XTRANSFORMERS_SRC'),
            'versions': {m: gen2._md.version(m) for m in ['torch', 'transformers', 'tokenizers', 'onnxruntime', 'numpy']},
        }
        files = {}
        for base in (MODEL, EXPECTED):
            for dp, _, fns in os.walk(base):
                for fn in sorted(fns):
                    p = os.path.join(dp, fn)
                    if fn == 'expected.json' or fn == 'streamed.json' or fn.startswith('stream_'):
                        continue      # the streamed stage's files are listed in streamed.json
                    files[os.path.relpath(p, ROOT)] = {'sha256': gen2.sha256(p), 'bytes': os.path.getsize(p)}
        out['files'] = dict(sorted(files.items()))
        with open(os.path.join(EXPECTED, 'expected.json'), 'w') as f:
            json.dump(out, f, indent=1, ensure_ascii=False)
            f.write('\n')
    if args.stage in ('streamed', 'all'):
        compute_streamed()
    print(f'done in {time.time() - t0:.1f}s', flush=True)


if __name__ == '__main__':
    main()
