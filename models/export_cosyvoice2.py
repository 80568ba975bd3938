#!/usr/bin/env python3
"""Turn the released CosyVoice2-0.5B directory into a Timbre model pack (format timbre-pack/2, models/README.md).

    /usr/bin/python3 models/export_cosyvoice2.py MODEL_DIR --out models/cosyvoice2
    /usr/bin/python3 models/export_cosyvoice2.py --self-test      # a shrunk release directory, end to end

NEEDS
  MODEL_DIR   the downloaded CosyVoice2-0.5B directory, unmodified: cosyvoice2.yaml, llm.pt, flow.pt, hift.pt,
              campplus.onnx, speech_tokenizer_v2.onnx, CosyVoice-BlankEN/ (config.json, vocab.json, merges.txt,
              tokenizer_config.json).
  PyTorch (Debian's 1.13: apt-get install -y python3-torch python3-torchaudio python3-yaml; or 2.x) and PyYAML.
  No CosyVoice source, no hyperpyyaml, transformers, diffusers or onnxruntime. About 5 GB of memory at full size.

WHAT IT DOES
  cosyvoice2.yaml  read without running it (timbrepack.cosyvoice2.load_config: hyperpyyaml's tags are parsed, not
               executed); the flow's and HiFT's sizes come from it, and anything that is not CosyVoice 2's
               configuration (another class, a missing value, a streaming-only or CosyVoice 3 setting) is refused.
  llm.pt       the Qwen2LM state dict (llm.model.model.*, llm_embedding, speech_embedding, llm_decoder) loaded into
               timbrepack.nets.SpeechLM (scriptable Qwen2 with the format's prefill/decode); heads, KV heads and
               rope_theta from CosyVoice-BlankEN/config.json.
  flow.pt      loaded by key name into timbrepack.cosyvoice2.Flow, this project's scriptable CosyVoice 2 flow
               (UpsampleConformerEncoder + CausalConditionalDecoder) with the methods encode/estimate/noise.
  hift.pt      weight norm folded (PyTorch < 2.1 weight_g/weight_v and >= 2.1 parametrizations.weight.original0/1
               both read; a `generator.` prefix is dropped as CosyVoice does), loaded into timbrepack.cosyvoice2.HiFT.
               Its source is random, as in CosyVoice: seed LibTorch's generator for repeatable output.
  campplus.onnx, speech_tokenizer_v2.onnx   checked (inputs and outputs as the release's) and copied as they are;
               the service runs them with ONNX Runtime.
  frontend.pt  timbrepack.nets.Frontend: the DSP only (resampler, Kaldi fbank, Whisper log-mel, 24 kHz mel).
  tokenizer.json  vocab.json + merges.txt with Qwen2's pre-tokenizer split, tokenizer_config.json's added tokens and
               CosyVoice2Tokenizer's special tokens.
  pack.json    timbrepack.build.finish_pack, then the pack validator runs every method once.
Every refusal names the file, the key and what was expected. Checked against CosyVoice's own classes (models/README.md
§13); --self-test runs the whole export on a shrunk release directory it writes, in both weight-norm forms."""
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

from timbrepack import archive, build, nets, onnxmodels, sizes, tokenizer, validate  # noqa: E402
from timbrepack import cosyvoice2 as cv  # noqa: E402

MODEL_FILES = ["cosyvoice2.yaml", "llm.pt", "flow.pt", "hift.pt", "campplus.onnx", "speech_tokenizer_v2.onnx",
               "CosyVoice-BlankEN/config.json", "CosyVoice-BlankEN/vocab.json", "CosyVoice-BlankEN/merges.txt"]
# Qwen2's pre-tokenizer split (its tokenizer.json): letters, single digits, punctuation runs, whitespace.
QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
               r"\s*[\r\n]+|\s+(?!\S)|\s+")


ExportError = cv.ReleaseError


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


