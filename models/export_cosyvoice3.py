#!/usr/bin/env python3
"""Export the unmodified Fun-CosyVoice3-0.5B release directory to a Timbre model pack (family cosyvoice3).

    /usr/bin/python3 models/export_cosyvoice3.py MODEL_DIR --out PACK_DIR [--name N] [--source-seconds S]
    /usr/bin/python3 models/export_cosyvoice3.py --self-test

MODEL_DIR is the downloaded release: cosyvoice3.yaml, llm.pt, flow.pt, hift.pt, campplus.onnx,
speech_tokenizer_v3.onnx and CosyVoice-BlankEN/ (config.json, vocab.json, merges.txt, tokenizer_config.json).
Needs only PyTorch (1.13 or 2.x) and PyYAML; torchaudio for frontend.pt's mel banks. No CosyVoice source.

  llm.pt       CosyVoice3LM's state dict (llm.model.model.*, speech_embedding [6761, D], bias-free llm_decoder
               [6761, D]) loaded into timbrepack.cosyvoice3.SpeechLM3 (the pack's prefill/decode; sos and task_id
               are speech_embedding rows 6561 and 6563; no llm_embedding).
  flow.pt      CausalMaskedDiffWithDiT loaded by key name into timbrepack.cosyvoice3.Flow (pre-lookahead conv + DiT),
               methods encode/estimate/noise with CosyVoice 2's signatures.
  hift.pt      CausalHiFTGenerator, weight norm folded (both key forms; a `generator.` prefix is dropped), loaded into
               timbrepack.cosyvoice3.HiFT; its fixed source buffers are Timbre's documented draws of
               --source-seconds (default 300, upstream's length) of audio.
  campplus.onnx, speech_tokenizer_v3.onnx   checked and copied as they are (ONNX Runtime runs them).
  frontend.pt  the DSP; the 24 kHz prompt mel uses the yaml's feat_extractor fmax (CosyVoice 3: null = 12 kHz).
  tokenizer.json  vocab.json + merges.txt with Qwen2's split, BlankEN's added tokens and CosyVoice3Tokenizer's
               special tokens (control tags, CMU phonemes, pinyin).
  pack.json    family cosyvoice3; llm.vocab_size 6761, stop_tokens 6561..6760, eos 6561, silent-token rule.
Every refusal names the file, the key and what was expected; --self-test shows each kind."""
import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timbrepack import runtime  # noqa: E402

runtime.reexec_with_fixed_hash_seed()
runtime.require_torch()
import torch  # noqa: E402
from torch import nn  # noqa: E402

import export_cosyvoice2 as e2  # noqa: E402
from timbrepack import FORMAT_ID, archive, build, instructions, nets, onnxmodels, sizes, tokenizer, validate  # noqa: E402
from timbrepack import cosyvoice2 as cv2  # noqa: E402
from timbrepack import cosyvoice3 as cv3  # noqa: E402

ExportError = cv2.ReleaseError
YAML = "cosyvoice3.yaml"
ONNX_FILES = {"speaker_encoder": "campplus.onnx", "speech_tokenizer": "speech_tokenizer_v3.onnx"}
MODULE_FILES = {"frontend": "frontend.pt", "llm": "llm.pt", "flow": "flow.pt", "vocoder": "hift.pt"}
MODEL_FILES = [YAML, "llm.pt", "flow.pt", "hift.pt", "campplus.onnx", "speech_tokenizer_v3.onnx",
               "CosyVoice-BlankEN/config.json", "CosyVoice-BlankEN/vocab.json", "CosyVoice-BlankEN/merges.txt"]
DEFAULT_SOURCE_SECONDS = 300          # SineGen2 / SourceModuleHnNSF buffers upstream: 300 * 24000 samples


def stop(msg: str) -> None:
    raise ExportError(msg)


def build_tokenizer(blank_en: str) -> dict:
    saved = tokenizer.SPECIAL_TOKENS
    try:
        tokenizer.SPECIAL_TOKENS = cv3.SPECIAL_TOKENS
        return e2.build_tokenizer(blank_en)
    finally:
        tokenizer.SPECIAL_TOKENS = saved


