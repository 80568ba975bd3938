"""Feature extraction in scriptable torch ops, so the exact same numerics run from Java (LibTorch).

Every transform here matches what the CosyVoice 2 frontend calls in Python:
- KaldiFbank: torchaudio.compliance.kaldi.fbank(num_mel_bins=80, dither=0) (not scriptable upstream,
  rewritten op for op), then per-utterance mean removal as in CosyVoice's _extract_spk_embedding.
- WhisperLogMel: whisper.log_mel_spectrogram(audio, n_mels=128) with the slaney mel bank.
- MatchaMel: matcha.utils.audio.mel_spectrogram(n_fft=1920, 80 mels, 24 kHz, hop 480, win 1920,
  fmin 0, fmax 8000, center=False, reflect padding of (n_fft - hop) / 2).
"""
import torch
from torch import Tensor, nn

try:                      # needed to build these modules; a PyTorch without torchaudio can still import nets
    import torchaudio.compliance.kaldi as kaldi
    import torchaudio.functional as AF
except ImportError:       # (export_cosyvoice2.py then reuses the tiny pack's frontend.pt, which has no weights)
    kaldi = AF = None


class KaldiFbank(nn.Module):
    """80-bin Kaldi fbank of 16 kHz audio in [-1, 1], frames of 25 ms every 10 ms (snip_edges)."""

    def __init__(self, num_mel_bins: int = 80, sample_rate: int = 16000):
        super().__init__()
        self.frame_length = int(sample_rate * 0.025)
        self.frame_shift = int(sample_rate * 0.010)
        self.padded = 1 << (self.frame_length - 1).bit_length()
        banks, _ = kaldi.get_mel_banks(num_mel_bins, self.padded, float(sample_rate), 20.0, 0.0, 100.0, -500.0, 1.0)
        banks = torch.nn.functional.pad(banks, (0, 1), mode="constant", value=0.0)  # [bins, padded/2 + 1]
        self.register_buffer("mel_banks", banks.t().contiguous(), persistent=True)
        self.register_buffer("window", torch.hann_window(self.frame_length, periodic=False).pow(0.85), persistent=True)
        self.eps = float(torch.finfo(torch.float32).eps)

    def forward(self, wav: Tensor) -> Tensor:
        """wav [T] float -> fbank [frames, bins] (log mel energies)."""
        frames = wav.unfold(0, self.frame_length, self.frame_shift)          # [N, 400]
        frames = frames - frames.mean(dim=1, keepdim=True)                   # remove_dc_offset
        shifted = torch.cat([frames[:, :1], frames[:, :-1]], dim=1)          # replicate-pad preemphasis
        frames = frames - 0.97 * shifted
        frames = frames * self.window
        frames = torch.nn.functional.pad(frames, (0, self.padded - self.frame_length))
        power = torch.fft.rfft(frames).abs().pow(2.0)
        mel = torch.mm(power, self.mel_banks)
        return torch.clamp(mel, min=self.eps).log()


class WhisperLogMel(nn.Module):
    """128-bin Whisper log-mel of 16 kHz audio: [T] -> [128, T // 160]."""

    def __init__(self, n_mels: int = 128):
        super().__init__()
        self.n_fft = 400
        self.hop = 160
        fb = AF.melscale_fbanks(self.n_fft // 2 + 1, 0.0, 8000.0, n_mels, 16000, norm="slaney", mel_scale="slaney")
        self.register_buffer("filters", fb.t().contiguous(), persistent=True)       # [n_mels, 201]
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=True)

    def forward(self, wav: Tensor) -> Tensor:
        stft = torch.stft(wav, self.n_fft, self.hop, window=self.window, center=True, pad_mode="reflect",
                          return_complex=True)
        magnitudes = stft[..., :-1].abs().pow(2.0)
        mel = torch.matmul(self.filters, magnitudes)
        log_spec = torch.clamp(mel, min=1e-10).log10()
        log_spec = torch.maximum(log_spec, log_spec.max() - 8.0)
        return (log_spec + 4.0) / 4.0


class MatchaMel(nn.Module):
    """80-bin log mel of 24 kHz audio at 50 frames/s: [T] -> [80, F]."""

    def __init__(self, sample_rate: int = 24000, n_fft: int = 1920, hop: int = 480, win: int = 1920,
                 n_mels: int = 80, fmin: float = 0.0, fmax: float = 8000.0):
        super().__init__()
        self.n_fft = n_fft
        self.hop = hop
        self.win = win
        fb = AF.melscale_fbanks(n_fft // 2 + 1, fmin, fmax, n_mels, sample_rate, norm="slaney", mel_scale="slaney")
        self.register_buffer("mel_basis", fb.t().contiguous(), persistent=True)   # [80, 961]
        self.register_buffer("window", torch.hann_window(win), persistent=True)

    def forward(self, wav: Tensor) -> Tensor:
        pad = (self.n_fft - self.hop) // 2
        y = torch.nn.functional.pad(wav.view(1, 1, -1), (pad, pad), mode="reflect").view(-1)
        spec = torch.stft(y, self.n_fft, self.hop, win_length=self.win, window=self.window, center=False,
                          normalized=False, onesided=True, return_complex=True)
        spec = torch.view_as_real(spec)
        spec = torch.sqrt(spec.pow(2).sum(-1) + 1e-9)
        spec = torch.matmul(self.mel_basis, spec)
        return torch.clamp(spec, min=1e-5).log()


def resample(wav: Tensor, orig: int, new: int) -> Tensor:
    """torchaudio's sinc/Hann resampler with the defaults of torchaudio.transforms.Resample."""
    if orig == new:
        return wav
    return AF.resample(wav, orig, new)