# --------------------------------------------------------------------------------------- flow, hift
def read_state(path: str) -> dict:
    try:
        sd = torch.load(path, map_location="cpu")
    except Exception as e:  # noqa: BLE001 -- any unreadable file is refused with its name
        stop(f"{path}: not a PyTorch state dict ({type(e).__name__}: {e})")
    if not isinstance(sd, dict) or not all(isinstance(k, str) and torch.is_tensor(v) for k, v in sd.items()):
        stop(f"{path}: expected a state dict (names -> tensors)")
    return sd


def load_flow(model_dir: str, cfg: dict) -> cv.Flow:
    yaml_path = os.path.join(model_dir, "cosyvoice2.yaml")
    c = cv.flow_config(cfg, yaml_path)
    if abs(c["inference_cfg_rate"] - 0.7) > 1e-9:
        stop(f"{yaml_path}: flow.decoder.cfm_params.content.inference_cfg_rate = {c['inference_cfg_rate']}: the pack "
             "format carries 0.7")
    flow = cv.Flow(c, sizes.NOISE_LEN).eval()
    sd = cv.fold_weight_norm(read_state(os.path.join(model_dir, "flow.pt")), "flow.pt")
    cv.load_named(flow, sd, "flow.pt")
    return flow


def load_hift(model_dir: str, cfg: dict) -> cv.HiFT:
    c = cv.hift_config(cfg, os.path.join(model_dir, "cosyvoice2.yaml"))
    hift = cv.HiFT(c).eval()
    raw = read_state(os.path.join(model_dir, "hift.pt"))
    sd = {k[len("generator."):] if k.startswith("generator.") else k: v for k, v in raw.items()}
    cv.load_named(hift, cv.fold_weight_norm(sd, "hift.pt"), "hift.pt")
    return hift


def scripted_checked(module: nn.Module, what: str) -> torch.jit.ScriptModule:
    """torch.jit.script, then the scripted module must give the eager module's output on a short input."""
    scripted = torch.jit.script(module)
    g = torch.Generator().manual_seed(11)
    with torch.no_grad():
        if isinstance(module, cv.Flow):
            toks = torch.randint(0, module.input_embedding.num_embeddings, (2, 13), generator=g)
            args = (toks, torch.tensor([13, 9]), torch.randn(2, 6, 80, generator=g), torch.tensor([6, 4]),
                    torch.randn(2, 192, generator=g))
            a, b = module.encode(*args), scripted.encode(*args)
            est = (torch.randn(2, 80, 26, generator=g), a[1], a[0], torch.rand(2, generator=g), a[2], a[3])
            pairs = list(zip(a, b)) + [(module.estimate(*est), scripted.estimate(*est))]
            sargs = args[:-1] + (torch.randn(2, 192, generator=g),)
            a, b = module.encode_streaming(*sargs, 3, True), scripted.encode_streaming(*sargs, 3, True)
            est = (torch.randn(2, 80, 20, generator=g), a[1], a[0], torch.rand(2, generator=g), a[2], a[3])
            pairs += list(zip(a, b)) + [(module.estimate_streaming(*est, True), scripted.estimate_streaming(*est, True))]
        else:
            mel = torch.randn(1, 80, 9, generator=g)
            h = int(module.m_source.harmonic_mul.shape[2])
            draws = (torch.rand(1, h, generator=g), torch.randn(1, h, 9 * module.upp, generator=g),
                     torch.randn(1, 1, 3 * module.upp, generator=g))
            pairs = [(module(mel), scripted(mel))] + list(zip(module.vocode(mel, *draws), scripted.vocode(mel, *draws)))
    for x, y in pairs:
        if x.shape != y.shape or not bool(torch.isfinite(y).all()) or float((x - y).abs().max()) > 1e-4:
            stop(f"internal: scripted {what} differs from the eager module")
    return scripted


