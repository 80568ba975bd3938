"""Build a model pack: seeded random weights in the CosyVoice 2 shape, scripted, written reproducibly."""
import hashlib
import json
import os
import time

import torch

from . import FORMAT_ID, archive, instructions, nets, onnxmodels, sizes, tokenizer

MODULE_FILES = {"frontend": "frontend.pt", "llm": "llm.pt", "flow": "flow.pt", "vocoder": "hift.pt"}
ONNX_FILES = onnxmodels.ONNX_FILES   # role in pack.json's frontend -> file name, as the release names them


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def make_modules(size: str, seed: int) -> dict:
    cfg = sizes.SIZES[size]
    text_vocab = cfg["text_vocab"] or tokenizer.ByteTokenizer().vocab_size
    built = {}
    for i, name in enumerate(MODULE_FILES):
        torch.manual_seed(seed + i)       # one seed per module: resizing one leaves the others unchanged
        if name == "frontend":
            m = nets.Frontend()
        elif name == "llm":
            m = nets.SpeechLM(text_vocab, **cfg["llm"])
        elif name == "flow":
            m = nets.Flow(noise_len=sizes.NOISE_LEN, **cfg["flow"])
        else:
            m = nets.HiFT(cfg["hift"]["base"], cfg["hift"]["f0_channels"], **sizes.HIFT_COMMON)
        built[name] = m.eval()
    torch.manual_seed(seed + 4)
    built["speaker_encoder"] = nets.SpeakerEncoder(cfg["spk"]["channels"], cfg["spk"]["layers"]).eval()
    torch.manual_seed(seed + 5)
    built["speech_tokenizer"] = nets.SpeechTokenizer(cfg["tok"]["channels"], cfg["tok"]["layers"], cfg["tok"]["heads"]).eval()
    return built


def self_check(frontend: torch.jit.ScriptModule) -> float:
    """The scripted Kaldi fbank must match torchaudio's eager kaldi.fbank (which cannot be scripted)."""
    import torchaudio.compliance.kaldi as kaldi
    gen = torch.Generator().manual_seed(3)
    wav = torch.randn(1, 16000, generator=gen) * 0.1
    ref = kaldi.fbank(wav, num_mel_bins=80, dither=0.0, sample_frequency=16000)
    ref = ref - ref.mean(dim=0, keepdim=True)
    diff = float((frontend.kaldi_fbank(wav)[0] - ref).abs().max())
    if diff > 1e-4:
        raise SystemExit(f"error: scripted fbank differs from torchaudio kaldi.fbank by {diff}")
    return diff


def write_pack(size: str, out: str, seed: int, name: str) -> dict:
    cfg = sizes.SIZES[size]
    modules = make_modules(size, seed)
    os.makedirs(out, exist_ok=True)
    params = {}
    for key, fname in MODULE_FILES.items():
        t0 = time.perf_counter()
        scripted = torch.jit.script(modules[key])
        path = os.path.join(out, fname)
        archive.save_script(scripted, path, os.path.splitext(fname)[0])
        params[key] = count(modules[key])
        print(f"  {fname:12s} {params[key]:>13,d} parameters  {os.path.getsize(path):>13,d} bytes  ({time.perf_counter() - t0:.1f} s)")
        if key == "frontend":
            print(f"  fbank self-check: max |scripted - kaldi.fbank| = {self_check(scripted):.2e}")
    for role, fname in ONNX_FILES.items():
        path = os.path.join(out, fname)
        if role == "speaker_encoder":
            onnxmodels.export_speaker_encoder(modules[role], path)
        else:
            onnxmodels.export_speech_tokenizer(modules[role], path)
        params[role] = count(modules[role])
        print(f"  {fname:12s} {params[role]:>13,d} parameters  {os.path.getsize(path):>13,d} bytes  (ONNX opset {onnxmodels.OPSET})")
    return finish_pack(out, name=name, size=size, weights="random (seed %d): this pack makes noise, not speech" % seed,
                       llm=cfg["llm"], text_vocab_size=cfg["text_vocab"] or tokenizer.ByteTokenizer().vocab_size,
                       tokenizer_doc=tokenizer.byte_level(), params=params,
                       streaming=streaming_manifest(modules["flow"].encoder_chunk, modules["flow"].estimator_chunk,
                                                    modules["flow"].encoder.lookahead),
                       source_harmonics=int(modules["vocoder"].harmonic_mul.shape[0]))


VOCODER_CACHES = ("crossfade", "rerun")


