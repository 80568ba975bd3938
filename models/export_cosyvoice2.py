#!/usr/bin/env python3
"""Turn the released CosyVoice2-0.5B weights into a Timbre model pack (format timbre-pack/1, models/README.md).

    /usr/bin/python3 models/export_cosyvoice2.py MODEL_DIR --out models/cosyvoice2 \\
        --cosyvoice-repo ~/src/CosyVoice --campplus-ts campplus.ts.pt --tokenizer-ts s3tokenizer_v2.ts.pt
    /usr/bin/python3 models/export_cosyvoice2.py --self-test      # runs here: every part on tiny modules

NEEDS
  MODEL_DIR         the downloaded CosyVoice2-0.5B directory: cosyvoice2.yaml, llm.pt, flow.pt, hift.pt,
                    campplus.onnx, speech_tokenizer_v2.onnx, CosyVoice-BlankEN/ (config.json, vocab.json,
                    merges.txt, tokenizer_config.json).
  --cosyvoice-repo  a checkout of github.com/FunAudioLLM/CosyVoice with its third_party/Matcha-TTS submodule and
                    the Python packages it imports (hyperpyyaml, einops, diffusers, transformers, ...): the flow
                    and the vocoder are built from cosyvoice2.yaml with CosyVoice's own classes.
  --campplus-ts     CAM++ speaker encoder as TorchScript: forward(fbank float32 [1, T, 80]) -> [1, 192].
  --tokenizer-ts    S3Tokenizer v2 as TorchScript: forward(log_mel float32 [1, 128, T], mel_len int32 [1]) -> [1, N].
                    The release ships both as ONNX only, and TorchScript cannot run ONNX. Convert them first,
                    e.g. with onnx2torch + torch.jit.trace, or by loading the ONNX initializers into a torch
                    re-implementation (CAM++: 3D-Speaker's CAMPPlus, feat_dim 80, embedding 192; speech tokenizer
                    v2: the `s3tokenizer` package's S3TokenizerV2 and its quantize(mels, mels_lens)). Check the
                    result against onnxruntime on real audio before using it; this script cannot do that for you.
  PyTorch 1.13 + torchaudio (apt-get install -y python3-torch python3-torchaudio); several GB of memory.

WHAT IT DOES
  llm.pt       The Qwen2LM state dict (llm.pt: llm.model.model.*, llm_embedding, speech_embedding, llm_decoder) is
               loaded into timbrepack.nets.SpeechLM, a scriptable Qwen2 (RMSNorm, RoPE, GQA, SwiGLU) with the
               format's prefill/decode over an explicit KV cache; heads, KV heads and rope_theta come from
               CosyVoice-BlankEN/config.json. HF's Qwen2ForCausalLM cannot be scripted, and needs no CosyVoice code.
  flow.pt      FlowAdapter: flow.input_embedding, spk_embed_affine_layer, encoder (scripted, as CosyVoice's own
               export_jit does), encoder_proj and decoder.estimator (traced, non-streaming, batch 2 like its
               ONNX export), plus decoder.rand_noise (seed 0); methods encode/estimate/noise.
  hift.pt      HiFTGenerator with weight norm folded, traced around f0_predictor -> f0_upsamp -> m_source ->
               decode. Its source is random (SineGen's phases and noise), as in CosyVoice: seed LibTorch's
               generator for repeatable output.
  frontend.pt  timbrepack.dsp (Kaldi fbank, Whisper log-mel, 24 kHz mel, resampler) + the two TorchScript files.
  tokenizer.json  vocab.json + merges.txt with Qwen2's pre-tokenizer split, the added tokens of
               tokenizer_config.json and CosyVoice2Tokenizer's special tokens (ids assigned as HF's
               add_special_tokens does).
  pack.json    timbrepack.build.finish_pack, the same code as build_pack.py; then the pack validator runs.
  Traced parts are checked against the eager modules at a second length; the export stops if they differ.
Nothing here was run on the real weights (they cannot be downloaded where this was written); --self-test runs
every step on the tiny pack's modules with CosyVoice-shaped stand-ins."""
import argparse
import json
import os
import shutil
import sys
import tempfile
from typing import Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timbrepack import runtime  # noqa: E402

runtime.reexec_with_fixed_hash_seed()
runtime.require_torch()
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import Tensor, nn  # noqa: E402