def llm_from_state(sd: dict, cfg: dict, yaml_llm: dict) -> cv3.SpeechLM3:
    for k in ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "intermediate_size"):
        if k not in cfg:
            stop(f"CosyVoice-BlankEN/config.json has no {k}")
    if abs(float(cfg.get("rms_norm_eps", 1e-6)) - 1e-6) > 1e-12:
        stop(f"CosyVoice-BlankEN/config.json: rms_norm_eps {cfg['rms_norm_eps']} is not the 1e-6 that nets.RMSNorm uses")
    p = "llm.model.model."
    if "llm_embedding.weight" in sd:
        stop("llm.pt has llm_embedding.weight: that is CosyVoice 2's Qwen2LM (use export_cosyvoice2.py), CosyVoice3LM "
             "takes sos/task_id from speech_embedding")
    if p + "embed_tokens.weight" not in sd:
        stop(f"llm.pt has no {p}embed_tokens.weight: not a CosyVoice3LM state dict")
    if "llm_decoder.bias" in sd:
        stop("llm.pt: unexpected key llm_decoder.bias [..]: CosyVoice3LM's llm_decoder has no bias")
    layers, dim = cfg["num_hidden_layers"], cfg["hidden_size"]
    if dim != yaml_llm["input_size"]:
        stop(f"{YAML}: llm.llm_input_size = {yaml_llm['input_size']}: expected config.json hidden_size {dim}")
    m = cv3.SpeechLM3(sd[p + "embed_tokens.weight"].shape[0], dim, layers, cfg["num_attention_heads"],
                      cfg["num_key_value_heads"], cfg["intermediate_size"], float(cfg.get("rope_theta", 10000.0)))
    names = {"text_embedding.weight": p + "embed_tokens.weight", "norm.weight": p + "norm.weight",
             "speech_embedding.weight": "speech_embedding.weight", "llm_decoder.weight": "llm_decoder.weight"}
    ours = {"input_norm": "input_layernorm", "q_proj": "self_attn.q_proj", "k_proj": "self_attn.k_proj",
            "v_proj": "self_attn.v_proj", "o_proj": "self_attn.o_proj", "post_norm": "post_attention_layernorm",
            "gate": "mlp.gate_proj", "up": "mlp.up_proj", "down": "mlp.down_proj"}
    target = m.state_dict()
    for i in range(layers):
        for a, b in ours.items():
            for kind in ("weight", "bias"):
                if f"layers.{i}.{a}.{kind}" in target:
                    names[f"layers.{i}.{a}.{kind}"] = f"{p}layers.{i}.{b}.{kind}"
    if set(target) != set(names):
        stop(f"internal: unmapped SpeechLM3 parameters {sorted(set(target) - set(names))[:5]}")
    missing = [v for v in names.values() if v not in sd]
    if missing:
        shown = ", ".join(f"{v} (expected shape {list(target[k].shape)})" for k, v in names.items() if v in missing[:5])
        stop(f"llm.pt: missing key{'s' if len(missing) > 1 else ''} {shown}")
    for k, v in names.items():
        if tuple(sd[v].shape) != tuple(target[k].shape):
            stop(f"llm.pt: {v} has shape {list(sd[v].shape)}: expected {list(target[k].shape)} "
                 f"(config.json and CosyVoice3LM's 6561 + 200 speech rows)")
    unexpected = sorted(k for k in set(sd) - set(names.values()) if not k.endswith("lm_head.weight")
                        and "rotary_emb" not in k)
    if unexpected:
        stop(f"llm.pt: unexpected key{'s' if len(unexpected) > 1 else ''} "
             + ", ".join(f"{k} {list(sd[k].shape)}" for k in unexpected[:5]))
    m.load_state_dict({k: sd[v].float() for k, v in names.items()}, strict=True)
    return m.eval()


