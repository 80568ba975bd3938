"""The Python reference pipeline: drives a pack's TorchScript modules the way the Python CosyVoice backend does
(frontend_zero_shot / add_zero_shot_spk, Qwen2LM.inference, CausalConditionalCFM.solve_euler, HiFT). It
writes the golden fixtures that the Java engine must reproduce, and is timed by the Java benchmark."""
import json
import math
import os
import time
from typing import Dict, List, Optional

import torch

from .onnxmodels import OnnxFrontend
from .tokenizer import ByteTokenizer

SPEECH_TOKEN_SIZE = 6561
EOS = SPEECH_TOKEN_SIZE                                              # Qwen2LM.eos_token
STOP_TOKENS = (SPEECH_TOKEN_SIZE, SPEECH_TOKEN_SIZE + 1, SPEECH_TOKEN_SIZE + 2)   # Qwen2LM.stop_token_ids


class Pack:
    def __init__(self, directory: str):
        if not os.path.isdir(directory):
            raise SystemExit(f"error: pack directory {directory!r} does not exist")
        with open(os.path.join(directory, "pack.json")) as f:
            self.manifest = json.load(f)
        self.dir = directory
        self.frontend = torch.jit.load(os.path.join(directory, "frontend.pt")).eval()
        self.onnx = OnnxFrontend(directory, self.manifest["frontend"])   # campplus / speech tokenizer via ONNX Runtime
        self.llm = torch.jit.load(os.path.join(directory, "llm.pt")).eval()
        self.flow = torch.jit.load(os.path.join(directory, "flow.pt")).eval()
        self.hift = torch.jit.load(os.path.join(directory, "hift.pt")).eval()
        self.tokenizer = ByteTokenizer()
        m = self.manifest
        self.prompt_rate = m["audio"]["prompt_sample_rate"]
        self.output_rate = m["audio"]["output_sample_rate"]
        self.sampling = m["llm"]["sampling"]
        self.flow_cfg = m["flow"]