from timbrepack import archive, build, nets, sizes, tokenizer, validate  # noqa: E402
from timbrepack.nets import Frontend  # noqa: E402

MODEL_FILES = ["cosyvoice2.yaml", "llm.pt", "flow.pt", "hift.pt", "campplus.onnx", "speech_tokenizer_v2.onnx",
               "CosyVoice-BlankEN/config.json", "CosyVoice-BlankEN/vocab.json", "CosyVoice-BlankEN/merges.txt"]
# Qwen2's pre-tokenizer split (its tokenizer.json): letters, single digits, punctuation runs, whitespace.
QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
               r"\s*[\r\n]+|\s+(?!\S)|\s+")


class ExportError(Exception):
    pass


def stop(msg: str) -> None:
    raise ExportError(msg)


# ------------------------------------------------------------------------------------------ tokenizer
def build_tokenizer(blank_en: str) -> dict:
    with open(os.path.join(blank_en, "vocab.json"), encoding="utf-8") as f:
        vocab = json.load(f)
    merges = []
    with open(os.path.join(blank_en, "merges.txt"), encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line or (n == 1 and line.startswith("#version")):
                continue
            if len(line.split(" ")) != 2:
                stop(f"{blank_en}/merges.txt line {n}: not two symbols: {line!r}")
            merges.append(line)
    added = {}                                       # id -> content, as the HF tokenizer of BlankEN has them
    cfg_path = os.path.join(blank_en, "tokenizer_config.json")
    if os.path.isfile(cfg_path):
        with open(cfg_path, encoding="utf-8") as f:
            for i, entry in json.load(f).get("added_tokens_decoder", {}).items():
                added[int(i)] = entry["content"]
    have = set(added.values())
    next_id = 1 + max(list(vocab.values()) + list(added))
    for s in tokenizer.SPECIAL_TOKENS:               # CosyVoice2Tokenizer: tokenizer.add_special_tokens(...)
        if s not in have:
            added[next_id] = s
            next_id += 1
    doc = tokenizer.tokenizer_json(vocab, merges, [])
    doc["added_tokens"] = [tokenizer.added_token(i, added[i]) for i in sorted(added)]
    doc["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": QWEN2_SPLIT}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}]}
    return doc


# ------------------------------------------------------------------------------------------------ llm
def llm_from_state(sd: dict, cfg: dict) -> nets.SpeechLM:
    """Qwen2LM state dict (CosyVoice's llm.pt) + BlankEN config.json -> nets.SpeechLM with the same weights."""
    for k in ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "intermediate_size"):
        if k not in cfg:
            stop(f"CosyVoice-BlankEN/config.json has no {k}")
    if abs(float(cfg.get("rms_norm_eps", 1e-6)) - 1e-6) > 1e-12:
        stop(f"rms_norm_eps {cfg['rms_norm_eps']} is not the 1e-6 that nets.RMSNorm uses")
    p = "llm.model.model."
    if p + "embed_tokens.weight" not in sd:
        stop(f"llm.pt has no {p}embed_tokens.weight: not a CosyVoice2 Qwen2LM state dict")
    layers, dim = cfg["num_hidden_layers"], cfg["hidden_size"]
    m = nets.SpeechLM(sd[p + "embed_tokens.weight"].shape[0], dim, layers, cfg["num_attention_heads"],
                      cfg["num_key_value_heads"], cfg["intermediate_size"], float(cfg.get("rope_theta", 10000.0)))
    names = {"text_embedding.weight": p + "embed_tokens.weight", "norm.weight": p + "norm.weight"}
    for k in ("llm_embedding.weight", "speech_embedding.weight", "llm_decoder.weight", "llm_decoder.bias"):
        names[k] = k
    ours = {"input_norm": "input_layernorm", "q_proj": "self_attn.q_proj", "k_proj": "self_attn.k_proj",
            "v_proj": "self_attn.v_proj", "o_proj": "self_attn.o_proj", "post_norm": "post_attention_layernorm",
            "gate": "mlp.gate_proj", "up": "mlp.up_proj", "down": "mlp.down_proj"}
    for i in range(layers):
        for a, b in ours.items():
            for kind in ("weight", "bias"):
                if f"layers.{i}.{a}.{kind}" in m.state_dict():
                    names[f"layers.{i}.{a}.{kind}"] = f"{p}layers.{i}.{b}.{kind}"
    target = m.state_dict()
    if set(target) != set(names):
        stop(f"internal: unmapped SpeechLM parameters {sorted(set(target) - set(names))[:5]}")
    missing = [v for v in names.values() if v not in sd]
    if missing:
        stop(f"llm.pt lacks {len(missing)} tensors, e.g. {missing[:3]}")
    wrong = [(k, tuple(sd[v].shape), tuple(target[k].shape)) for k, v in names.items() if sd[v].shape != target[k].shape]
    if wrong:
        stop(f"llm.pt shapes do not match config.json: {wrong[:3]}")
    m.load_state_dict({k: sd[v].float() for k, v in names.items()}, strict=True)
    unused = sorted(k for k in set(sd) - set(names.values()) if not k.endswith("lm_head.weight") and "rotary_emb" not in k)
    if unused:
        print(f"  note: {len(unused)} llm.pt tensors unused, e.g. {unused[:3]}")
    return m.eval()