def load_flow(model_dir: str, cfg: dict) -> cv3.Flow:
    c = cv3.flow_config(cfg, os.path.join(model_dir, YAML))
    if abs(c["inference_cfg_rate"] - 0.7) > 1e-9:
        stop(f"{YAML}: flow.decoder.cfm_params.content.inference_cfg_rate = {c['inference_cfg_rate']}: the pack format "
             "carries 0.7")
    flow = cv3.Flow(c, sizes.NOISE_LEN).eval()
    sd = cv2.fold_weight_norm(e2.read_state(os.path.join(model_dir, "flow.pt")), "flow.pt")
    cv2.load_named(flow, sd, "flow.pt", YAML)
    return flow


def load_hift(model_dir: str, cfg: dict, source_seconds: int) -> cv3.HiFT:
    c = cv3.hift_config(cfg, os.path.join(model_dir, YAML))
    hift = cv3.HiFT(c, source_seconds * c["sampling_rate"]).eval()
    raw = e2.read_state(os.path.join(model_dir, "hift.pt"))
    sd = {k[len("generator."):] if k.startswith("generator.") else k: v for k, v in raw.items()}
    cv2.load_named(hift, cv2.fold_weight_norm(sd, "hift.pt"), "hift.pt", YAML)
    return hift


def mel_fmax(cfg: dict) -> float:
    fe = cfg.get("feat_extractor")
    if not isinstance(fe, cv2._Tagged) or fe.target != "matcha.utils.audio.mel_spectrogram" or not isinstance(fe.args, dict):
        stop(f"{YAML}: feat_extractor: expected !name:matcha.utils.audio.mel_spectrogram")
    want = {"n_fft": 1920, "num_mels": 80, "sampling_rate": 24000, "hop_size": 480, "win_size": 1920, "fmin": 0,
            "center": False}
    for k, v in want.items():
        if fe.args.get(k) != v:
            stop(f"{YAML}: feat_extractor.{k} = {fe.args.get(k)!r}: expected {v!r}")
    fmax = fe.args.get("fmax")
    return 12000.0 if fmax is None else float(fmax)


def frontend_module(fmax: float) -> nn.Module:
    """nets.Frontend with the yaml's fmax for the 24 kHz mel. Without torchaudio (e.g. a pip torch 2.x): the tiny
    pack's frontend.pt (checked by sha256) with its mel bank replaced by librosa's slaney bank at that fmax, which is
    the bank matcha's mel_spectrogram (CosyVoice's feat_extractor) builds."""
    from timbrepack import dsp
    if dsp.kaldi is not None:
        fe = nets.Frontend().eval()
        fe.matcha = dsp.MatchaMel(fmax=fmax).eval()
        return fe
    try:
        import librosa
    except ImportError:
        stop("neither torchaudio nor librosa is installed for this python: frontend.pt's mel banks need one "
             "(Debian: apt-get install python3-torchaudio, and run /usr/bin/python3)")
    fe = e2.frontend_module()
    bank = torch.from_numpy(librosa.filters.mel(sr=24000, n_fft=1920, n_mels=80, fmin=0.0, fmax=fmax)).float()
    if tuple(bank.shape) != tuple(fe.matcha.mel_basis.shape):
        stop(f"internal: mel bank {tuple(bank.shape)} does not fit frontend.pt's {tuple(fe.matcha.mel_basis.shape)}")
    fe.matcha.mel_basis = bank.contiguous()
    print(f"  frontend.pt: 24 kHz mel bank from librosa (fmax {fmax:g})")
    return fe


