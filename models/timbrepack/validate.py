"""Pack validator for the timbre-pack/2 format (models/README.md): manifest, file hashes, archive hygiene,
method signatures and a small smoke call of every method. Used by check_pack.py and export_cosyvoice2.py."""
import hashlib
import json
import os
import zipfile
from typing import Callable, Dict, List, Tuple

import torch

from . import FORMAT_ID, onnxmodels

# module key in pack.json -> method -> ((argument name, TorchScript type), ...) in order, without self.
T, I, B = "Tensor", "int", "bool"
METHODS: Dict[str, Dict[str, Tuple[Tuple[str, str], ...]]] = {
    "frontend": {
        "resample": (("wav", T), ("orig", I), ("new", I)),
        "kaldi_fbank": (("wav16k", T),),
        "whisper_log_mel": (("wav16k", T),),
        "speech_feat": (("wav24k", T),),
    },
    "llm": {
        "prefill": (("text", T), ("text_len", T), ("speech", T), ("speech_len", T), ("cache_len", I)),
        "decode": (("token", T), ("k_cache", T), ("v_cache", T), ("position", T)),
    },
    "flow": {
        "encode": (("tokens", T), ("token_len", T), ("prompt_feat", T), ("prompt_feat_len", T), ("embedding", T)),
        "estimate": (("x", T), ("mask", T), ("mu", T), ("t", T), ("spks", T), ("cond", T)),
        "noise": (("frames", I),),
        "encode_streaming": (("tokens", T), ("token_len", T), ("prompt_feat", T), ("prompt_feat_len", T),
                             ("embedding", T), ("context", I), ("streaming", B)),
        "estimate_streaming": (("x", T), ("mask", T), ("mu", T), ("t", T), ("spks", T), ("cond", T), ("streaming", B)),
    },
    "vocoder": {
        "forward": (("mel", T),),
        "vocode": (("mel", T), ("phase", T), ("noise", T), ("cache_source", T)),
        # only packs whose streaming section declares vocoder_cache "rerun" (a causal vocoder re-run per hop)
        "vocode_streaming": (("mel", T), ("finalize", B)),
    },
}
REQUIRED_KEYS = ["format", "name", "version", "size", "weights", "audio", "text", "frontend", "llm", "flow", "vocoder",
                 "parameters", "files"]


class PackError(Exception):
    pass


def _fail(msg: str) -> None:
    raise PackError(msg)


def load_manifest(directory: str) -> dict:
    if not os.path.isdir(directory):
        _fail(f"{directory}: no such directory")
    path = os.path.join(directory, "pack.json")
    try:
        with open(path, encoding="utf-8") as f:
            manifest = json.load(f)
    except FileNotFoundError:
        _fail(f"{path}: missing (not a model pack directory?)")
    except json.JSONDecodeError as e:
        _fail(f"{path}: not valid JSON ({e})")
    missing = [k for k in REQUIRED_KEYS if k not in manifest]
    if missing:
        _fail(f"{path}: missing keys {missing}")
    if manifest["format"] != FORMAT_ID:
        _fail(f"{path}: format is {manifest['format']!r}, this toolchain reads {FORMAT_ID!r}")
    return manifest


