#!/usr/bin/env python3
"""Reference synthesis with a Timbre model pack: register the prompt, synthesize the text (greedy decoding),
write a 24 kHz 16-bit WAV. This is the Python twin of the Java engine and the baseline of its benchmark.

    /usr/bin/python3 models/synthesize.py --pack models/tiny --prompt models/tiny/golden/tone.wav \\
        --prompt-text "A steady vowel for the speaker prompt." --text "Hello, world." --out out.wav

The text is cut into segments like CosyVoice 2 (models/README.md, "Text"); each segment is synthesized on
its own and the waveforms are concatenated. With --json, one JSON object goes to stdout:
  {"pack", "runs", "features_ms", "llm_ms", "flow_ms", "vocoder_ms", "total_ms", "speech_tokens",
   "audio_seconds", "tokens_per_s", "rtf"}
Stage times are medians over --repeat runs after one warm-up run; a run is registration (features) plus
the synthesis of every segment. Errors in the inputs are one line on stderr and exit code 2."""
import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
try:
    import torch
except ImportError:
    sys.exit("error: PyTorch is missing: apt-get install -y python3-torch python3-torchaudio (run with /usr/bin/python3)")

from timbrepack import audio, reference, text  # noqa: E402


def fail(msg: str) -> None:
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(2)


def load_prompt(path: str, pack: reference.Pack) -> tuple:
    """-> ([1, T] float32 at the file's own rate, the rate), after the 3..30 s and >= 16 kHz checks."""
    try:
        wav, rate = audio.read_wav(path)
    except audio.AudioError as e:
        fail(str(e))
    except OSError as e:
        fail(f"{path}: cannot read ({e.strerror or e})")
    seconds = wav.shape[1] / rate
    lo, hi = pack.manifest["audio"]["min_prompt_seconds"], pack.manifest["audio"]["max_prompt_seconds"]
    if not lo <= seconds <= hi:
        fail(f"{path}: the prompt is {seconds:.2f} s long; it must be {lo:g} to {hi:g} s")
    if rate < pack.prompt_rate:
        fail(f"{path}: sample rate {rate} Hz is below {pack.prompt_rate} Hz")
    return wav, rate


def run_once(pack: reference.Pack, prompt: tuple, prompt_text: str, segs: list) -> dict:
    t0 = time.perf_counter()
    spk = reference.register(pack, prompt[0], prompt[1], prompt_text)
    times = {"features": time.perf_counter() - t0, "llm": 0.0, "flow": 0.0, "vocoder": 0.0}
    wavs, tokens = [], 0
    for seg in segs:
        t0 = time.perf_counter()
        toks = reference.speech_tokens(pack, pack.tokenizer.encode(seg), spk)
        t1 = time.perf_counter()
        mel = reference.mel(pack, toks, spk)
        t2 = time.perf_counter()
        wavs.append(reference.vocode(pack, mel))
        t3 = time.perf_counter()
        times["llm"] += t1 - t0
        times["flow"] += t2 - t1
        times["vocoder"] += t3 - t2
        tokens += len(toks)
    times["total"] = sum(times[k] for k in ("features", "llm", "flow", "vocoder"))
    return {"times": times, "wav": torch.cat(wavs, dim=1), "tokens": tokens}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pack", required=True, help="pack directory (e.g. models/tiny)")
    ap.add_argument("--prompt", required=True, help="prompt recording: PCM WAV, 3 to 30 s, at least 16 kHz")
    ap.add_argument("--prompt-text", required=True, help="transcript of the prompt")
    ap.add_argument("--text", required=True, help="text to speak")
    ap.add_argument("--out", required=True, help="output WAV (24 kHz, 16-bit mono)")
    ap.add_argument("--repeat", type=int, default=1, help="timed runs after one warm-up run (default 1)")
    ap.add_argument("--json", action="store_true", help="print the timings as one JSON object on stdout")
    ap.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's default)")
    args = ap.parse_args()
    if args.repeat < 1:
        fail("--repeat must be at least 1")
    if args.threads is not None:
        if args.threads < 1:
            fail("--threads must be at least 1")
        torch.set_num_threads(args.threads)
    if not os.path.isdir(args.pack):
        fail(f"{args.pack}: no such pack directory")
    if not os.path.isfile(os.path.join(args.pack, "pack.json")):
        fail(f"{args.pack}: not a model pack (no pack.json)")
    out_dir = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(out_dir):
        fail(f"{args.out}: the directory {out_dir} does not exist")
    try:
        pack = reference.Pack(args.pack)
    except (OSError, RuntimeError, ValueError, KeyError) as e:
        fail(f"{args.pack}: cannot load the pack ({str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__})")
    prompt = load_prompt(args.prompt, pack)
    t = pack.manifest["text"]
    segs = text.segments(args.text, pack.tokenizer.encode, t["token_max_n"], t["token_min_n"], t["merge_len"])
    if not segs:
        fail("the text has nothing to speak (empty or punctuation only)")
    log = sys.stderr if args.json else sys.stdout

    run_once(pack, prompt, args.prompt_text, segs)               # warm-up
    runs = [run_once(pack, prompt, args.prompt_text, segs) for _ in range(args.repeat)]
    wav = runs[-1]["wav"]
    audio.write_wav(args.out, wav, pack.output_rate)
    med = {k: statistics.median(r["times"][k] for r in runs) for k in ("features", "llm", "flow", "vocoder", "total")}
    tokens = runs[-1]["tokens"]
    seconds = wav.shape[1] / pack.output_rate
    result = {
        "pack": pack.manifest["name"],
        "runs": args.repeat,
        "features_ms": round(med["features"] * 1000, 3),
        "llm_ms": round(med["llm"] * 1000, 3),
        "flow_ms": round(med["flow"] * 1000, 3),
        "vocoder_ms": round(med["vocoder"] * 1000, 3),
        "total_ms": round(med["total"] * 1000, 3),
        "speech_tokens": tokens,
        "audio_seconds": round(seconds, 6),
        "tokens_per_s": round(tokens / med["llm"], 3) if med["llm"] > 0 else None,
        "rtf": round(med["total"] / seconds, 6) if seconds > 0 else None,
    }
    print(f"{len(segs)} segment(s), {tokens} speech tokens, {seconds:.2f} s of audio -> {args.out}", file=log)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"median of {args.repeat} run(s): features {result['features_ms']:.1f} ms, llm {result['llm_ms']:.1f} ms, "
              f"flow {result['flow_ms']:.1f} ms, vocoder {result['vocoder_ms']:.1f} ms; total {result['total_ms']:.1f} ms, "
              f"{result['tokens_per_s']} tokens/s, RTF {result['rtf']}")


if __name__ == "__main__":
    main()