@torch.inference_mode()
def register(pack: Pack, wav: torch.Tensor, rate: int, prompt_text: str) -> Dict[str, torch.Tensor]:
    """add_zero_shot_spk: the spk2info entry for one prompt, keys and dtypes as CosyVoice stores them. `wav` is the
    upload at its own rate: like CosyVoice's load_wav (since 622a3a1), the 16 kHz audio (tokens, embedding) and the
    24 kHz audio (prompt mel) are each resampled straight from it."""
    text = torch.tensor([pack.tokenizer.encode(prompt_text)], dtype=torch.int32)
    wav16k = pack.frontend.resample(wav, rate, pack.prompt_rate)
    wav24k = pack.frontend.resample(wav, rate, pack.output_rate)
    tokens = pack.onnx.speech_tokens(pack.frontend.whisper_log_mel(wav16k))
    feat = pack.frontend.speech_feat(wav24k)
    token_len = min(feat.shape[1] // 2, tokens.shape[1])      # CosyVoice 2: force 2 mel frames per token
    feat = feat[:, :2 * token_len].contiguous()
    tokens = tokens[:, :token_len].contiguous()
    emb = pack.onnx.speaker_embedding(pack.frontend.kaldi_fbank(wav16k))
    n = lambda x: torch.tensor([x], dtype=torch.int32)
    return {
        "prompt_text": text, "prompt_text_len": n(text.shape[1]),
        "llm_prompt_speech_token": tokens, "llm_prompt_speech_token_len": n(token_len),
        "flow_prompt_speech_token": tokens, "flow_prompt_speech_token_len": n(token_len),
        "prompt_speech_feat": feat, "prompt_speech_feat_len": n(feat.shape[1]),
        "llm_embedding": emb, "flow_embedding": emb,
    }


def greedy(logp: torch.Tensor, ignore_eos: bool) -> int:
    """Qwen2LM.sampling_ids with argmax: below min_len only EOS is masked (upstream 0e62489)."""
    if ignore_eos:
        logp = logp.clone()
        logp[EOS] = -math.inf
    return int(torch.argmax(logp))


@torch.inference_mode()
def speech_tokens(pack: Pack, text_ids: List[int], spk: Dict[str, torch.Tensor], timings: Optional[dict] = None) -> List[int]:
    """Qwen2LM.inference/inference_wrapper with greedy decoding: min_len/max_len are int(2x / 20x) the target's
    text tokens; at most max_len tokens; any of the three stop tokens ends the sequence."""
    prompt = spk["prompt_text"].to(torch.int64)
    text = torch.cat([prompt, torch.tensor([text_ids], dtype=torch.int64)], dim=1)
    speech = spk["llm_prompt_speech_token"].to(torch.int64)
    s = pack.sampling
    min_len = int(len(text_ids) * s["min_token_text_ratio"])
    max_len = int(len(text_ids) * s["max_token_text_ratio"])
    text_len = torch.tensor([text.shape[1]])
    speech_len = torch.tensor([speech.shape[1]])
    cache_len = int(text_len + speech_len) + 2 + max_len
    logp, k, v, pos = pack.llm.prefill(text, text_len, speech, speech_len, cache_len)
    out: List[int] = []
    for i in range(max_len):
        top = greedy(logp[0], i < min_len)
        if top in STOP_TOKENS:
            break
        out.append(top)
        logp = pack.llm.decode(torch.tensor([top]), k, v, pos)
        pos = pos + 1
    return out


def t_span(steps: int) -> torch.Tensor:
    t = torch.linspace(0, 1, steps + 1, dtype=torch.float32)
    return 1 - torch.cos(t * 0.5 * torch.pi)


@torch.inference_mode()
def mel(pack: Pack, tokens: List[int], spk: Dict[str, torch.Tensor]) -> torch.Tensor:
    """CausalMaskedDiffWithXvec.inference + CausalConditionalCFM.solve_euler (CFG as a batch of 2)."""
    prompt = spk["flow_prompt_speech_token"].to(torch.int64)
    all_tokens = torch.cat([prompt, torch.tensor([tokens], dtype=torch.int64)], dim=1)
    feat = spk["prompt_speech_feat"]
    mu, mask, spks, cond = pack.flow.encode(all_tokens, torch.tensor([all_tokens.shape[1]]), feat,
                                            torch.tensor([feat.shape[1]]), spk["flow_embedding"])
    frames = mu.shape[2]
    x = pack.flow.noise(frames)
    cfg = float(pack.flow_cfg["cfg_rate"])
    ts = t_span(int(pack.flow_cfg["n_timesteps"]))
    t, dt = ts[0], ts[1] - ts[0]
    mask_in = torch.cat([mask, mask])
    mu_in = torch.cat([mu, torch.zeros_like(mu)])
    spks_in = torch.cat([spks, torch.zeros_like(spks)])
    cond_in = torch.cat([cond, torch.zeros_like(cond)])
    for step in range(1, len(ts)):
        v = pack.flow.estimate(torch.cat([x, x]), mask_in, mu_in, t.expand(2), spks_in, cond_in)
        v1, v2 = v[:1], v[1:]
        x = x + dt * ((1.0 + cfg) * v1 - cfg * v2)
        t = t + dt
        if step < len(ts) - 1:
            dt = ts[step + 1] - t
    return x[:, :, feat.shape[1]:].contiguous()


VOCODER_SEED = 0   # the seed Vocoder.vocode(mel) uses for callers without their own RandomSource


def vocoder_draws(pack: Pack, frames: int, gen: torch.Generator):
    """The vocoder's random inputs, drawn from the caller's generator in CosyVoice's order and amount (SineGen2's
    initial phases, its noise, then the source module's noise that CosyVoice draws and discards)."""
    h = pack.manifest["vocoder"]["source_harmonics"]
    samples = frames * pack.manifest["audio"]["samples_per_mel_frame"]
    phase = torch.rand(1, h, generator=gen)
    noise = torch.empty(1, h, samples)
    noise.transpose(1, 2).normal_(generator=gen)     # CosyVoice's randn_like of [B, L, H] sines with [B, H, L] memory
    torch.randn(1, samples, 1, generator=gen)
    return phase, noise


@torch.inference_mode()
def vocode(pack: Pack, m: torch.Tensor, seed: int = VOCODER_SEED) -> torch.Tensor:
    """The whole mel at once, with draws from a generator seeded with `seed` (the Java engine: RandomSource)."""
    phase, noise = vocoder_draws(pack, m.shape[2], torch.Generator().manual_seed(seed))
    return pack.hift.vocode(m, phase, noise, torch.zeros(1, 1, 0))[0]


def synthesize(pack: Pack, text: str, spk: Dict[str, torch.Tensor]) -> dict:
    times = {}
    t0 = time.perf_counter()
    ids = pack.tokenizer.encode(text)
    toks = speech_tokens(pack, ids, spk)
    t1 = time.perf_counter()
    m = mel(pack, toks, spk)
    t2 = time.perf_counter()
    wav = vocode(pack, m)
    t3 = time.perf_counter()
    times.update(llm=t1 - t0, flow=t2 - t1, vocoder=t3 - t2)
    return {"text": torch.tensor([ids], dtype=torch.int32), "tokens": torch.tensor([toks], dtype=torch.int32),
            "mel": m, "wav": wav, "times": times}