def check_files(directory: str, manifest: dict, log: Callable[[str], None]) -> None:
    files = manifest["files"]
    for role in onnxmodels.ONNX_FILES:
        if not isinstance(manifest["frontend"].get(role), str):
            _fail(f"pack.json: frontend.{role} (the ONNX file) is missing")
    needed = [manifest[k]["file"] for k in METHODS] + [manifest["text"]["tokenizer"]] + [
        manifest["frontend"][role] for role in onnxmodels.ONNX_FILES]
    for name in needed:
        if name not in files:
            _fail(f"pack.json: files has no entry for {name}")
    for name, entry in files.items():
        p = os.path.join(directory, name)
        if not os.path.isfile(p):
            _fail(f"{p}: missing")
        size = os.path.getsize(p)
        if size != entry["bytes"]:
            _fail(f"{p}: {size} bytes, pack.json says {entry['bytes']}")
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        if h.hexdigest() != entry["sha256"]:
            _fail(f"{p}: sha256 {h.hexdigest()} differs from pack.json's {entry['sha256']}")
        if name.endswith(".pt"):
            with zipfile.ZipFile(p) as z:
                debug = [n for n in z.namelist() if n.endswith(".debug_pkl")]
            if debug:
                _fail(f"{p}: holds {len(debug)} *.debug_pkl entries (debug info must be stripped)")
        log(f"  ok  {name:16s} {size:>14,d} bytes  sha256 {entry['sha256'][:16]}...")
    version = hashlib.sha256("".join(files[f]["sha256"] for f in sorted(files)).encode()).hexdigest()[:12]
    if version != manifest["version"]:
        _fail(f"pack.json: version {manifest['version']} is not the content hash of the files ({version})")
    golden = os.path.join(directory, "golden", "golden.json")
    if os.path.isfile(golden):
        with open(golden, encoding="utf-8") as f:
            index = json.load(f)
        if index.get("pack_version") != manifest["version"]:
            _fail(f"{golden}: made for pack version {index.get('pack_version')}, the pack is {manifest['version']}")
        for name, entry in index["files"].items():
            p = os.path.join(directory, "golden", name)
            if not os.path.isfile(p) or os.path.getsize(p) != entry["bytes"]:
                _fail(f"{p}: missing or of the wrong size")
            with open(p, "rb") as f:
                if hashlib.sha256(f.read()).hexdigest() != entry["sha256"]:
                    _fail(f"{p}: sha256 differs from golden.json")
        log(f"  ok  golden/ ({len(index['files'])} files, {len(index['cases'])} cases)")


def reruns_vocoder(manifest: dict) -> bool:
    """The pack streams with a vocoder re-run over all the mel so far (streaming.vocoder_cache "rerun")."""
    return (manifest.get("streaming") or {}).get("vocoder_cache", "crossfade") == "rerun"


def check_signatures(module: torch.jit.ScriptModule, key: str, streams: bool = True, rerun: bool = False) -> List[str]:
    """streams: the pack declares `streaming`; without it the *_streaming methods are not required.
    rerun: it declares vocoder_cache "rerun"; without it vocoder.vocode_streaming is not required."""
    lines = []
    for method, args in METHODS[key].items():
        if method.endswith("_streaming") and not streams:
            continue
        if key == "vocoder" and method == "vocode_streaming" and not rerun:
            continue
        try:
            schema = module._c._get_method(method).schema
        except RuntimeError:
            _fail(f"{key}: method {method} is missing")
        got = [(a.name, str(a.type)) for a in schema.arguments[1:]]
        if got != list(args):
            _fail(f"{key}.{method}: arguments {got}, the format wants {list(args)}")
        lines.append(f"{method}({', '.join(n for n, _ in args)})")
    return lines


def _expect(cond: bool, msg: str) -> None:
    if not cond:
        _fail(msg)


