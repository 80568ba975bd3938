"""Golden fixtures: for each (prompt, text) case every registration feature, the greedy speech tokens, the
mel and the waveform, as computed by the Python reference pipeline on the pack's own modules."""
import json
import os

import torch

from . import archive, audio, reference

# (prompt name, its sample rate, prompt transcript, text to speak): English; Chinese; mixed with digits and
# punctuation. The bursts (broadband noise) are a 48 kHz recording: the 24 kHz prompt mel is resampled straight from
# it, the 16 kHz audio for tokens and embedding too, as CosyVoice's load_wav does.
CASES = [
    ("tone", 16000, "A steady vowel for the speaker prompt.", "Hello, world."),
    ("chirp", 16000, "这是一段提示音。", "你好，世界。"),
    ("bursts", 48000, "Noise bursts, 3 of them!", "Room 42 at 9:30, ok?"),
]


def write(pack_dir: str, out: str) -> dict:
    torch.set_num_threads(1)
    os.makedirs(out, exist_ok=True)
    pack = reference.Pack(pack_dir)
    spk2info = {}
    index = {"pack": pack.manifest["name"], "pack_version": pack.manifest["version"],
             "vocoder_seed": reference.VOCODER_SEED, "cases": [], "files": {}}
    for prompt_name, prompt_rate, prompt_text, text in CASES:
        wav_path = os.path.join(out, f"{prompt_name}.wav")
        audio.write_wav(wav_path, audio.synthetic_prompts(prompt_rate)[prompt_name], prompt_rate)
        wav, rate = audio.read_wav(wav_path)             # the quantised audio is what Java reads too
        spk = reference.register(pack, wav, rate, prompt_text)
        spk2info[prompt_name] = spk
        res = reference.synthesize(pack, text, spk)
        wav16k = pack.frontend.resample(wav, rate, pack.prompt_rate)
        case = dict(spk)
        case.update({"prompt_wav": wav, "wav16k": wav16k, "wav24k": pack.frontend.resample(wav, rate, pack.output_rate),
                     "kaldi_fbank": pack.frontend.kaldi_fbank(wav16k),
                     "whisper_log_mel": pack.frontend.whisper_log_mel(wav16k),
                     "text": res["text"], "speech_tokens": res["tokens"], "mel": res["mel"], "wav": res["wav"]})
        archive.save_tensors(case, os.path.join(out, f"{prompt_name}.pt"), prompt_name)
        index["cases"].append({"prompt": prompt_name, "prompt_wav": f"{prompt_name}.wav", "prompt_rate": rate,
                               "prompt_text": prompt_text,
                               "text": text, "fixture": f"{prompt_name}.pt", "speech_tokens": res["tokens"].shape[1],
                               "mel_frames": res["mel"].shape[2], "samples": res["wav"].shape[1]})
        print(f"  golden {prompt_name:7s} prompt {wav.shape[1] / rate:.2f} s at {rate} Hz -> {spk['llm_prompt_speech_token'].shape[1]} prompt tokens;"
              f" text {res['text'].shape[1]} ids -> {res['tokens'].shape[1]} speech tokens -> {res['wav'].shape[1]} samples")
    archive.save_tensors(spk2info, os.path.join(out, "spk2info.pt"), "spk2info")
    for fname in sorted(os.listdir(out)):
        if fname != "golden.json":
            p = os.path.join(out, fname)
            index["files"][fname] = {"sha256": archive.sha256(p), "bytes": os.path.getsize(p)}
    with open(os.path.join(out, "golden.json"), "w") as f:
        json.dump(index, f, indent=2, ensure_ascii=False)
        f.write("\n")
    return index