# ------------------------------------------------------------------------------------------- writer
def write_pack(out: str, modules: dict, params: dict, name: str, weights: str, llm: nets.SpeechLM,
               tokenizer_doc: dict, onnx_sources: dict, size: str = "cosyvoice2") -> dict:
    os.makedirs(out, exist_ok=True)
    for key, fname in build.MODULE_FILES.items():
        m = modules[key] if isinstance(modules[key], torch.jit.ScriptModule) else torch.jit.script(modules[key])
        archive.save_script(m, os.path.join(out, fname), os.path.splitext(fname)[0])
        print(f"  {fname:26s} {params[key]:>13,d} parameters  {os.path.getsize(os.path.join(out, fname)):>13,d} bytes")
    for role, fname in build.ONNX_FILES.items():
        shutil.copyfile(onnx_sources[role], os.path.join(out, fname))
        print(f"  {fname:26s} {'(ONNX, as released)':>24s}  {os.path.getsize(os.path.join(out, fname)):>13,d} bytes")
    llm_cfg = {"layers": llm.layers_n, "dim": llm.text_embedding.weight.shape[1],
               "heads": llm.layers[0].heads, "kv_heads": llm.kv_heads}
    flow = modules["flow"]
    return build.finish_pack(out, name=name, size=size, weights=weights, llm=llm_cfg,
                             text_vocab_size=llm.text_embedding.weight.shape[0], tokenizer_doc=tokenizer_doc,
                             params=params,
                             streaming=build.streaming_manifest(int(flow.encoder_chunk), int(flow.estimator_chunk),
                                                                int(flow.encoder.pre_lookahead_layer.lookahead)),
                             flow_padding_invariant=True,
                             source_harmonics=int(modules["vocoder"].m_source.harmonic_mul.shape[2]))


def check_inputs(model_dir: str) -> dict:
    """Every file of the release is there, and the two ONNX models have the release's inputs and outputs."""
    if not os.path.isdir(model_dir):
        stop(f"{model_dir}: no such directory (the downloaded CosyVoice2-0.5B)")
    problems = [f"{model_dir}/{f}: missing" for f in MODEL_FILES if not os.path.isfile(os.path.join(model_dir, f))]
    if problems:
        stop("cannot export:\n  " + "\n  ".join(problems))
    sources = {}
    for role, fname in build.ONNX_FILES.items():
        path = os.path.join(model_dir, fname)
        try:
            summary = onnxmodels.check_signature(role, path)
        except (OSError, ValueError) as e:
            stop(str(e))
        print(f"  {fname}: {summary}")
        sources[role] = path
    return sources


def frontend_module() -> nn.Module:
    """frontend.pt holds only DSP (no weights): built from timbrepack.dsp where torchaudio is installed (it computes
    the mel banks), otherwise the tiny pack's frontend.pt, checked against the tiny pack's sha256."""
    from timbrepack import dsp
    if dsp.kaldi is not None:
        return nets.Frontend().eval()
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "tiny", build.MODULE_FILES["frontend"])
    with open(os.path.join(here, "tiny", "pack.json")) as f:
        want = json.load(f)["files"][build.MODULE_FILES["frontend"]]["sha256"]
    if archive.sha256(path) != want:
        stop(f"{path}: sha256 differs from models/tiny/pack.json (torchaudio is missing, so this file is reused)")
    print("  frontend.pt: torchaudio is not installed; reusing models/tiny/frontend.pt (DSP only, no weights)")
    return torch.jit.load(path, map_location="cpu")