@torch.inference_mode()
def smoke(modules: Dict[str, torch.jit.ScriptModule], manifest: dict) -> None:
    """Small calls of every method; checks shapes, dtypes and finiteness."""
    fe, llm, flow, hift = modules["frontend"], modules["llm"], modules["flow"], modules["vocoder"]
    gen = torch.Generator().manual_seed(1)
    wav16k = torch.randn(1, 16000, generator=gen) * 0.1
    wav24k = fe.resample(wav16k, 16000, 24000)
    _expect(tuple(wav24k.shape) == (1, 24000), f"frontend.resample: shape {tuple(wav24k.shape)}, wanted (1, 24000)")
    fb = fe.kaldi_fbank(wav16k)
    _expect(tuple(fb.shape) == (1, 98, 80), f"frontend.kaldi_fbank: shape {tuple(fb.shape)}, wanted (1, 98, 80)")
    wm = fe.whisper_log_mel(wav16k)
    _expect(tuple(wm.shape) == (1, 128, 100), f"frontend.whisper_log_mel: shape {tuple(wm.shape)}, wanted (1, 128, 100)")
    onnx = modules.get("onnx")
    if onnx is not None:
        emb = onnx.speaker_embedding(fb)
        _expect(tuple(emb.shape) == (1, 192) and bool(torch.isfinite(emb).all()),
                f"{onnx.paths['speaker_encoder']}: embedding of shape {tuple(emb.shape)}, wanted (1, 192)")
        tok = onnx.speech_tokens(wm)
        _expect(tok.dim() == 2 and tok.shape[0] == 1 and 24 <= tok.shape[1] <= 26,
                f"{onnx.paths['speech_tokenizer']}: tokens of shape {tuple(tok.shape)}, wanted (1, ~25) for 1 s")
        _expect(bool(((tok >= 0) & (tok < manifest["llm"]["speech_token_size"])).all()),
                f"{onnx.paths['speech_tokenizer']}: ids out of range")
    else:
        emb = torch.randn(1, 192, generator=gen)
    feat = fe.speech_feat(wav24k)
    _expect(tuple(feat.shape) == (1, 50, 80), f"frontend.speech_feat: shape {tuple(feat.shape)}, wanted (1, 50, 80)")

    m = manifest["llm"]
    text = torch.tensor([[1, 2, 3, 4, 5], [6, 7, 0, 0, 0]], dtype=torch.int64)
    speech = torch.tensor([[10, 11, 12], [13, 14, 0]], dtype=torch.int64)
    text_len, speech_len = torch.tensor([5, 2]), torch.tensor([3, 2])
    logp, k, v, pos = llm.prefill(text, text_len, speech, speech_len, 16)
    want = (m["layers"], 2, m["kv_heads"], 16, m["head_dim"])
    _expect(tuple(k.shape) == want and tuple(v.shape) == want, f"llm.prefill: cache shape {tuple(k.shape)}, wanted {want}")
    _expect(tuple(logp.shape) == (2, m["vocab_size"]), f"llm.prefill: logp shape {tuple(logp.shape)}")
    _expect(pos.tolist() == [10, 6], f"llm.prefill: seq_len {pos.tolist()}, wanted [10, 6]")
    probs = logp.exp().sum(-1)
    _expect(bool(torch.allclose(probs, torch.ones(2), atol=1e-3)), "llm.prefill: logp is not a log-softmax")
    before = k.clone()
    logp2 = llm.decode(logp.argmax(-1), k, v, pos)
    _expect(tuple(logp2.shape) == (2, m["vocab_size"]) and bool(torch.isfinite(logp2).all()), "llm.decode: bad logp")
    _expect(not torch.equal(before[:, 0, :, 10], k[:, 0, :, 10]), "llm.decode: did not write the cache in place")

    tokens = torch.randint(0, 6561, (1, 12), generator=gen)
    pf = torch.randn(1, 10, 80, generator=gen)
    mu, mask, spks, cond = flow.encode(tokens, torch.tensor([12]), pf, torch.tensor([10]), emb)
    _expect(tuple(mu.shape) == (1, 80, 24) and tuple(mask.shape) == (1, 1, 24) and tuple(spks.shape) == (1, 80)
            and tuple(cond.shape) == (1, 80, 24), f"flow.encode: shapes {tuple(mu.shape)} {tuple(mask.shape)} {tuple(spks.shape)} {tuple(cond.shape)}")
    x = flow.noise(24)
    _expect(tuple(x.shape) == (1, 80, 24), f"flow.noise: shape {tuple(x.shape)}")
    vel = flow.estimate(torch.cat([x, x]), torch.cat([mask, mask]), torch.cat([mu, torch.zeros_like(mu)]),
                        torch.tensor([0.5, 0.5]), torch.cat([spks, torch.zeros_like(spks)]),
                        torch.cat([cond, torch.zeros_like(cond)]))
    _expect(tuple(vel.shape) == (2, 80, 24) and bool(torch.isfinite(vel).all()), f"flow.estimate: shape {tuple(vel.shape)}")

    st = manifest.get("streaming")           # optional: packs without it do not stream by hop
    if st is not None:
        look = st.get("pre_lookahead_len", 3)
        mu2, mask2, spks2, cond2 = flow.encode_streaming(tokens, torch.tensor([12]), pf, torch.tensor([10]), emb, look, True)
        frames = 2 * (12 - look)
        _expect(tuple(mu2.shape) == (1, 80, frames) and tuple(mask2.shape) == (1, 1, frames),
                f"flow.encode_streaming: shapes {tuple(mu2.shape)} {tuple(mask2.shape)}, wanted {frames} frames")
        vel2 = flow.estimate_streaming(torch.cat([x[:, :, :frames]] * 2), torch.cat([mask2, mask2]), torch.cat([mu2, mu2]),
                                       torch.tensor([0.5, 0.5]), torch.cat([spks2, spks2]), torch.cat([cond2, cond2]), True)
        _expect(tuple(vel2.shape) == (2, 80, frames) and bool(torch.isfinite(vel2).all()),
                f"flow.estimate_streaming: shape {tuple(vel2.shape)}")

    mel = torch.randn(1, 80, 10, generator=gen)
    wav = hift(mel)
    spf = manifest["audio"]["samples_per_mel_frame"]
    _expect(tuple(wav.shape) == (1, 10 * spf) and bool(torch.isfinite(wav).all()),
            f"vocoder.forward: shape {tuple(wav.shape)}, wanted (1, {10 * spf})")
    h = manifest["vocoder"].get("source_harmonics", 9)
    cached = 2 * spf if h > 0 else 0          # h = 0: a causal vocoder, no draws and no source cache
    wav2, src = hift.vocode(mel, torch.rand(1, h, generator=gen), torch.randn(1, h, 10 * spf if h > 0 else 0, generator=gen),
                            torch.zeros(1, 1, cached))
    _expect(tuple(wav2.shape) == (1, 10 * spf) and tuple(src.shape) == (1, 1, 10 * spf)
            and bool(torch.isfinite(wav2).all()) and (cached == 0 or float(src[0, 0, :cached].abs().max()) == 0.0),
            f"vocoder.vocode: shapes {tuple(wav2.shape)} {tuple(src.shape)}, or the cache source was not used")
    if reruns_vocoder(manifest):
        _expect(st.get("mel_cache_frames", 0) == 0 and st.get("source_cache_samples", 0) == 0,
                "streaming: a vocoder re-run over all the mel keeps no mel/source cache (both must be 0)")
        wav3, _ = hift.vocode_streaming(mel, True)
        _expect(bool(torch.equal(wav3, wav)), "vocoder.vocode_streaming(mel, True) differs from forward(mel)")
        wav4, _ = hift.vocode_streaming(mel, False)
        # finalize=False holds back the look-ahead frames: fewer samples, the same leading ones as the whole call
        _expect(wav4.shape[0] == 1 and 0 < wav4.shape[1] < 10 * spf and wav4.shape[1] % spf == 0
                and float((wav4 - wav[:, :wav4.shape[1]]).abs().max()) < 1e-4,
                f"vocoder.vocode_streaming(mel, False): shape {tuple(wav4.shape)} or its samples differ from forward's")
    elif st is not None and st.get("vocoder_cache", "crossfade") != "crossfade":
        _fail(f"streaming.vocoder_cache {st.get('vocoder_cache')!r}: expected 'crossfade' or 'rerun'")