def scripted_checked(module: nn.Module, what: str) -> torch.jit.ScriptModule:
    scripted = torch.jit.script(module)
    g = torch.Generator().manual_seed(11)
    with torch.no_grad():
        if isinstance(module, cv3.Flow):
            toks = torch.randint(0, module.input_embedding.num_embeddings, (2, 13), generator=g)
            args = (toks, torch.tensor([13, 9]), torch.randn(2, 6, 80, generator=g), torch.tensor([6, 4]),
                    torch.randn(2, 192, generator=g))
            a, b = module.encode(*args), scripted.encode(*args)
            est = (torch.randn(2, 80, 26, generator=g), a[1], a[0], torch.rand(2, generator=g), a[2], a[3])
            pairs = list(zip(a, b)) + [(module.estimate(*est), scripted.estimate(*est))]
            a, b = module.encode_streaming(*args, 3, True), scripted.encode_streaming(*args, 3, True)
            est = (torch.randn(2, 80, 20, generator=g), a[1], a[0], torch.rand(2, generator=g), a[2], a[3], True)
            pairs += list(zip(a, b)) + [(module.estimate_streaming(*est), scripted.estimate_streaming(*est))]
        else:
            mel = torch.randn(1, 80, 12, generator=g)
            pairs = [(module(mel), scripted(mel)), (module.vocode_streaming(mel, False)[0],
                                                    scripted.vocode_streaming(mel, False)[0])]
    for x, y in pairs:
        if x.shape != y.shape or not bool(torch.isfinite(y).all()) or float((x - y).abs().max()) > 1e-4:
            stop(f"internal: scripted {what} differs from the eager module")
    return scripted


def check_inputs(model_dir: str) -> dict:
    if not os.path.isdir(model_dir):
        stop(f"{model_dir}: no such directory (the downloaded Fun-CosyVoice3-0.5B)")
    if os.path.isfile(os.path.join(model_dir, "cosyvoice2.yaml")) and not os.path.isfile(os.path.join(model_dir, YAML)):
        stop(f"{model_dir}: has cosyvoice2.yaml, not {YAML}: a CosyVoice 2 release (use export_cosyvoice2.py)")
    problems = [f"{model_dir}/{f}: missing" for f in MODEL_FILES if not os.path.isfile(os.path.join(model_dir, f))]
    if problems:
        stop("cannot export:\n  " + "\n  ".join(problems))
    sources = {}
    for role, fname in ONNX_FILES.items():
        path = os.path.join(model_dir, fname)
        try:
            summary = onnxmodels.check_signature(role, path)
        except (OSError, ValueError) as e:
            stop(str(e))
        print(f"  {fname}: {summary}")
        sources[role] = path
    return sources