def count(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def export(model_dir: str, out: str, name: str, size: str = "cosyvoice2",
           weights: str = "CosyVoice2-0.5B (FunAudioLLM), converted by export_cosyvoice2.py") -> dict:
    print("release files")
    onnx_sources = check_inputs(model_dir)
    cfg = cv.load_config(os.path.join(model_dir, "cosyvoice2.yaml"))
    blank = os.path.join(model_dir, "CosyVoice-BlankEN")
    print("tokenizer.json from CosyVoice-BlankEN")
    tok_doc = build_tokenizer(blank)
    with open(os.path.join(blank, "config.json")) as f:
        llm_cfg = json.load(f)
    print("llm.pt -> SpeechLM")
    llm = llm_from_state(read_state(os.path.join(model_dir, "llm.pt")), llm_cfg)
    params = {"llm": count(llm)}
    llm_s = torch.jit.script(llm)
    print("flow.pt -> timbrepack.cosyvoice2.Flow")
    flow = load_flow(model_dir, cfg)
    params["flow"] = count(flow)
    flow_s = scripted_checked(flow, "flow")
    del flow
    print("hift.pt -> timbrepack.cosyvoice2.HiFT")
    hift = load_hift(model_dir, cfg)
    params["vocoder"] = count(hift)
    hift_s = scripted_checked(hift, "vocoder")
    del hift
    fe = frontend_module()
    params["frontend"] = count(fe)
    print(f"writing {out}")
    manifest = write_pack(out, {"frontend": fe, "llm": llm_s, "flow": flow_s, "vocoder": hift_s}, params, name,
                          weights, llm, tok_doc, onnx_sources, size=size)
    del llm, llm_s, flow_s, hift_s
    validate.check(out)
    return manifest


# ----------------------------------------------------------------------------------------- self-test
# A cosyvoice2.yaml in the release's form (hyperpyyaml tags, !ref arithmetic, the llm and training entries the
# exporter must read past) with CosyVoice 2's structure at shrunk sizes. The encoder stays 512 wide: CosyVoice's
# UpsampleConformerEncoder hard-codes 512 channels in its lookahead and upsampling layers.
SHRUNK_YAML = """# shrunk CosyVoice 2 configuration (export_cosyvoice2.py --self-test)
__set_seed1: !apply:random.seed [1986]
__set_seed3: !apply:torch.manual_seed [1986]
sample_rate: 24000
llm_input_size: 64
llm_output_size: 64
spk_embed_dim: 192
qwen_pretrain_path: ''
token_frame_rate: 25
token_mel_ratio: 2
chunk_size: 25
num_decoding_left_chunks: -1

llm: !new:cosyvoice.llm.llm.Qwen2LM
    llm_input_size: !ref <llm_input_size>
    llm_output_size: !ref <llm_output_size>
    speech_token_size: 6561
    llm: !new:cosyvoice.llm.llm.Qwen2Encoder
        pretrain_path: !ref <qwen_pretrain_path>
    sampling: !name:cosyvoice.utils.common.ras_sampling
        top_p: 0.8
        top_k: 25

flow: !new:cosyvoice.flow.flow.CausalMaskedDiffWithXvec
    input_size: 512
    output_size: 80
    spk_embed_dim: !ref <spk_embed_dim>
    output_type: 'mel'
    vocab_size: 6561
    input_frame_rate: !ref <token_frame_rate>
    only_mask_loss: True
    token_mel_ratio: !ref <token_mel_ratio>
    pre_lookahead_len: 3
    encoder: !new:cosyvoice.transformer.upsample_encoder.UpsampleConformerEncoder
        output_size: 512
        attention_heads: 4
        linear_units: 64
        num_blocks: 1
        dropout_rate: 0.1
        positional_dropout_rate: 0.1
        attention_dropout_rate: 0.1
        normalize_before: True
        input_layer: 'linear'
        pos_enc_layer_type: 'rel_pos_espnet'
        selfattention_layer_type: 'rel_selfattn'
        input_size: 512
        use_cnn_module: False
        macaron_style: False
        static_chunk_size: !ref <chunk_size>
    decoder: !new:cosyvoice.flow.flow_matching.CausalConditionalCFM
        in_channels: 240
        n_spks: 1
        spk_emb_dim: 80
        cfm_params: !new:omegaconf.DictConfig
            content:
                sigma_min: 1e-06
                solver: 'euler'
                t_scheduler: 'cosine'
                training_cfg_rate: 0.2
                inference_cfg_rate: 0.7
                reg_loss_type: 'l1'
        estimator: !new:cosyvoice.flow.decoder.CausalConditionalDecoder
            in_channels: 320
            out_channels: 80
            channels: [32]
            dropout: 0.0
            attention_head_dim: 16
            n_blocks: 1
            num_mid_blocks: 2
            num_heads: 2
            act_fn: 'gelu'
            static_chunk_size: !ref <chunk_size> * <token_mel_ratio>
            num_decoding_left_chunks: !ref <num_decoding_left_chunks>

hift: !new:cosyvoice.hifigan.generator.HiFTGenerator
    in_channels: 80
    base_channels: 32
    nb_harmonics: 8
    sampling_rate: !ref <sample_rate>
    nsf_alpha: 0.1
    nsf_sigma: 0.003
    nsf_voiced_threshold: 10
    upsample_rates: [8, 5, 3]
    upsample_kernel_sizes: [16, 11, 7]
    istft_params:
        n_fft: 16
        hop_len: 4
    resblock_kernel_sizes: [3, 7, 11]
    resblock_dilation_sizes: [[1, 3, 5], [1, 3, 5], [1, 3, 5]]
    source_resblock_kernel_sizes: [7, 7, 11]
    source_resblock_dilation_sizes: [[1, 3, 5], [1, 3, 5], [1, 3, 5]]
    lrelu_slope: 0.1
    audio_limit: 0.99
    f0_predictor: !new:cosyvoice.hifigan.f0_predictor.ConvRNNF0Predictor
        num_class: 1
        in_channels: 80
        cond_channels: 16

mel_spec_transform1: !name:matcha.utils.audio.mel_spectrogram
    n_fft: 1920
    sampling_rate: !ref <sample_rate>
hifigan: !new:cosyvoice.hifigan.hifigan.HiFiGan
    generator: !ref <hift>
    mel_spec_transform: [
        !ref <mel_spec_transform1>
    ]
"""

# HiFTGenerator's weight-normed convolutions (CosyVoice applies weight_norm to these, not to source_downs)
_WN = ("f0_predictor.condnet.", "conv_pre.", "ups.", "resblocks.", "source_resblocks.", "conv_post.")


def unfold_weight_norm(sd: dict, old_names: bool) -> dict:
    """A plain HiFT state dict in the release's weight-norm form: g = |w| over all dims but 0, v = w."""
    out = {}
    for k, v in sd.items():
        if k.endswith(".weight") and k.startswith(_WN) and v.dim() == 3:
            g = v.flatten(1).norm(dim=1).view(-1, 1, 1)
            base = k[:-len(".weight")]
            names = (".weight_g", ".weight_v") if old_names else (".parametrizations.weight.original0",
                                                                  ".parametrizations.weight.original1")
            out[base + names[0]], out[base + names[1]] = g, v.clone()
        else:
            out[k] = v.clone()
    return out


def randomize(m: nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in m.named_parameters():
            if "alpha" in n or ("norm" in n and n.endswith("weight")):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                fan = p[0].numel() if p.dim() >= 2 else p.shape[0]
                p.copy_(torch.randn(p.shape, generator=g) / max(fan, 1) ** 0.5)


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
        stop(f"self-test: {name} differs ({diff})")
    print(f"  ok  {name} (max diff {diff:.1e})")


def _refused(what: str, fn, *needles: str) -> None:
    try:
        fn()
    except (ExportError, validate.PackError) as e:
        msg = str(e)
        if not all(n in msg for n in needles):
            stop(f"self-test: {what}: the refusal does not name {needles}: {msg}")
        print(f"  ok  {what} refused: {msg.splitlines()[0][:150]}")
        return
    stop(f"self-test: {what} was accepted")


def _self_test(tmp: str) -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    print("1. tokenizer.json from a synthetic vocab.json / merges.txt / tokenizer_config.json")
    rel = os.path.join(tmp, "release")
    blank = os.path.join(rel, "CosyVoice-BlankEN")
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

    torch.manual_seed(20251124 + 1)      # tiny's LLM as build.make_modules("tiny", 20251124) makes it
    tiny = {"llm": nets.SpeechLM(tokenizer.ByteTokenizer().vocab_size, **sizes.SIZES["tiny"]["llm"]).eval()}
    ref = {"llm": torch.jit.load(os.path.join(here, "tiny", build.MODULE_FILES["llm"]))}
    print("2. llm: tiny SpeechLM -> CosyVoice llm.pt key names -> llm_from_state")
    cfg = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
           "intermediate_size": 128, "rope_theta": 1000000.0, "rms_norm_eps": 1e-6}
    with open(os.path.join(blank, "config.json"), "w") as f:
        json.dump(cfg, f)
    torch.save(cosyvoice_llm_state(tiny["llm"]), os.path.join(rel, "llm.pt"))
    llm = llm_from_state(torch.load(os.path.join(rel, "llm.pt")), cfg)
    text, speech = torch.tensor([[5, 6, 7, 8]]), torch.tensor([[100, 200, 300]])
    with torch.no_grad():
        a = llm.prefill(text, torch.tensor([4]), speech, torch.tensor([3]), 12)
        b = ref["llm"].prefill(text, torch.tensor([4]), speech, torch.tensor([3]), 12)
        _same("llm.prefill logp", a[0], b[0])
        _same("llm.decode logp", llm.decode(torch.tensor([42]), a[1], a[2], a[3]),
              ref["llm"].decode(torch.tensor([42]), b[1], b[2], b[3]))
    _refused("llm.pt without layer 1's MLP",
             lambda: llm_from_state({k: v for k, v in cosyvoice_llm_state(tiny["llm"]).items() if "layers.1.mlp" not in k}, cfg),
             "llm.pt", "layers.1.mlp")

    print("3. a shrunk release directory: cosyvoice2.yaml, flow.pt, hift.pt (PyTorch >= 2.1 weight-norm names), ONNX")
    yaml_path = os.path.join(rel, "cosyvoice2.yaml")
    with open(yaml_path, "w") as f:
        f.write(SHRUNK_YAML)
    conf = cv.load_config(yaml_path)
    flow = cv.Flow(cv.flow_config(conf, yaml_path)).eval()
    hift = cv.HiFT(cv.hift_config(conf, yaml_path)).eval()
    randomize(flow, 1)
    randomize(hift, 2)
    flow_sd = {k: v.clone() for k, v in flow.state_dict().items() if k != "rand_noise"}
    torch.save(flow_sd, os.path.join(rel, "flow.pt"))
    hift_sd = {k: v.clone() for k, v in hift.state_dict().items() if k not in ("stft_window", "m_source.harmonic_mul")}
    torch.save({"generator." + k: v for k, v in unfold_weight_norm(hift_sd, old_names=False).items()},
               os.path.join(rel, "hift.pt"))
    for fname in build.ONNX_FILES.values():
        shutil.copyfile(os.path.join(here, "tiny", fname), os.path.join(rel, fname))

    print("4. export it (the one command's code path) and compare the pack with the modules the weights came from")
    out = os.path.join(tmp, "pack")
    export(rel, out, "selftest", size="selftest", weights="shrunk random weights (self-test)")
    pflow, phift = torch.jit.load(os.path.join(out, "flow.pt")), torch.jit.load(os.path.join(out, "hift.pt"))
    g = torch.Generator().manual_seed(9)
    toks, pf, emb = torch.randint(0, 6561, (2, 30), generator=g), torch.randn(2, 20, 80, generator=g), torch.randn(2, 192, generator=g)
    lens, plens = torch.tensor([30, 21]), torch.tensor([20, 12])
    with torch.no_grad():
        a, b = flow.encode(toks, lens, pf, plens, emb), pflow.encode(toks, lens, pf, plens, emb)
        for n, x, y in zip(["mu", "mask", "spks", "cond"], a, b):
            _same(f"flow.encode {n}", x, y, 1e-5)
        one = pflow.encode(toks[1:, :21], lens[1:], pf[1:, :12], plens[1:], emb[1:])
        _same("flow.encode mu of a padded row == the row alone", b[0][1:, :, :42], one[0], 1e-5)
        est = (torch.randn(2, 80, 60, generator=g), a[1], a[0], torch.rand(2, generator=g), a[2], a[3])
        _same("flow.estimate", flow.estimate(*est), pflow.estimate(*est), 1e-5)
        _same("flow.noise", flow.noise(15000), pflow.noise(15000))
        folded = cv.fold_weight_norm(unfold_weight_norm(hift_sd, old_names=False), "hift.pt")
        _same("hift weights folded back from (g, v)", torch.cat([folded[k].flatten() for k in sorted(hift_sd)]),
              torch.cat([hift_sd[k].flatten() for k in sorted(hift_sd)]), 1e-6)
        cv.load_named(hift, folded, "hift.pt")
        mel = torch.randn(1, 80, 33, generator=g)
        draws = (torch.rand(1, 9, generator=g), torch.randn(1, 9, 33 * 480, generator=g),
                 torch.randn(1, 1, 8 * 480, generator=g))
        w_eager = hift.vocode(mel, *draws)[0]
        w_pack = phift.vocode(mel, *draws)[0]
        _same("vocoder (eager with the folded weights vs the pack, same random draws)", w_eager, w_pack, 1e-5)
        sa = flow.encode_streaming(toks[:1], lens[:1], pf[:1], plens[:1], emb[:1], 3, True)
        sb = pflow.encode_streaming(toks[:1], lens[:1], pf[:1], plens[:1], emb[:1], 3, True)
        for n, x, y in zip(["mu", "mask", "spks", "cond"], sa, sb):
            _same(f"flow.encode_streaming {n}", x, y, 1e-5)
        est = (torch.randn(2, 80, 54, generator=g), torch.cat([sa[1], sa[1]]), torch.cat([sa[0], sa[0]]),
               torch.rand(2, generator=g), torch.cat([sa[2], sa[2]]), torch.cat([sa[3], sa[3]]))
        _same("flow.estimate_streaming", flow.estimate_streaming(*est, True), pflow.estimate_streaming(*est, True), 1e-5)
    manifest = validate.load_manifest(out)
    for role, fname in build.ONNX_FILES.items():
        if manifest["frontend"].get(role) != fname or manifest["files"][fname]["sha256"] != archive.sha256(
                os.path.join(here, "tiny", fname)):
            stop(f"self-test: {fname} is not carried unchanged with its sha256")
    print("  ok  campplus.onnx and speech_tokenizer_v2.onnx carried unchanged, with their sha256")

    print("5. the same release with PyTorch < 2.1 weight-norm names (weight_g / weight_v)")
    torch.save(unfold_weight_norm(hift_sd, old_names=True), os.path.join(rel, "hift.pt"))
    out_old = os.path.join(tmp, "pack-old")
    export(rel, out_old, "selftest", size="selftest", weights="shrunk random weights (self-test)")
    with torch.no_grad():
        _same("vocoder, old names vs new names", torch.jit.load(os.path.join(out_old, "hift.pt")).vocode(mel, *draws)[0], w_pack)

    print("6. refusals name the file, the key and what was expected")
    def variant(fname: str, obj) -> None:
        if fname.endswith(".pt"):
            torch.save(obj, os.path.join(rel, fname))
        else:
            with open(os.path.join(rel, fname), "w" if isinstance(obj, str) else "wb") as f:
                f.write(obj)
    bad_out = os.path.join(tmp, "bad")
    k0 = "encoder.encoders.0.self_attn.linear_pos.weight"
    variant("flow.pt", {k: v for k, v in flow_sd.items() if k != k0})
    _refused("flow.pt without a tensor", lambda: export(rel, bad_out, "x"), "flow.pt", k0, "missing", "[512, 512]")
    variant("flow.pt", {**flow_sd, k0: torch.zeros(512, 256)})
    _refused("flow.pt with a wrong shape", lambda: export(rel, bad_out, "x"), "flow.pt", k0, "[512, 256]", "[512, 512]")
    variant("flow.pt", {**flow_sd, "encoder.encoders.1.norm_ff.weight": torch.ones(512)})
    _refused("flow.pt with a tensor the yaml has no room for", lambda: export(rel, bad_out, "x"), "flow.pt",
             "encoder.encoders.1.norm_ff.weight", "unexpected")
    variant("flow.pt", flow_sd)
    half = unfold_weight_norm(hift_sd, old_names=False)
    del half["conv_post.parametrizations.weight.original0"]
    variant("hift.pt", half)
    _refused("hift.pt with half a weight-norm pair", lambda: export(rel, bad_out, "x"), "hift.pt",
             "conv_post.parametrizations.weight.original0")
    variant("hift.pt", unfold_weight_norm(hift_sd, old_names=False))
    variant("cosyvoice2.yaml", SHRUNK_YAML.replace("            num_mid_blocks: 2\n", ""))
    _refused("cosyvoice2.yaml without a value", lambda: export(rel, bad_out, "x"), "cosyvoice2.yaml",
             "flow.decoder.estimator.num_mid_blocks", "missing")
    variant("cosyvoice2.yaml", SHRUNK_YAML.replace("HiFTGenerator", "CausalHiFTGenerator"))
    _refused("a CosyVoice 3 vocoder", lambda: export(rel, bad_out, "x"), "cosyvoice2.yaml", "hift",
             "HiFTGenerator")
    variant("cosyvoice2.yaml", SHRUNK_YAML)
    with open(os.path.join(here, "tiny", "campplus.onnx"), "rb") as f:
        variant("campplus.onnx", f.read()[:4000])
    _refused("a truncated campplus.onnx", lambda: export(rel, bad_out, "x"), "campplus.onnx")
    shutil.copyfile(os.path.join(here, "tiny", "speech_tokenizer_v2.onnx"), os.path.join(rel, "campplus.onnx"))
    _refused("the tokenizer in campplus.onnx's place", lambda: export(rel, bad_out, "x"), "campplus.onnx", "input")
    os.remove(os.path.join(rel, "campplus.onnx"))
    _refused("a release without campplus.onnx", lambda: export(rel, bad_out, "x"), "campplus.onnx", "missing")
    _refused("no release directory", lambda: export(os.path.join(tmp, "nope"), bad_out, "x"), "nope")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model_dir", nargs="?", help="downloaded CosyVoice2-0.5B directory, unmodified")
    ap.add_argument("--out", help="pack directory to write (its parent must exist)")
    ap.add_argument("--name", default="cosyvoice2", help="pack name (default cosyvoice2)")
    ap.add_argument("--self-test", action="store_true", help="export a shrunk release directory written here")
    args = ap.parse_args()
    try:
        if args.self_test:
            self_test()
            return 0
        if not args.model_dir or not args.out:
            ap.error("MODEL_DIR and --out are required (or --self-test)")
        if not os.path.isdir(os.path.dirname(os.path.abspath(args.out))):
            stop(f"the parent directory of --out does not exist: {os.path.dirname(os.path.abspath(args.out))}")
        export(args.model_dir, args.out, args.name)
    except (ExportError, validate.PackError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