def streaming_manifest(encoder_chunk: int, estimator_chunk: int, pre_lookahead: int,
                       vocoder_cache: str = "crossfade") -> dict:
    """pack.json `streaming`: the flow's chunk sizes (the scripted encode_streaming / estimate_streaming use them) and
    CosyVoice2Model's hop constants (cosyvoice/cli/model.py): token_hop_len must equal the encoder's chunk (the
    flow's chunk in tokens). vocoder_cache: how the vocoder streams. "crossfade" (CosyVoice2Model.token2wav): HiFT
    keeps the last 8 mel frames and 3840 source samples and cross-fades the seam (vocode with cache_source);
    "rerun" (CosyVoice3Model.token2wav): the causal HiFT re-runs over all the mel so far with
    vocode_streaming(mel, finalize) and the new samples are those past the ones already emitted (no cache sizes)."""
    if vocoder_cache not in VOCODER_CACHES:
        raise ValueError(f"vocoder_cache {vocoder_cache!r}: expected one of {VOCODER_CACHES}")
    crossfade = vocoder_cache == "crossfade"
    return {"token_hop_len": encoder_chunk, "max_token_hop_len": 4 * encoder_chunk, "hop_scale_factor": 2,
            "pre_lookahead_len": pre_lookahead, "encoder_chunk": encoder_chunk, "estimator_chunk": estimator_chunk,
            "vocoder_cache": vocoder_cache,
            "mel_cache_frames": 8 if crossfade else 0, "source_cache_samples": 8 * 480 if crossfade else 0}


def finish_pack(out: str, name: str, size: str, weights: str, llm: dict, text_vocab_size: int, tokenizer_doc: dict,
                params: dict, family: str = "cosyvoice2", streaming: dict = None, source_harmonics: int = 9,
                flow_padding_invariant: bool = False) -> dict:
    """Write tokenizer.json, hash every file and write pack.json; the modules must already be in `out` under
    MODULE_FILES' names and the two ONNX models (copied as the release ships them) under ONNX_FILES' names. Shared by build_pack.py (random weights) and export_cosyvoice2.py (real weights).
    llm: dict with layers, dim, heads, kv_heads; text_vocab_size: rows of the LLM's text embedding."""
    files = {}
    tok_path = os.path.join(out, "tokenizer.json")
    tokenizer.write(tokenizer_doc, tok_path)
    for role, fname in ONNX_FILES.items():
        try:
            onnxmodels.check_signature(role, os.path.join(out, fname))
        except (OSError, ValueError) as e:
            raise SystemExit(f"error: {e}")
    for fname in list(MODULE_FILES.values()) + list(ONNX_FILES.values()) + ["tokenizer.json"]:
        p = os.path.join(out, fname)
        files[fname] = {"sha256": archive.sha256(p), "bytes": os.path.getsize(p)}
    version = hashlib.sha256("".join(files[f]["sha256"] for f in sorted(files)).encode()).hexdigest()[:12]
    specials = {t["content"]: t["id"] for t in tokenizer_doc["added_tokens"]}
    tokenizer_size = 1 + max(max(tokenizer_doc["model"]["vocab"].values()), max(specials.values()))
    manifest = {
        "format": FORMAT_ID,
        "name": name,
        "version": version,
        "size": size,
        "weights": weights,
        **instructions.declaration(family),   # family, system_prompt (CosyVoice 3), instructions
        "audio": {"prompt_sample_rate": 16000, "output_sample_rate": 24000, "min_prompt_seconds": 3.0,
                  "max_prompt_seconds": 30.0, "speech_token_rate": 25, "mel_frame_rate": 50,
                  "samples_per_mel_frame": 480, "mel_bins": 80},
        "text": {"tokenizer": "tokenizer.json", "vocab_size": tokenizer_size,
                 "special_tokens": specials, "token_max_n": 80, "token_min_n": 60, "merge_len": 20},
        "frontend": {"file": MODULE_FILES["frontend"], "embedding_dim": 192, "whisper_mels": 128, **ONNX_FILES},
        "llm": {"file": MODULE_FILES["llm"], "layers": llm["layers"], "dim": llm["dim"], "heads": llm["heads"],
                "kv_heads": llm["kv_heads"], "head_dim": llm["dim"] // llm["heads"],
                "text_vocab_size": text_vocab_size,
                "speech_token_size": nets.SPEECH_TOKEN_SIZE, "vocab_size": nets.LLM_VOCAB,
                "sos": nets.SOS, "task_id": nets.TASK_ID, "eos": nets.SPEECH_TOKEN_SIZE,
                "stop_tokens": [nets.SPEECH_TOKEN_SIZE, nets.SPEECH_TOKEN_SIZE + 1, nets.SPEECH_TOKEN_SIZE + 2],
                "sampling": {"top_p": 0.8, "top_k": 25, "win_size": 10, "tau_r": 0.1,
                             "min_token_text_ratio": 2, "max_token_text_ratio": 20}},
        "flow": {"file": MODULE_FILES["flow"], "n_timesteps": 10, "cfg_rate": 0.7, "t_scheduler": "cosine",
                 "token_mel_ratio": 2, "noise_frames": sizes.NOISE_LEN,
                 # CosyVoice's estimator (causal convolutions, per-frame LayerNorm, masked attention) gives its valid
                 # frames the same values however far the input is right-padded: the engine may stack flows of
                 # different lengths into one call. The toolchain's own nets (GroupNorm over all frames) may not.
                 **({"padding_invariant": True} if flow_padding_invariant else {})},
        "vocoder": {"file": MODULE_FILES["vocoder"], "source_harmonics": source_harmonics},
        **({"streaming": streaming} if streaming is not None else {}),
        "parameters": params,
        "files": files,
    }
    with open(os.path.join(out, "pack.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    return manifest
