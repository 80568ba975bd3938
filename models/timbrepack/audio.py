"""WAV I/O with the standard library (16-bit PCM written; 8/16/24/32-bit PCM read) and synthetic prompts."""
import math
import struct
import wave

import torch


class AudioError(ValueError):
    pass


def read_wav(path: str) -> tuple:
    """-> (float32 tensor [1, T] mono in [-1, 1], sample rate). Channels are averaged."""
    try:
        with wave.open(path, "rb") as w:
            ch, width, rate, n = w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()
            raw = w.readframes(n)
    except FileNotFoundError:
        raise AudioError(f"{path}: no such file")
    except (wave.Error, EOFError, struct.error) as e:
        raise AudioError(f"{path}: not a readable PCM WAV file ({str(e) or type(e).__name__})")
    if n == 0:
        raise AudioError(f"{path}: the WAV file holds no samples")
    if len(raw) != n * ch * width:
        raise AudioError(f"{path}: truncated WAV file ({len(raw)} of {n * ch * width} data bytes)")
    if width == 1:
        x = (torch.frombuffer(bytearray(raw), dtype=torch.uint8).float() - 128.0) / 128.0
    elif width == 2:
        x = torch.frombuffer(bytearray(raw), dtype=torch.int16).float() / 32768.0
    elif width == 3:
        b = torch.frombuffer(bytearray(raw), dtype=torch.uint8).view(-1, 3).to(torch.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        v = torch.where(v >= 1 << 23, v - (1 << 24), v)
        x = v.float() / float(1 << 23)
    elif width == 4:
        x = torch.frombuffer(bytearray(raw), dtype=torch.int32).double().div(2.0 ** 31).float()
    else:
        raise AudioError(f"{path}: unsupported sample width {width}")
    return x.view(-1, ch).mean(dim=1).unsqueeze(0), rate


def write_wav(path: str, wav: torch.Tensor, rate: int) -> None:
    pcm = torch.clamp(torch.round(wav.flatten() * 32767.0), -32768, 32767).to(torch.int16)
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.numpy().tobytes() if hasattr(pcm, "numpy") else bytes(pcm.untyped_storage()))


def synthetic_prompts(rate: int = 16000) -> dict:
    """Three deterministic 16 kHz prompts: a vowel-like harmonic tone with vibrato, a chirp, noise bursts."""
    out = {}
    t = torch.arange(int(3.4 * rate), dtype=torch.float64) / rate
    f0 = 140.0 + 12.0 * torch.sin(2 * math.pi * 5.0 * t)
    phase = 2 * math.pi * torch.cumsum(f0, 0) / rate
    tone = sum((0.5 / k) * torch.sin(k * phase) for k in range(1, 9)) * (0.6 + 0.4 * torch.sin(2 * math.pi * 0.7 * t))
    out["tone"] = (0.4 * tone / tone.abs().max()).float().unsqueeze(0)
    t = torch.arange(int(4.2 * rate), dtype=torch.float64) / rate
    f = 100.0 + (3000.0 - 100.0) * t / t[-1]
    chirp = torch.sin(2 * math.pi * torch.cumsum(f, 0) / rate) * torch.hann_window(t.numel(), periodic=False, dtype=torch.float64)
    out["chirp"] = (0.5 * chirp).float().unsqueeze(0)
    gen = torch.Generator().manual_seed(7)
    t = torch.arange(int(5.1 * rate), dtype=torch.float64) / rate
    noise = torch.randn(t.numel(), generator=gen, dtype=torch.float64)
    env = (torch.sin(2 * math.pi * 2.5 * t) > 0.2).double() * torch.exp(-((t * 2.5) % 1.0) * 4.0)
    out["bursts"] = (0.3 * noise * env).float().unsqueeze(0)
    return out