def check(directory: str, log: Callable[[str], None] = print, run_smoke: bool = True) -> dict:
    """Validate a pack directory; raises PackError with a one-line reason on the first failure."""
    manifest = load_manifest(directory)
    log(f"pack {manifest['name']!r} ({manifest['format']}, version {manifest['version']}, size {manifest['size']})")
    check_files(directory, manifest, log)
    for role in onnxmodels.ONNX_FILES:
        p = os.path.join(directory, manifest["frontend"][role])
        try:
            summary = onnxmodels.check_signature(role, p)
        except ValueError as e:
            _fail(str(e))
        log(f"  ok  {manifest['frontend'][role]:16s} {summary}")
    modules = {}
    for key in METHODS:
        p = os.path.join(directory, manifest[key]["file"])
        try:
            modules[key] = torch.jit.load(p, map_location="cpu").eval()
        except Exception as e:  # noqa: BLE001 - any load failure is reported as one line
            _fail(f"{p}: torch.jit.load failed: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
        log(f"  ok  {manifest[key]['file']:16s} " + ", ".join(check_signatures(modules[key], key, "streaming" in manifest,
                                                                               reruns_vocoder(manifest))))
    if run_smoke and onnxmodels.have_onnxruntime():
        modules["onnx"] = onnxmodels.OnnxFrontend(directory, manifest["frontend"])
    elif run_smoke:
        log("  --  onnxruntime is not installed for this python: the ONNX models were checked by sha256 and signature only")
    if run_smoke:
        try:
            smoke(modules, manifest)
        except PackError:
            raise
        except Exception as e:  # noqa: BLE001
            _fail(f"smoke call failed: {type(e).__name__}: {str(e).strip().splitlines()[-1] if str(e).strip() else ''}")
        log("  ok  smoke calls of every method")
    return manifest