def cosyvoice_llm_state(m: nets.SpeechLM) -> dict:
    """The inverse key mapping (self-test only): a SpeechLM's weights under CosyVoice's llm.pt names."""
    out = {}
    p = "llm.model.model."
    back = {"input_norm": "input_layernorm", "q_proj": "self_attn.q_proj", "k_proj": "self_attn.k_proj",
            "v_proj": "self_attn.v_proj", "o_proj": "self_attn.o_proj", "post_norm": "post_attention_layernorm",
            "gate": "mlp.gate_proj", "up": "mlp.up_proj", "down": "mlp.down_proj"}
    for k, v in m.state_dict().items():
        if k.startswith("layers."):
            _, i, a, kind = k.split(".")
            out[f"{p}layers.{i}.{back[a]}.{kind}"] = v.clone()
        elif k == "text_embedding.weight":
            out[p + "embed_tokens.weight"] = v.clone()
        elif k == "norm.weight":
            out[p + "norm.weight"] = v.clone()
        else:
            out[k] = v.clone()
    out["llm.model.lm_head.weight"] = out[p + "embed_tokens.weight"]
    return out


# ----------------------------------------------------------------------------------------------- flow
class EstimatorCall(nn.Module):
    """CausalConditionalDecoder called the non-streaming way, for tracing."""

    def __init__(self, estimator: nn.Module, streaming_arg: bool = True):
        super().__init__()
        self.estimator = estimator
        self.streaming_arg = streaming_arg

    def forward(self, x: Tensor, mask: Tensor, mu: Tensor, t: Tensor, spks: Tensor, cond: Tensor) -> Tensor:
        if self.streaming_arg:
            return self.estimator(x, mask, mu, t, spks, cond, streaming=False)
        return self.estimator(x, mask, mu, t, spks, cond)