def finish_pack(out: str, name: str, size: str, weights: str, llm: cv3.SpeechLM3, tokenizer_doc: dict,
                params: dict, fmax: float, source_seconds: int, streaming: dict) -> dict:
    files = {}
    tokenizer.write(tokenizer_doc, os.path.join(out, "tokenizer.json"))
    for fname in list(MODULE_FILES.values()) + list(ONNX_FILES.values()) + ["tokenizer.json"]:
        p = os.path.join(out, fname)
        files[fname] = {"sha256": archive.sha256(p), "bytes": os.path.getsize(p)}
    version = hashlib.sha256("".join(files[f]["sha256"] for f in sorted(files)).encode()).hexdigest()[:12]
    specials = {t["content"]: t["id"] for t in tokenizer_doc["added_tokens"]}
    tokenizer_size = 1 + max(max(tokenizer_doc["model"]["vocab"].values()), max(specials.values()))
    dim = llm.text_embedding.weight.shape[1]
    manifest = {
        "format": FORMAT_ID,
        **instructions.declaration("cosyvoice3"),   # family, system_prompt, upstream's instruction list (26)
        "name": name,
        "version": version,
        "size": size,
        "weights": weights,
        "audio": {"prompt_sample_rate": 16000, "output_sample_rate": 24000, "min_prompt_seconds": 3.0,
                  "max_prompt_seconds": 30.0, "speech_token_rate": 25, "mel_frame_rate": 50,
                  "samples_per_mel_frame": 480, "mel_bins": 80, "speech_feat_fmax": fmax},
        "text": {"tokenizer": "tokenizer.json", "vocab_size": tokenizer_size, "special_tokens": specials,
                 "token_max_n": 80, "token_min_n": 60, "merge_len": 20,
                 "end_of_prompt": cv3.ENDOFPROMPT, "end_of_prompt_id": specials[cv3.ENDOFPROMPT]},
        "frontend": {"file": MODULE_FILES["frontend"], "embedding_dim": 192, "whisper_mels": 128, **ONNX_FILES},
        "llm": {"file": MODULE_FILES["llm"], "layers": llm.layers_n, "dim": dim, "heads": llm.layers[0].heads,
                "kv_heads": llm.kv_heads, "head_dim": llm.head_dim,
                "text_vocab_size": llm.text_embedding.weight.shape[0],
                "speech_token_size": cv3.SPEECH_TOKEN_SIZE, "vocab_size": cv3.LLM_VOCAB,
                "sos": cv3.SOS, "task_id": cv3.TASK_ID, "sos_task_from": "speech_embedding",
                "eos": cv3.EOS, "stop_tokens": cv3.STOP_TOKENS,
                "silent_tokens": cv3.SILENT_TOKENS, "max_silent_run": cv3.MAX_SILENT_RUN,
                "sampling": {"top_p": 0.8, "top_k": 25, "win_size": 10, "tau_r": 0.1,
                             "min_token_text_ratio": 2, "max_token_text_ratio": 20}},
        "flow": {"file": MODULE_FILES["flow"], "n_timesteps": 10, "cfg_rate": 0.7, "t_scheduler": "cosine",
                 "token_mel_ratio": 2, "noise_frames": sizes.NOISE_LEN, "estimator": "dit", "pre_lookahead": 3,
                 "padding_invariant": True},   # causal DiT: right padding leaves the valid frames' values
        "vocoder": {"file": MODULE_FILES["vocoder"], "causal": True, "source_seconds": source_seconds,
                    "source_harmonics": 0},   # the causal source draws nothing: vocode takes empty phase and noise
        "streaming": streaming,
        "parameters": params,
        "files": files,
    }
    with open(os.path.join(out, "pack.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    return manifest


def export(model_dir: str, out: str, name: str, size: str = "cosyvoice3",
           weights: str = "Fun-CosyVoice3-0.5B-2512 (FunAudioLLM), converted by export_cosyvoice3.py",
           source_seconds: int = DEFAULT_SOURCE_SECONDS) -> dict:
    print("release files")
    onnx_sources = check_inputs(model_dir)
    yaml_path = os.path.join(model_dir, YAML)
    cfg = cv2.load_config(yaml_path)
    yaml_llm = cv3.llm_config(cfg, yaml_path)
    fmax = mel_fmax(cfg)
    blank = os.path.join(model_dir, "CosyVoice-BlankEN")
    print("tokenizer.json from CosyVoice-BlankEN")
    tok_doc = build_tokenizer(blank)
    with open(os.path.join(blank, "config.json")) as f:
        llm_cfg = json.load(f)
    print("llm.pt -> SpeechLM3")
    llm = llm_from_state(e2.read_state(os.path.join(model_dir, "llm.pt")), llm_cfg, yaml_llm)
    params = {"llm": e2.count(llm)}
    llm_s = torch.jit.script(llm)
    print("flow.pt -> timbrepack.cosyvoice3.Flow")
    flow = load_flow(model_dir, cfg)
    params["flow"] = e2.count(flow)
    flow_s = scripted_checked(flow, "flow")
    # CosyVoice3Model's hops (the chunk in tokens = DiT static_chunk_size / token_mel_ratio); the causal HiFT is re-run
    # over all the mel so far (CosyVoice3Model.token2wav): no cross-fade cache
    streaming = build.streaming_manifest(flow.token_chunk, flow.estimator_chunk, flow.pre_lookahead_len, "rerun")
    del flow
    print("hift.pt -> timbrepack.cosyvoice3.HiFT")
    hift = load_hift(model_dir, cfg, source_seconds)
    params["vocoder"] = e2.count(hift)
    hift_s = scripted_checked(hift, "vocoder")
    del hift
    fe = frontend_module(fmax)
    params["frontend"] = e2.count(fe)
    print(f"writing {out}")
    os.makedirs(out, exist_ok=True)
    modules = {"frontend": fe, "llm": llm_s, "flow": flow_s, "vocoder": hift_s}
    for key, fname in MODULE_FILES.items():
        m = modules[key] if isinstance(modules[key], torch.jit.ScriptModule) else torch.jit.script(modules[key])
        archive.save_script(m, os.path.join(out, fname), os.path.splitext(fname)[0])
        print(f"  {fname:26s} {params[key]:>13,d} parameters  {os.path.getsize(os.path.join(out, fname)):>13,d} bytes")
    for role, fname in ONNX_FILES.items():
        shutil.copyfile(onnx_sources[role], os.path.join(out, fname))
    manifest = finish_pack(out, name, size, weights, llm, tok_doc, params, fmax, source_seconds, streaming)
    del llm, llm_s, flow_s, hift_s
    validate.check(out)
    return manifest


# -------------------------------------------------------------------------- cosyvoice3-shape release
# The sizes of Fun-CosyVoice3-0.5B (examples/libritts/cosyvoice3/conf/cosyvoice3.yaml, Qwen2.5-0.5B's config.json):
# only the entries this exporter reads, in the release's hyperpyyaml form.
FULL_YAML = """# cosyvoice3-shape: Fun-CosyVoice3-0.5B's sizes with random weights (export_cosyvoice3.py --random-release)
sample_rate: 24000
llm_input_size: 896
llm_output_size: 896
spk_embed_dim: 192
token_frame_rate: 25
token_mel_ratio: 2
chunk_size: 25
num_decoding_left_chunks: -1
llm: !new:cosyvoice.llm.llm.CosyVoice3LM
    llm_input_size: !ref <llm_input_size>
    llm_output_size: !ref <llm_output_size>
    speech_token_size: 6561
flow: !new:cosyvoice.flow.flow.CausalMaskedDiffWithDiT
    input_size: 80
    output_size: 80
    spk_embed_dim: !ref <spk_embed_dim>
    output_type: 'mel'
    vocab_size: 6561
    input_frame_rate: !ref <token_frame_rate>
    token_mel_ratio: !ref <token_mel_ratio>
    pre_lookahead_len: 3
    pre_lookahead_layer: !new:cosyvoice.transformer.upsample_encoder.PreLookaheadLayer
        in_channels: 80
        channels: 1024
        pre_lookahead_len: 3
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
        estimator: !new:cosyvoice.flow.DiT.dit.DiT
            dim: 1024
            depth: 22
            heads: 16
            dim_head: 64
            ff_mult: 2
            mel_dim: 80
            mu_dim: 80
            spk_dim: 80
            out_channels: 80
            static_chunk_size: !ref <chunk_size> * <token_mel_ratio>
            num_decoding_left_chunks: !ref <num_decoding_left_chunks>
hift: !new:cosyvoice.hifigan.generator.CausalHiFTGenerator
    in_channels: 80
    base_channels: 512
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
    conv_pre_look_right: 4
    f0_predictor: !new:cosyvoice.hifigan.f0_predictor.CausalConvRNNF0Predictor
        num_class: 1
        in_channels: 80
        cond_channels: 512
feat_extractor: !name:matcha.utils.audio.mel_spectrogram
    n_fft: 1920
    num_mels: 80
    sampling_rate: !ref <sample_rate>
    hop_size: 480
    win_size: 1920
    fmin: 0
    fmax: null
    center: False
"""
QWEN25_05B = {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 896,
              "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2,
              "max_position_embeddings": 32768, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0,
              "tie_word_embeddings": True, "vocab_size": 151936, "torch_dtype": "float32"}


def random_release(out: str) -> None:
    """A release-layout directory at Fun-CosyVoice3-0.5B's sizes with seeded random weights (cost measurements only:
    it makes noise). Tokenizer files and the two ONNX models are the conformance fixture's small ones."""
    here = os.path.dirname(os.path.abspath(__file__))
    fixture = os.path.join(here, "conformance", "cosyvoice3", "model")
    os.makedirs(os.path.join(out, "CosyVoice-BlankEN"), exist_ok=True)
    with open(os.path.join(out, YAML), "w") as f:
        f.write(FULL_YAML)
    for name in ("vocab.json", "merges.txt", "tokenizer_config.json"):
        shutil.copyfile(os.path.join(fixture, "CosyVoice-BlankEN", name), os.path.join(out, "CosyVoice-BlankEN", name))
    with open(os.path.join(out, "CosyVoice-BlankEN", "config.json"), "w") as f:
        json.dump(QWEN25_05B, f, indent=2)
    for name in ONNX_FILES.values():
        shutil.copyfile(os.path.join(fixture, name), os.path.join(out, name))
    cfg = cv2.load_config(os.path.join(out, YAML))
    q = QWEN25_05B
    torch.manual_seed(1)
    llm = cv3.SpeechLM3(q["vocab_size"], q["hidden_size"], q["num_hidden_layers"], q["num_attention_heads"],
                        q["num_key_value_heads"], q["intermediate_size"], q["rope_theta"])
    e2.randomize(llm, 1)
    sd = e2.cosyvoice_llm_state(llm)
    del llm
    torch.save(sd, os.path.join(out, "llm.pt"))
    del sd
    flow = cv3.Flow(cv3.flow_config(cfg, YAML), sizes.NOISE_LEN)
    e2.randomize(flow, 2)
    torch.save({k: v for k, v in flow.state_dict().items() if k != "rand_noise"}, os.path.join(out, "flow.pt"))
    del flow
    hift = cv3.HiFT(cv3.hift_config(cfg, YAML), 24000)
    e2.randomize(hift, 3)
    sd = {k: v.float() for k, v in hift.state_dict().items()
          if k not in ("m_source.rand_ini", "m_source.sine_waves", "m_source.harmonic_mul", "stft_window")}
    torch.save(e2.unfold_weight_norm(sd, old_names=False), os.path.join(out, "hift.pt"))
    print(f"wrote {out}")


# ----------------------------------------------------------------------------------------- self-test
def _refused(what: str, fn, *needles: str) -> None:
    try:
        fn()
    except ExportError as e:
        msg = str(e)
        if all(n in msg for n in needles):
            print(f"  ok  refused {what}: {msg.splitlines()[0]}")
            return
        raise SystemExit(f"self-test: {what}: refusal {msg!r} lacks {needles}")
    raise SystemExit(f"self-test: {what}: not refused")


def self_test(model_dir: str) -> None:
    """Exports a release-layout directory (the conformance fixture by default), then shows each refusal on
    damaged copies: weight-norm keys in the other form, a missing key, a wrong shape, an unexpected key, half a
    weight-norm pair, a CosyVoice 2 llm.pt, a missing yaml value, a missing file, a bad ONNX file."""
    tmp = tempfile.mkdtemp(prefix="cv3-selftest-")
    try:
        work = os.path.join(tmp, "model")
        shutil.copytree(model_dir, work)
        hift_sd = torch.load(os.path.join(work, "hift.pt"), map_location="cpu")
        # the other weight-norm form for every pair (old <-> new names): the export must accept both
        flipped = {}
        for k, v in hift_sd.items():
            for a, b in ((".weight_g", ".parametrizations.weight.original0"),
                         (".weight_v", ".parametrizations.weight.original1")):
                if k.endswith(a):
                    k = k[:-len(a)] + b
                    break
                if k.endswith(b):
                    k = k[:-len(b)] + a
                    break
            flipped["generator." + k] = v
        torch.save(flipped, os.path.join(work, "hift.pt"))
        export(work, os.path.join(tmp, "pack"), "selftest", source_seconds=2)
        print("  ok  exported with every weight-norm pair in the other form and a generator. prefix")
        torch.save(hift_sd, os.path.join(work, "hift.pt"))

        def damaged(fname, edit, what, *needles):
            path = os.path.join(work, fname)
            keep = path + ".keep"
            shutil.copyfile(path, keep)
            try:
                edit(path)
                _refused(what, lambda: export(work, os.path.join(tmp, "bad"), "bad", source_seconds=2), *needles)
            finally:
                shutil.move(keep, path)

        def sd_edit(fn):
            def edit(path):
                sd = torch.load(path, map_location="cpu")
                fn(sd)
                torch.save(sd, path)
            return edit

        damaged("flow.pt", sd_edit(lambda sd: sd.pop("decoder.estimator.proj_out.weight")), "a missing flow key",
                "flow.pt", "decoder.estimator.proj_out.weight")
        damaged("flow.pt", sd_edit(lambda sd: sd.__setitem__("input_embedding.weight", torch.zeros(10, 80))),
                "a wrong shape", "flow.pt", "input_embedding.weight", "expected")
        damaged("flow.pt", sd_edit(lambda sd: sd.__setitem__("decoder.estimator.extra", torch.zeros(3))),
                "an unexpected key", "flow.pt", "decoder.estimator.extra")
        g_key = next(k for k in hift_sd if k.endswith("original0") or k.endswith("weight_g"))
        damaged("hift.pt", sd_edit(lambda sd: sd.pop(g_key)), "half a weight-norm pair", "hift.pt", "partner")
        damaged("llm.pt", sd_edit(lambda sd: sd.__setitem__("llm_embedding.weight", torch.zeros(2, 4))),
                "a CosyVoice 2 llm.pt", "llm.pt", "llm_embedding.weight", "export_cosyvoice2.py")
        damaged("llm.pt", sd_edit(lambda sd: sd.__setitem__("llm_decoder.weight", torch.zeros(6564, 4))),
                "a CosyVoice 2-sized head", "llm.pt", "llm_decoder.weight", "expected")

        def yaml_edit(old, new):
            def edit(path):
                with open(path) as f:
                    text = f.read()
                assert old in text, old
                with open(path, "w") as f:
                    f.write(text.replace(old, new, 1))
            return edit

        damaged(YAML, yaml_edit("            depth:", "            depth_removed:"), "a missing yaml value",
                YAML, "flow.decoder.estimator.depth")
        damaged(YAML, yaml_edit("cosyvoice.flow.flow.CausalMaskedDiffWithDiT", "cosyvoice.flow.flow.CausalMaskedDiffWithXvec"),
                "a CosyVoice 2 flow class", YAML, "CausalMaskedDiffWithDiT")
        damaged("speech_tokenizer_v3.onnx", lambda p: open(p, "wb").write(b"not onnx"), "a bad ONNX file",
                "speech_tokenizer_v3.onnx")
        damaged("flow.pt", lambda p: os.remove(p), "a missing file", "flow.pt", "missing")
        print("self-test passed")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model_dir", nargs="?", help="downloaded Fun-CosyVoice3-0.5B directory, unmodified")
    ap.add_argument("--out", help="pack directory to write (its parent must exist)")
    ap.add_argument("--name", default="cosyvoice3", help="pack name (default cosyvoice3)")
    ap.add_argument("--size", default="cosyvoice3", help="pack.json size label (default cosyvoice3)")
    ap.add_argument("--source-seconds", type=int, default=DEFAULT_SOURCE_SECONDS,
                    help="length of the vocoder's fixed source buffers, the longest vocoder call (default 300, as upstream)")
    ap.add_argument("--random-release", metavar="DIR",
                    help="write a release-layout directory at Fun-CosyVoice3-0.5B's sizes with random weights (then export it)")
    ap.add_argument("--self-test", action="store_true",
                    help="export the conformance model directory (or MODEL_DIR) and check every refusal")
    args = ap.parse_args()
    try:
        if args.self_test:
            here = os.path.dirname(os.path.abspath(__file__))
            self_test(args.model_dir or os.path.join(here, "conformance", "cosyvoice3", "model"))
            return 0
        if args.random_release:
            random_release(args.random_release)
            return 0
        if not args.model_dir or not args.out:
            ap.error("MODEL_DIR and --out are required (or --self-test, --random-release)")
        if not os.path.isdir(os.path.dirname(os.path.abspath(args.out))):
            stop(f"the parent directory of --out does not exist: {os.path.dirname(os.path.abspath(args.out))}")
        if args.source_seconds < 1:
            stop("--source-seconds must be at least 1")
        export(args.model_dir, args.out, args.name, size=args.size, source_seconds=args.source_seconds)
    except (ExportError, validate.PackError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