class FlowAdapter(nn.Module):
    """flow.pt for a real CausalMaskedDiffWithXvec: encode / estimate / noise as in timbrepack.nets.Flow."""

    def __init__(self, input_embedding: nn.Module, spk_embed_affine_layer: nn.Module, encoder: nn.Module,
                 encoder_proj: nn.Module, estimator: nn.Module, rand_noise: Tensor):
        super().__init__()
        self.input_embedding = input_embedding
        self.spk_embed_affine_layer = spk_embed_affine_layer
        self.encoder = encoder            # scripted: forward(xs [B, T, D], xs_lens [B]) -> (h [B, 2T, D], masks)
        self.encoder_proj = encoder_proj
        self.estimator = estimator        # traced EstimatorCall
        self.register_buffer("rand_noise", rand_noise.detach().clone().contiguous(), persistent=True)

    @torch.jit.export
    def encode(self, tokens: Tensor, token_len: Tensor, prompt_feat: Tensor, prompt_feat_len: Tensor,
               embedding: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        b, t = tokens.shape
        spks = self.spk_embed_affine_layer(F.normalize(embedding, dim=1))
        tok_mask = torch.arange(t, device=tokens.device).unsqueeze(0) < token_len.unsqueeze(1)
        x = self.input_embedding(torch.clamp(tokens, min=0)) * tok_mask.unsqueeze(-1).to(spks.dtype)
        h, _ = self.encoder(x, token_len)
        h = self.encoder_proj(h)                                               # [B, 2T, 80]
        mel_mask = tok_mask.repeat_interleave(2, dim=1)
        mu = (h * mel_mask.unsqueeze(-1).to(h.dtype)).transpose(1, 2)
        cond = torch.zeros(b, 2 * t, 80, dtype=h.dtype, device=h.device)
        for i in range(b):
            n = int(prompt_feat_len[i])
            cond[i, :n] = prompt_feat[i, :n]
        return mu, mel_mask.unsqueeze(1).to(h.dtype), spks, cond.transpose(1, 2)

    @torch.jit.export
    def estimate(self, x: Tensor, mask: Tensor, mu: Tensor, t: Tensor, spks: Tensor, cond: Tensor) -> Tensor:
        return self.estimator(x, mask, mu, t, spks, cond)

    @torch.jit.export
    def noise(self, frames: int) -> Tensor:
        if frames > self.rand_noise.shape[2]:
            raise ValueError("more mel frames than the fixed noise buffer holds")
        return self.rand_noise[:, :, :frames].contiguous()

    def forward(self, x: Tensor, mask: Tensor, mu: Tensor, t: Tensor, spks: Tensor, cond: Tensor) -> Tensor:
        return self.estimate(x, mask, mu, t, spks, cond)



def trace_checked(module: nn.Module, example: tuple, second: tuple, what: str, seed: bool = False) -> torch.jit.ScriptModule:
    """torch.jit.trace, then compare with the eager module on inputs of another length."""
    with torch.no_grad():
        traced = torch.jit.trace(module, example, check_trace=False)
        if seed:
            torch.manual_seed(0)
        ref = module(*second)
        if seed:
            torch.manual_seed(0)
        got = traced(*second)
    if ref.shape != got.shape:
        stop(f"{what}: the trace does not generalise: shape {tuple(got.shape)} instead of {tuple(ref.shape)}")
    diff = float((ref - got).abs().max())
    if diff > 1e-4:
        stop(f"{what}: the trace differs from the eager module by {diff:.3g} at another length")
    print(f"  {what}: traced; max |traced - eager| at a second length = {diff:.2e}")
    return traced


def flow_adapter(flow: nn.Module, encoder: nn.Module, estimator_streaming_arg: bool = True) -> nn.Module:
    est = EstimatorCall(flow.decoder.estimator, estimator_streaming_arg).eval()
    g = torch.Generator().manual_seed(5)

    def inputs(n: int) -> tuple:
        return (torch.randn(2, 80, n, generator=g), torch.ones(2, 1, n), torch.randn(2, 80, n, generator=g),
                torch.rand(2, generator=g), torch.randn(2, 80, generator=g), torch.randn(2, 80, n, generator=g))
    traced = trace_checked(est, inputs(256), inputs(173), "flow estimator")
    noise = getattr(flow.decoder, "rand_noise", None)
    if noise is None:
        noise = torch.randn([1, 80, sizes.NOISE_LEN], generator=torch.Generator().manual_seed(0))
    enc = encoder if isinstance(encoder, torch.jit.ScriptModule) else torch.jit.script(encoder)
    return FlowAdapter(flow.input_embedding, flow.spk_embed_affine_layer, enc, flow.encoder_proj, traced, noise).eval()


# ---------------------------------------------------------------------------------------------- hift
class HiftCall(nn.Module):
    """HiFTGenerator.inference without the streaming cache: mel [1, 80, F] -> waveform [1, F * 480]."""

    def __init__(self, hift: nn.Module):
        super().__init__()
        self.hift = hift

    def forward(self, mel: Tensor) -> Tensor:
        f0 = self.hift.f0_predictor(mel)
        s = self.hift.f0_upsamp(f0[:, None]).transpose(1, 2)
        s, _, _ = self.hift.m_source(s)
        return self.hift.decode(x=mel, s=s.transpose(1, 2))


def fold_weight_norm(module: nn.Module) -> None:
    from torch.nn.utils import parametrize
    for m in module.modules():
        if parametrize.is_parametrized(m, "weight"):
            parametrize.remove_parametrizations(m, "weight", leave_parametrized=True)
        elif hasattr(m, "weight_g") and hasattr(m, "weight_v"):
            torch.nn.utils.remove_weight_norm(m)


def hift_traced(call: nn.Module) -> torch.jit.ScriptModule:
    g = torch.Generator().manual_seed(6)
    return trace_checked(call.eval(), (torch.randn(1, 80, 64, generator=g),), (torch.randn(1, 80, 41, generator=g),),
                         "vocoder", seed=True)


# ------------------------------------------------------------------------------------------ frontend
class ExportFrontend(Frontend):
    """frontend.pt: timbrepack.dsp feature extraction + external TorchScript speaker encoder and speech tokenizer."""

    def __init__(self, speaker: torch.jit.ScriptModule, speech_tokenizer: torch.jit.ScriptModule):
        nn.Module.__init__(self)
        from timbrepack import dsp
        self.fbank = dsp.KaldiFbank()
        self.whisper = dsp.WhisperLogMel()
        self.matcha = dsp.MatchaMel()
        self.speaker = speaker
        self.tokenizer = speech_tokenizer

    @torch.jit.export
    def speech_tokens(self, wav16k: Tensor) -> Tensor:
        mel = self.whisper_log_mel(wav16k)
        length = torch.full([1], mel.shape[2], dtype=torch.int32, device=mel.device)
        return self.tokenizer(mel, length).to(torch.int32)


# ------------------------------------------------------------------------------------------- writer
def write_pack(out: str, modules: dict, params: dict, name: str, weights: str, llm: nets.SpeechLM,
               tokenizer_doc: dict, size: str = "cosyvoice2") -> dict:
    os.makedirs(out, exist_ok=True)
    for key, fname in build.MODULE_FILES.items():
        m = modules[key] if isinstance(modules[key], torch.jit.ScriptModule) else torch.jit.script(modules[key])
        archive.save_script(m, os.path.join(out, fname), os.path.splitext(fname)[0])
        print(f"  {fname:12s} {params[key]:>13,d} parameters  {os.path.getsize(os.path.join(out, fname)):>13,d} bytes")
    llm_cfg = {"layers": llm.layers_n, "dim": llm.text_embedding.weight.shape[1],
               "heads": llm.layers[0].heads, "kv_heads": llm.kv_heads}
    return build.finish_pack(out, name=name, size=size, weights=weights, llm=llm_cfg,
                             text_vocab_size=llm.text_embedding.weight.shape[0], tokenizer_doc=tokenizer_doc,
                             params=params)


def check_inputs(model_dir: str, repo: str, campplus: str, tok: str) -> None:
    problems = []
    if not os.path.isdir(model_dir):
        stop(f"{model_dir}: no such directory (the downloaded CosyVoice2-0.5B)")
    problems += [f"{model_dir}/{f}: missing" for f in MODEL_FILES if not os.path.isfile(os.path.join(model_dir, f))]
    if not repo:
        problems.append("--cosyvoice-repo is required (a CosyVoice checkout with third_party/Matcha-TTS)")
    elif not os.path.isfile(os.path.join(repo, "cosyvoice", "flow", "flow.py")):
        problems.append(f"{repo}: not a CosyVoice checkout (no cosyvoice/flow/flow.py)")
    elif not os.path.isdir(os.path.join(repo, "third_party", "Matcha-TTS", "matcha")):
        problems.append(f"{repo}/third_party/Matcha-TTS: missing (git submodule update --init)")
    for opt, path in (("--campplus-ts", campplus), ("--tokenizer-ts", tok)):
        if not path:
            problems.append(f"{opt} is required: campplus.onnx / speech_tokenizer_v2.onnx must first be converted "
                            "to TorchScript (see this script's header)")
        elif not os.path.isfile(path):
            problems.append(f"{opt} {path}: no such file")
    if problems:
        stop("cannot export:\n  " + "\n  ".join(problems))


def count(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def export(args) -> None:
    check_inputs(args.model_dir, args.cosyvoice_repo, args.campplus_ts, args.tokenizer_ts)
    blank = os.path.join(args.model_dir, "CosyVoice-BlankEN")
    print("tokenizer.json from CosyVoice-BlankEN")
    tok_doc = build_tokenizer(blank)
    print("llm: llm.pt -> SpeechLM")
    with open(os.path.join(blank, "config.json")) as f:
        cfg = json.load(f)
    llm = llm_from_state(torch.load(os.path.join(args.model_dir, "llm.pt"), map_location="cpu"), cfg)
    print("flow and vocoder: CosyVoice's classes from cosyvoice2.yaml")
    sys.path[:0] = [args.cosyvoice_repo, os.path.join(args.cosyvoice_repo, "third_party", "Matcha-TTS")]
    try:
        from hyperpyyaml import load_hyperpyyaml
        with open(os.path.join(args.model_dir, "cosyvoice2.yaml")) as f:
            configs = load_hyperpyyaml(f, overrides={"qwen_pretrain_path": blank})
    except ImportError as e:
        stop(f"the CosyVoice checkout's requirements are not installed ({e})")
    flow, hift = configs["flow"], configs["hift"]
    flow.load_state_dict(torch.load(os.path.join(args.model_dir, "flow.pt"), map_location="cpu"), strict=True)
    hsd = torch.load(os.path.join(args.model_dir, "hift.pt"), map_location="cpu")
    hift.load_state_dict({k.replace("generator.", ""): v for k, v in hsd.items()}, strict=True)
    flow.eval()
    hift.eval()
    fold_weight_norm(hift)
    flow_m = flow_adapter(flow, flow.encoder)
    hift_m = hift_traced(HiftCall(hift))
    print("frontend: timbrepack.dsp + CAM++ + S3Tokenizer v2 (TorchScript)")
    fe = ExportFrontend(torch.jit.load(args.campplus_ts, map_location="cpu"),
                        torch.jit.load(args.tokenizer_ts, map_location="cpu")).eval()
    modules = {"frontend": fe, "llm": llm, "flow": flow_m, "vocoder": hift_m}
    params = {"frontend": count(fe), "llm": count(llm), "flow": count(flow_m), "vocoder": count(hift)}
    write_pack(args.out, modules, params, args.name, "CosyVoice2-0.5B (FunAudioLLM), converted by export_cosyvoice2.py",
               llm, tok_doc)
    validate.check(args.out)


# ----------------------------------------------------------------------------------------- self-test
class _EncoderStandIn(nn.Module):
    """Stand-in with UpsampleConformerEncoder's call: forward(xs, xs_lens) -> (h [B, 2T, D], masks [B, 1, 2T])."""

    def __init__(self, enc: nn.Module):
        super().__init__()
        self.enc = enc

    def forward(self, xs: Tensor, xs_lens: Tensor) -> Tuple[Tensor, Tensor]:
        mask = torch.arange(xs.shape[1], device=xs.device).unsqueeze(0) < xs_lens.unsqueeze(1)
        return self.enc(xs, mask), mask.repeat_interleave(2, dim=1).unsqueeze(1)


class _TokenizerStandIn(nn.Module):
    def __init__(self, tok: nn.Module):
        super().__init__()
        self.tok = tok

    def forward(self, mel: Tensor, mel_len: Tensor) -> Tensor:
        return self.tok(mel)


class _HiftStandIn(nn.Module):
    """Exposes nets.HiFT through HiFTGenerator's attribute names so HiftCall runs unchanged."""

    class _Source(nn.Module):
        def __init__(self, h):
            super().__init__()
            self.h = h

        def forward(self, s):
            return s, s, s

    def __init__(self, h: nets.HiFT):
        super().__init__()
        self.h = h
        self.m_source = self._Source(h)

    def f0_predictor(self, mel):
        return mel                                   # HiftCall only passes it through f0_upsamp and m_source

    def f0_upsamp(self, x):
        return x[:, 0]

    def decode(self, x, s):
        return self.h(x)


def self_test() -> None:
    torch.set_num_threads(1)
    tmp = tempfile.mkdtemp(prefix="timbre-export-selftest-")
    try:
        _self_test(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("self-test passed")


def _same(name: str, a: Tensor, b: Tensor, tol: float = 0.0) -> None:
    diff = float((a.float() - b.float()).abs().max()) if a.shape == b.shape else float("inf")
    if diff > tol:
        stop(f"self-test: {name} differs from the tiny module ({diff})")
    print(f"  ok  {name} (max diff {diff:.1e})")


def _self_test(tmp: str) -> None:
    print("1. tokenizer.json from a synthetic vocab.json / merges.txt / tokenizer_config.json")
    blank = os.path.join(tmp, "CosyVoice-BlankEN")
    os.makedirs(blank)
    table = tokenizer.bytes_to_unicode()
    vocab = {table[b]: b for b in range(256)}
    for w in ["Ġt", "he", "Ġthe", "in"]:
        vocab[w] = len(vocab)
    with open(os.path.join(blank, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(os.path.join(blank, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\nĠ t\nh e\nĠt he\ni n\n")
    extra = {"260": {"content": "<|endoftext|>"}, "261": {"content": "<|im_start|>"},
             "262": {"content": "<|im_end|>"}, "263": {"content": "<|fim_prefix|>"}}
    with open(os.path.join(blank, "tokenizer_config.json"), "w") as f:
        json.dump({"added_tokens_decoder": extra}, f)
    doc = build_tokenizer(blank)
    ids = {t["content"]: t["id"] for t in doc["added_tokens"]}
    want = {"<|endoftext|>": 260, "<|im_start|>": 261, "<|im_end|>": 262, "<|fim_prefix|>": 263, "<|endofprompt|>": 264,
            "[mn]": 264 + len(tokenizer.SPECIAL_TOKENS) - 4}
    for k, v in want.items():
        if ids.get(k) != v:
            stop(f"self-test: tokenizer id of {k} is {ids.get(k)}, wanted {v}")
    if doc["model"]["merges"] != ["Ġ t", "h e", "Ġt he", "i n"]:
        stop(f"self-test: merges read as {doc['model']['merges']}")
    print(f"  ok  {len(vocab)} tokens, 4 merges, {len(ids)} added tokens (<|endofprompt|> = {ids['<|endofprompt|>']})")

    tiny = build.make_modules("tiny", 20251124)
    ref = {k: torch.jit.load(os.path.join(os.path.dirname(os.path.abspath(__file__)), "tiny", f))
           for k, f in build.MODULE_FILES.items()}
    print("2. llm: tiny SpeechLM -> CosyVoice llm.pt key names -> llm_from_state")
    cfg = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
           "intermediate_size": 128, "rope_theta": 1000000.0, "rms_norm_eps": 1e-6}
    path = os.path.join(tmp, "llm.pt")
    torch.save(cosyvoice_llm_state(tiny["llm"]), path)
    llm = llm_from_state(torch.load(path), cfg)
    text, speech = torch.tensor([[5, 6, 7, 8]]), torch.tensor([[100, 200, 300]])
    with torch.no_grad():
        a = llm.prefill(text, torch.tensor([4]), speech, torch.tensor([3]), 12)
        b = ref["llm"].prefill(text, torch.tensor([4]), speech, torch.tensor([3]), 12)
        _same("llm.prefill logp", a[0], b[0])
        _same("llm.decode logp", llm.decode(torch.tensor([42]), a[1], a[2], a[3]), ref["llm"].decode(torch.tensor([42]), b[1], b[2], b[3]))
    try:
        llm_from_state({k: v for k, v in cosyvoice_llm_state(tiny["llm"]).items() if "layers.1.mlp" not in k}, cfg)
        stop("self-test: a state dict with missing tensors was accepted")
    except ExportError as e:
        print(f"  ok  incomplete llm.pt refused: {e}")

    print("3. flow: FlowAdapter around the tiny flow's parts (encoder scripted, estimator traced)")
    tf = tiny["flow"]
    holder = nn.Module()
    holder.input_embedding, holder.spk_embed_affine_layer, holder.encoder_proj = tf.input_embedding, tf.spk_embed_affine_layer, tf.encoder_proj
    holder.decoder = nn.Module()
    holder.decoder.estimator = tf.estimator
    flow_m = torch.jit.script(flow_adapter(holder, _EncoderStandIn(tf.encoder), estimator_streaming_arg=False))
    g = torch.Generator().manual_seed(9)
    toks, pf, emb = torch.randint(0, 6561, (1, 30), generator=g), torch.randn(1, 20, 80, generator=g), torch.randn(1, 192, generator=g)
    with torch.no_grad():
        a = flow_m.encode(toks, torch.tensor([30]), pf, torch.tensor([20]), emb)
        b = ref["flow"].encode(toks, torch.tensor([30]), pf, torch.tensor([20]), emb)
        for n, x, y in zip(["mu", "mask", "spks", "cond"], a, b):
            _same(f"flow.encode {n}", x, y, 1e-5)
        args = (torch.cat([flow_m.noise(60)] * 2), torch.cat([a[1]] * 2), torch.cat([a[0], a[0] * 0]), torch.tensor([0.3, 0.3]),
                torch.cat([a[2], a[2] * 0]), torch.cat([a[3], a[3] * 0]))
        _same("flow.estimate", flow_m.estimate(*args), ref["flow"].estimate(*args), 1e-5)
        _same("flow.noise", flow_m.noise(15000), ref["flow"].noise(15000))

    print("4. vocoder: HiftCall traced (weight norm folded first)")
    fold_weight_norm(tiny["vocoder"])
    hift_m = hift_traced(HiftCall(_HiftStandIn(tiny["vocoder"])))
    mel = torch.randn(1, 80, 33, generator=g)
    with torch.no_grad():
        _same("vocoder.forward", hift_m(mel), ref["vocoder"](mel), 1e-5)

    print("5. frontend: ExportFrontend with TorchScript stand-ins for CAM++ and S3Tokenizer v2")
    tfe = tiny["frontend"]
    spk_path, tok_path = os.path.join(tmp, "campplus.ts.pt"), os.path.join(tmp, "tokenizer.ts.pt")
    torch.jit.script(tfe.speaker).save(spk_path)
    torch.jit.script(_TokenizerStandIn(tfe.tokenizer)).save(tok_path)
    fe = ExportFrontend(torch.jit.load(spk_path), torch.jit.load(tok_path)).eval()
    fe_m = torch.jit.script(fe)
    wav = torch.randn(1, 16000 * 3, generator=g) * 0.1
    with torch.no_grad():
        for method in ("kaldi_fbank", "speaker_embedding", "whisper_log_mel", "speech_tokens"):
            _same(f"frontend.{method}", getattr(fe_m, method)(wav), getattr(ref["frontend"], method)(wav), 1e-5)
        _same("frontend.speech_feat", fe_m.speech_feat(fe_m.resample(wav, 16000, 24000)),
              ref["frontend"].speech_feat(ref["frontend"].resample(wav, 16000, 24000)), 1e-5)

    print("6. write the pack (archive + build.finish_pack) and run the validator")
    out = os.path.join(tmp, "pack")
    params = {"frontend": count(fe), "llm": count(llm), "flow": count(flow_m), "vocoder": count(tiny["vocoder"])}
    write_pack(out, {"frontend": fe_m, "llm": llm, "flow": flow_m, "vocoder": hift_m}, params, "selftest",
               "tiny weights through the export path (self-test)", llm, doc, size="selftest")
    validate.check(out)
    bad = os.path.join(tmp, "bad")
    shutil.copytree(out, bad)
    with open(os.path.join(bad, "pack.json")) as f:
        manifest = json.load(f)
    manifest["files"]["llm.pt"]["sha256"] = "0" * 64
    with open(os.path.join(bad, "pack.json"), "w") as f:
        json.dump(manifest, f)
    try:
        validate.check(bad, log=lambda s: None)
        stop("self-test: the validator accepted a wrong sha256")
    except validate.PackError as e:
        print(f"  ok  validator refuses a tampered pack: {e}")

    print("7. input checks")
    for argv in ([os.path.join(tmp, "nope")], [blank]):
        try:
            check_inputs(argv[0], "", "", "")
            stop("self-test: check_inputs accepted a bad model directory")
        except ExportError as e:
            print("  ok  " + str(e).splitlines()[0] + (f" (+{len(str(e).splitlines()) - 1} lines)" if "\n" in str(e) else ""))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model_dir", nargs="?", help="downloaded CosyVoice2-0.5B directory")
    ap.add_argument("--out", help="pack directory to write (its parent must exist)")
    ap.add_argument("--name", default="cosyvoice2", help="pack name (default cosyvoice2)")
    ap.add_argument("--cosyvoice-repo", help="CosyVoice checkout with third_party/Matcha-TTS")
    ap.add_argument("--campplus-ts", help="CAM++ as TorchScript (see above)")
    ap.add_argument("--tokenizer-ts", help="S3Tokenizer v2 as TorchScript (see above)")
    ap.add_argument("--self-test", action="store_true", help="run every export step on the tiny modules")
    args = ap.parse_args()
    try:
        if args.self_test:
            self_test()
            return 0
        if not args.model_dir or not args.out:
            ap.error("MODEL_DIR and --out are required (or --self-test)")
        if not os.path.isdir(os.path.dirname(os.path.abspath(args.out))):
            stop(f"the parent directory of --out does not exist: {os.path.dirname(os.path.abspath(args.out))}")
        export(args)
    except (ExportError, validate.PackError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
