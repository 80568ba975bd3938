"""CosyVoice 2-shaped networks at configurable sizes, written to be scripted with torch.jit.script.

Each exported module carries all numerics behind the methods listed in models/README.md; the caller
(Java, or reference.py) only orchestrates: sampling, the Euler loop, trimming and concatenation.
"""
import math
from typing import List, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import dsp

SPEECH_TOKEN_SIZE = 6561          # FSQ 3^8, as speech_tokenizer_v2
LLM_VOCAB = SPEECH_TOKEN_SIZE + 3  # + eos (6561), 6562, fill (6563)
SOS = 0                            # rows of llm_embedding
TASK_ID = 1


# ----------------------------------------------------------------------------------------- blocks
class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class MaskedSelfAttention(nn.Module):
    """Full (non-causal) multi-head self-attention with a key padding mask, [B, T, D] -> [B, T, D]."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: Tensor, key_mask: Tensor) -> Tensor:
        b, t, d = x.shape
        qkv = self.qkv(x).view(b, t, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_dim)
        scores = scores.masked_fill(~key_mask.view(b, 1, 1, t), -1e9)
        y = torch.matmul(torch.softmax(scores, dim=-1), v)
        return self.out(y.transpose(1, 2).reshape(b, t, d))

    def attend(self, x: Tensor, allowed: Tensor) -> Tensor:
        """As forward, with allowed [B, 1 or T, T] (bool): query i may see key j (chunk masks of streaming)."""
        b, t, d = x.shape
        qkv = self.qkv(x).view(b, t, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_dim)
        scores = scores.masked_fill(~allowed.unsqueeze(1), -1e9)
        y = torch.matmul(torch.softmax(scores, dim=-1), v)
        return self.out(y.transpose(1, 2).reshape(b, t, d))


class TransformerBlock(nn.Module):
    """Pre-norm transformer block over [B, T, D] with a padding mask [B, T] (bool)."""

    def __init__(self, dim: int, heads: int, ffn: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = MaskedSelfAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, ffn), nn.GELU(), nn.Linear(ffn, dim))

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        m = mask.unsqueeze(-1).to(x.dtype)
        x = x + self.attn(self.norm1(x), mask)
        x = x + self.ff(self.norm2(x))
        return x * m

    def masked(self, x: Tensor, mask: Tensor, allowed: Tensor) -> Tensor:
        """forward with an attention mask allowed [B, 1 or T, T] besides the padding mask [B, T]."""
        m = mask.unsqueeze(-1).to(x.dtype)
        x = x + self.attn.attend(self.norm1(x), allowed)
        x = x + self.ff(self.norm2(x))
        return x * m


def chunk_allowed(key_mask: Tensor, chunk: int) -> Tensor:
    """key_mask [B, T] bool -> allowed [B, T, T] (chunk > 0: query i sees keys j < (i // chunk + 1) * chunk, as
    CosyVoice's subsequent_chunk_mask with all left chunks) or [B, 1, T] (chunk 0: full attention)."""
    keys = key_mask.unsqueeze(1)
    if chunk <= 0:
        return keys
    t = key_mask.shape[1]
    pos = torch.arange(t, device=key_mask.device)
    block = (torch.div(pos, chunk, rounding_mode="floor") + 1) * chunk
    allowed = keys & (pos.unsqueeze(0) < block.unsqueeze(1)).unsqueeze(0)
    # a query row left with no key (a padded row) sees all keys, as add_optional_chunk_mask forces; it is masked later
    empty = ~allowed.any(dim=-1, keepdim=True)
    return allowed | empty


def sinusoidal(positions: Tensor, dim: int) -> Tensor:
    """positions [...] float -> [..., dim] sinusoidal embedding."""
    half = dim // 2
    freqs = torch.exp(torch.arange(half, dtype=torch.float32, device=positions.device)
                      * (-math.log(10000.0) / max(half - 1, 1)))
    args = positions.unsqueeze(-1).float() * freqs
    return torch.cat([torch.sin(args), torch.cos(args)], dim=-1)


# --------------------------------------------------------------------------------------- frontend
class SpeakerEncoder(nn.Module):
    """CAM++-shaped x-vector: fbank [1, T, 80] -> TDNN -> statistics pooling -> [1, 192]."""

    def __init__(self, channels: int, layers: int, emb: int = 192):
        super().__init__()
        self.inp = nn.Conv1d(80, channels, 5, padding=2)
        self.tdnn = nn.ModuleList([nn.Conv1d(channels, channels, 3, padding=2 ** i, dilation=2 ** i)
                                   for i in range(layers)])
        self.norm = nn.LayerNorm(2 * channels)
        self.proj = nn.Linear(2 * channels, emb)

    def forward(self, feats: Tensor) -> Tensor:
        h = F.relu(self.inp(feats.transpose(1, 2)))
        for layer in self.tdnn:
            h = h + F.relu(layer(h))
        stats = torch.cat([h.mean(dim=2), h.std(dim=2, unbiased=False)], dim=1)
        return self.proj(self.norm(stats))


class SpeechTokenizer(nn.Module):
    """S3Tokenizer-v2-shaped: log-mel [1, 128, T] (100 Hz) -> 2x stride-2 convs (25 Hz) -> transformer
    -> 8-dim projection -> FSQ with 3 levels per dimension -> ids in [0, 6561).
    Exported to ONNX with speech_tokenizer_v2.onnx's signature: (feats float [1, 128, T], feats_length int32 [1])
    -> indices int64 [1, N]; feats_length trims the frames as the release model's mask does."""

    def __init__(self, channels: int, layers: int, heads: int):
        super().__init__()
        self.conv1 = nn.Conv1d(128, channels, 3, stride=2, padding=1)
        self.conv2 = nn.Conv1d(channels, channels, 3, stride=2, padding=1)
        self.blocks = nn.ModuleList([TransformerBlock(channels, heads, 2 * channels) for _ in range(layers)])
        self.proj = nn.Linear(channels, 8)
        self.register_buffer("powers", torch.tensor([3 ** i for i in range(8)], dtype=torch.int64), persistent=True)

    def forward(self, feats: Tensor, feats_length: Tensor) -> Tensor:
        mel = feats[:, :, :feats_length[0].to(torch.int64)]
        h = F.gelu(self.conv1(mel))
        h = F.gelu(self.conv2(h)).transpose(1, 2)          # [1, N, C]
        mask = torch.ones(h.shape[0], h.shape[1], dtype=torch.bool, device=h.device)
        h = h + sinusoidal(torch.arange(h.shape[1], device=h.device), h.shape[2])
        for block in self.blocks:
            h = block(h, mask)
        digits = torch.round(torch.tanh(self.proj(h))).to(torch.int64) + 1   # {0, 1, 2}
        return (digits * self.powers).sum(-1)


class Frontend(nn.Module):
    """frontend.pt: the DSP of CosyVoice's frontend; audio [1, T] float in [-1, 1], batch 1. The speaker encoder
    and the speech tokenizer are not in here: the pack carries them as the release's ONNX files (pack.json
    frontend.speaker_encoder / frontend.speech_tokenizer), fed kaldi_fbank and whisper_log_mel."""

    def __init__(self):
        super().__init__()
        self.fbank = dsp.KaldiFbank()
        self.whisper = dsp.WhisperLogMel()
        self.matcha = dsp.MatchaMel()

    @torch.jit.export
    def resample(self, wav: Tensor, orig: int, new: int) -> Tensor:
        return dsp.resample(wav, orig, new)

    @torch.jit.export
    def kaldi_fbank(self, wav16k: Tensor) -> Tensor:
        """[1, T] -> [1, frames, 80], mean-normalised over frames (CosyVoice's campplus input)."""
        feat = self.fbank(wav16k[0])
        feat = feat - feat.mean(dim=0, keepdim=True)
        return feat.unsqueeze(0)

    @torch.jit.export
    def whisper_log_mel(self, wav16k: Tensor) -> Tensor:
        """[1, T] -> [1, 128, T // 160] (speech_tokenizer_v2's input)"""
        return self.whisper(wav16k[0]).unsqueeze(0)

    @torch.jit.export
    def speech_feat(self, wav24k: Tensor) -> Tensor:
        """[1, T] 24 kHz -> [1, F, 80], 50 frames per second"""
        return self.matcha(wav24k[0]).transpose(0, 1).unsqueeze(0)

    def forward(self, wav16k: Tensor) -> Tensor:
        return self.kaldi_fbank(wav16k)


# -------------------------------------------------------------------------------------------- llm
def rope(x: Tensor, positions: Tensor, theta: float) -> Tensor:
    """Rotary embedding. x [B, H, T, Dh]; positions [B, T] (int64)."""
    half = x.shape[-1] // 2
    inv = torch.pow(theta, -torch.arange(half, dtype=torch.float32, device=x.device) * 2.0 / x.shape[-1])
    ang = positions.to(torch.float32).unsqueeze(-1) * inv                # [B, T, half]
    cos = torch.cos(ang).unsqueeze(1)
    sin = torch.sin(ang).unsqueeze(1)
    x1 = x[..., :half]
    x2 = x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


class DecoderLayer(nn.Module):
    """Qwen2-shaped layer: RMSNorm, GQA attention with RoPE and qkv bias, SwiGLU MLP."""

    def __init__(self, dim: int, heads: int, kv_heads: int, ffn: int, theta: float):
        super().__init__()
        self.heads = heads
        self.kv_heads = kv_heads
        self.head_dim = dim // heads
        self.theta = theta
        self.input_norm = RMSNorm(dim)
        self.q_proj = nn.Linear(dim, heads * self.head_dim)
        self.k_proj = nn.Linear(dim, kv_heads * self.head_dim)
        self.v_proj = nn.Linear(dim, kv_heads * self.head_dim)
        self.o_proj = nn.Linear(heads * self.head_dim, dim, bias=False)
        self.post_norm = RMSNorm(dim)
        self.gate = nn.Linear(dim, ffn, bias=False)
        self.up = nn.Linear(dim, ffn, bias=False)
        self.down = nn.Linear(ffn, dim, bias=False)

    def qkv(self, x: Tensor, positions: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        b, t, _ = x.shape
        h = self.input_norm(x)
        q = self.q_proj(h).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(h).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(h).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        return rope(q, positions, self.theta), rope(k, positions, self.theta), v

    def attend(self, x: Tensor, q: Tensor, k: Tensor, v: Tensor, allowed: Tensor) -> Tensor:
        """q [B, H, Tq, Dh]; k, v [B, KVH, Tk, Dh]; allowed [B, 1, Tq, Tk] bool."""
        rep = self.heads // self.kv_heads
        if rep > 1:
            k = k.repeat_interleave(rep, dim=1)
            v = v.repeat_interleave(rep, dim=1)
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_dim)
        scores = scores.masked_fill(~allowed, -1e9)
        y = torch.matmul(torch.softmax(scores, dim=-1), v)
        b, _, tq, _ = q.shape
        x = x + self.o_proj(y.transpose(1, 2).reshape(b, tq, self.heads * self.head_dim))
        h = self.post_norm(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class SpeechLM(nn.Module):
    """llm.pt: Qwen2LM-shaped speech-token language model with an explicit, batched KV cache.

    prefill builds each row's input [sos, text..., task_id, prompt speech tokens...] (left-aligned, rows
    padded to the longest), runs the causal transformer, fills the cache and returns the
    log-probabilities of the next speech token. decode advances every row by one token at its own
    position, writing the cache in place."""

    def __init__(self, text_vocab: int, dim: int, layers: int, heads: int, kv_heads: int, ffn: int,
                 theta: float = 1000000.0):
        super().__init__()
        self.layers_n = layers
        self.sos = SOS
        self.task_id = TASK_ID
        self.kv_heads = kv_heads
        self.head_dim = dim // heads
        self.text_embedding = nn.Embedding(text_vocab, dim)
        self.llm_embedding = nn.Embedding(2, dim)
        self.speech_embedding = nn.Embedding(LLM_VOCAB, dim)
        self.layers = nn.ModuleList([DecoderLayer(dim, heads, kv_heads, ffn, theta) for _ in range(layers)])
        self.norm = RMSNorm(dim)
        self.llm_decoder = nn.Linear(dim, LLM_VOCAB)

    @torch.jit.export
    def prefill(self, text: Tensor, text_len: Tensor, speech: Tensor, speech_len: Tensor,
                cache_len: int) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """text int64 [B, Lt] (prompt text ids then target text ids), text_len int64 [B],
        speech int64 [B, Ls] (prompt speech tokens), speech_len int64 [B], cache_len: time capacity.
        Returns (logp [B, 6564] float, k_cache, v_cache [layers, B, kv_heads, cache_len, head_dim],
        seq_len int64 [B] = 2 + text_len + speech_len: the position the next token is written to)."""
        b = text.shape[0]
        seq_len = text_len + speech_len + 2
        t = int(seq_len.max())
        if cache_len < t:
            raise ValueError("cache_len is shorter than the prefill sequence")
        text_emb = self.text_embedding(text)
        speech_emb = self.speech_embedding(speech)
        sos = self.llm_embedding.weight[self.sos]
        task = self.llm_embedding.weight[self.task_id]
        x = torch.zeros(b, t, text_emb.shape[2], dtype=text_emb.dtype, device=text.device)
        for i in range(b):
            tl = int(text_len[i])
            sl = int(speech_len[i])
            x[i, 0] = sos
            x[i, 1:1 + tl] = text_emb[i, :tl]
            x[i, 1 + tl] = task
            x[i, 2 + tl:2 + tl + sl] = speech_emb[i, :sl]
        pos = torch.arange(t, device=text.device).unsqueeze(0).expand(b, t)
        causal = pos.unsqueeze(2) >= pos.unsqueeze(1)                          # [B, Tq, Tk]
        valid = pos < seq_len.unsqueeze(1)                                     # [B, Tk]
        allowed = (causal & valid.unsqueeze(1)).unsqueeze(1)
        k_cache = torch.zeros(self.layers_n, b, self.kv_heads, cache_len, self.head_dim,
                              dtype=x.dtype, device=x.device)
        v_cache = torch.zeros_like(k_cache)
        li = 0
        for layer in self.layers:
            q, k, v = layer.qkv(x, pos)
            k_cache[li, :, :, :t] = k
            v_cache[li, :, :, :t] = v
            x = layer.attend(x, q, k, v, allowed)
            li += 1
        last = (seq_len - 1).view(b, 1, 1).expand(b, 1, x.shape[2])
        h = self.norm(torch.gather(x, 1, last).squeeze(1))
        return torch.log_softmax(self.llm_decoder(h), dim=-1), k_cache, v_cache, seq_len

    @torch.jit.export
    def decode(self, token: Tensor, k_cache: Tensor, v_cache: Tensor, position: Tensor) -> Tensor:
        """token int64 [B]: the last sampled token of each row; position int64 [B]: where it goes
        (row's current length). Writes k/v at position (in place) and returns logp [B, 6564]."""
        b = token.shape[0]
        x = self.speech_embedding(token).unsqueeze(1)                          # [B, 1, D]
        pos = position.view(b, 1)
        span = int(position.max()) + 1
        keys = torch.arange(span, device=token.device).view(1, 1, 1, span)
        allowed = keys <= position.view(b, 1, 1, 1)
        index = position.view(b, 1, 1, 1).expand(b, self.kv_heads, 1, self.head_dim)
        li = 0
        for layer in self.layers:
            q, k, v = layer.qkv(x, pos)
            kc = k_cache[li]
            vc = v_cache[li]
            kc.scatter_(2, index, k)
            vc.scatter_(2, index, v)
            x = layer.attend(x, q, kc[:, :, :span], vc[:, :, :span], allowed)
            li += 1
        h = self.norm(x.squeeze(1))
        return torch.log_softmax(self.llm_decoder(h), dim=-1)

    def forward(self, token: Tensor, k_cache: Tensor, v_cache: Tensor, position: Tensor) -> Tensor:
        return self.decode(token, k_cache, v_cache, position)


# ------------------------------------------------------------------------------------------- flow
class FlowEncoder(nn.Module):
    """UpsampleConformerEncoder-shaped: pre-lookahead conv, blocks, 2x upsampling, more blocks."""

    def __init__(self, dim: int, heads: int, ffn: int, layers: int, up_layers: int, lookahead: int = 3):
        super().__init__()
        self.lookahead = lookahead
        self.pre_lookahead = nn.Conv1d(dim, dim, lookahead + 1)
        self.blocks = nn.ModuleList([TransformerBlock(dim, heads, ffn) for _ in range(layers)])
        self.up_conv = nn.Conv1d(dim, dim, 5, padding=2)
        self.up_blocks = nn.ModuleList([TransformerBlock(dim, heads, ffn) for _ in range(up_layers)])

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        return self.chunked(x, mask, 0, 0)

    def chunked(self, x: Tensor, mask: Tensor, context: int, chunk: int) -> Tensor:
        """x [B, T, D], mask [B, T]; the last `context` frames are only lookahead input (CosyVoice's finalize=False):
        the output covers T - context frames, x 2. chunk > 0: chunk attention (streaming), 2 * chunk after upsampling."""
        t = x.shape[1] - context
        main_mask = mask[:, :t]
        m = main_mask.unsqueeze(-1).to(x.dtype)
        h = F.pad(x.transpose(1, 2), (0, self.lookahead - context))
        x = x[:, :t] + F.leaky_relu(self.pre_lookahead(h)).transpose(1, 2) * m
        x = x + sinusoidal(torch.arange(x.shape[1], device=x.device), x.shape[2])
        allowed = chunk_allowed(main_mask, chunk)
        for block in self.blocks:
            x = block.masked(x, main_mask, allowed)
        x = x.repeat_interleave(2, dim=1)
        mask2 = main_mask.repeat_interleave(2, dim=1)
        m2 = mask2.unsqueeze(-1).to(x.dtype)
        x = self.up_conv((x * m2).transpose(1, 2)).transpose(1, 2) * m2
        x = x + sinusoidal(torch.arange(x.shape[1], device=x.device), x.shape[2])
        allowed2 = chunk_allowed(mask2, 2 * chunk)
        for block in self.up_blocks:
            x = block.masked(x, mask2, allowed2)
        return x


class ResnetBlock1D(nn.Module):
    def __init__(self, cin: int, cout: int, time_dim: int):
        super().__init__()
        self.conv1 = nn.Conv1d(cin, cout, 3, padding=1)
        self.time = nn.Linear(time_dim, cout)
        self.conv2 = nn.Conv1d(cout, cout, 3, padding=1)
        self.skip = nn.Conv1d(cin, cout, 1)
        self.norm1 = nn.GroupNorm(1, cout)
        self.norm2 = nn.GroupNorm(1, cout)

    def forward(self, x: Tensor, mask: Tensor, temb: Tensor) -> Tensor:
        h = F.mish(self.norm1(self.conv1(x * mask))) * mask
        h = h + self.time(temb).unsqueeze(-1)
        h = F.mish(self.norm2(self.conv2(h * mask))) * mask
        return h + self.skip(x * mask)


class MidBlock(nn.Module):
    def __init__(self, channels: int, heads: int):
        super().__init__()
        self.res = ResnetBlock1D(channels, channels, channels)
        self.tf = TransformerBlock(channels, heads, 4 * channels)

    def forward(self, h: Tensor, mask: Tensor, key_mask: Tensor, temb: Tensor, allowed: Tensor) -> Tensor:
        h = self.res(h, mask, temb)
        return self.tf.masked(h.transpose(1, 2), key_mask, allowed).transpose(1, 2)


class Estimator(nn.Module):
    """CausalConditionalDecoder-shaped velocity estimator (non-streaming path: full attention).
    in: x, mu, spks, cond stacked to 320 channels -> down block, mid blocks, up block -> 80."""

    def __init__(self, channels: int, heads: int, mid_blocks: int, transformer_blocks: int):
        super().__init__()
        self.channels = channels
        self.time_mlp = nn.Sequential(nn.Linear(channels, 4 * channels), nn.SiLU(), nn.Linear(4 * channels, channels))
        self.down = ResnetBlock1D(320, channels, channels)
        self.down_tf = nn.ModuleList([TransformerBlock(channels, heads, 4 * channels) for _ in range(transformer_blocks)])
        self.mid = nn.ModuleList([MidBlock(channels, heads) for _ in range(mid_blocks)])
        self.up = ResnetBlock1D(2 * channels, channels, channels)
        self.up_tf = nn.ModuleList([TransformerBlock(channels, heads, 4 * channels) for _ in range(transformer_blocks)])
        self.final = nn.Conv1d(channels, 80, 1)

    def forward(self, x: Tensor, mask: Tensor, mu: Tensor, t: Tensor, spks: Tensor, cond: Tensor) -> Tensor:
        return self.chunked(x, mask, mu, t, spks, cond, 0)

    def chunked(self, x: Tensor, mask: Tensor, mu: Tensor, t: Tensor, spks: Tensor, cond: Tensor, chunk: int) -> Tensor:
        """chunk > 0: chunk attention over mel frames (CosyVoice's streaming=True), 0: full attention."""
        temb = self.time_mlp(sinusoidal(t * 1000.0, self.channels))
        h = torch.cat([x, mu, spks.unsqueeze(-1).expand(-1, -1, x.shape[2]), cond], dim=1)
        key_mask = mask[:, 0] > 0.5
        allowed = chunk_allowed(key_mask, chunk)
        h = self.down(h, mask, temb)
        for block in self.down_tf:
            h = block.masked(h.transpose(1, 2), key_mask, allowed).transpose(1, 2)
        skip = h
        for block in self.mid:
            h = block(h, mask, key_mask, temb, allowed)
        h = self.up(torch.cat([h, skip], dim=1), mask, temb)
        for block in self.up_tf:
            h = block.masked(h.transpose(1, 2), key_mask, allowed).transpose(1, 2)
        return self.final(h * mask) * mask


class Flow(nn.Module):
    """flow.pt: CausalMaskedDiffWithXvec-shaped token-to-mel. encode() gives the ODE's conditions, estimate()
    one velocity evaluation; the caller runs the Euler loop with classifier-free guidance."""

    def __init__(self, dim: int, heads: int, ffn: int, layers: int, up_layers: int, est_channels: int,
                 est_heads: int, est_mid: int, est_tf: int, noise_len: int, encoder_chunk: int = 25,
                 estimator_chunk: int = 50):
        super().__init__()
        self.encoder_chunk = encoder_chunk        # static_chunk_size of the encoder, in tokens
        self.estimator_chunk = estimator_chunk    # static_chunk_size of the estimator, in mel frames
        self.input_embedding = nn.Embedding(SPEECH_TOKEN_SIZE, dim)
        self.spk_embed_affine_layer = nn.Linear(192, 80)
        self.encoder = FlowEncoder(dim, heads, ffn, layers, up_layers)
        self.encoder_proj = nn.Linear(dim, 80)
        self.estimator = Estimator(est_channels, est_heads, est_mid, est_tf)
        gen = torch.Generator().manual_seed(0)
        self.register_buffer("rand_noise", torch.randn([1, 80, noise_len], generator=gen), persistent=True)

    @torch.jit.export
    def encode(self, tokens: Tensor, token_len: Tensor, prompt_feat: Tensor, prompt_feat_len: Tensor,
               embedding: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """tokens int64 [B, T]: prompt speech tokens followed by new tokens, token_len int64 [B];
        prompt_feat [B, Fp, 80], prompt_feat_len int64 [B]; embedding [B, 192].
        Returns (mu [B, 80, 2T], mask [B, 1, 2T] float, spks [B, 80], cond [B, 80, 2T])."""
        return self.encode_streaming(tokens, token_len, prompt_feat, prompt_feat_len, embedding, 0, False)

    @torch.jit.export
    def encode_streaming(self, tokens: Tensor, token_len: Tensor, prompt_feat: Tensor, prompt_feat_len: Tensor,
                         embedding: Tensor, context: int, streaming: bool) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """encode for chunked streaming: the last `context` tokens of every row are lookahead only (CosyVoice's
        finalize=False; token_len counts them) and the results cover T - context tokens; streaming: chunk attention
        over encoder_chunk tokens (encoder_chunk * 2 frames after upsampling). encode = encode_streaming(.., 0, False)."""
        chunk = self.encoder_chunk if streaming else 0
        b, t_all = tokens.shape
        t = t_all - context
        spks = self.spk_embed_affine_layer(F.normalize(embedding, dim=1))
        all_mask = torch.arange(t_all, device=tokens.device).unsqueeze(0) < token_len.unsqueeze(1)
        x = self.input_embedding(torch.clamp(tokens, min=0)) * all_mask.unsqueeze(-1).to(spks.dtype)
        tok_mask = torch.arange(t, device=tokens.device).unsqueeze(0) < (token_len - context).unsqueeze(1)
        enc_mask = torch.cat([tok_mask, all_mask[:, t:]], dim=1)
        h = self.encoder_proj(self.encoder.chunked(x, enc_mask, context, chunk))   # [B, 2T, 80]
        mel_mask = tok_mask.repeat_interleave(2, dim=1)
        mu = (h * mel_mask.unsqueeze(-1).to(h.dtype)).transpose(1, 2)
        cond = torch.zeros(b, 2 * t, 80, dtype=h.dtype, device=h.device)
        for i in range(b):
            n = int(prompt_feat_len[i])
            cond[i, :n] = prompt_feat[i, :n]
        return mu, mel_mask.unsqueeze(1).to(h.dtype), spks, cond.transpose(1, 2)

    @torch.jit.export
    def estimate(self, x: Tensor, mask: Tensor, mu: Tensor, t: Tensor, spks: Tensor, cond: Tensor) -> Tensor:
        """One velocity evaluation: x, mu, cond [B, 80, F]; mask [B, 1, F]; t [B]; spks [B, 80]."""
        return self.estimator(x, mask, mu, t, spks, cond)

    @torch.jit.export
    def estimate_streaming(self, x: Tensor, mask: Tensor, mu: Tensor, t: Tensor, spks: Tensor, cond: Tensor,
                           streaming: bool) -> Tensor:
        """estimate; streaming: chunk attention over estimator_chunk mel frames (CosyVoice's streaming=True)."""
        return self.estimator.chunked(x, mask, mu, t, spks, cond, self.estimator_chunk if streaming else 0)

    @torch.jit.export
    def noise(self, frames: int) -> Tensor:
        """The fixed starting noise, [1, 80, frames] (frames <= the buffer length)."""
        if frames > self.rand_noise.shape[2]:
            raise ValueError("more mel frames than the fixed noise buffer holds")
        return self.rand_noise[:, :, :frames].contiguous()

    def forward(self, x: Tensor, mask: Tensor, mu: Tensor, t: Tensor, spks: Tensor, cond: Tensor) -> Tensor:
        return self.estimate(x, mask, mu, t, spks, cond)


# ---------------------------------------------------------------------------------------- vocoder
class DilatedPair(nn.Module):
    def __init__(self, channels: int, kernel: int, dilation: int):
        super().__init__()
        self.c1 = nn.Conv1d(channels, channels, kernel, dilation=dilation, padding=(kernel * dilation - dilation) // 2)
        self.c2 = nn.Conv1d(channels, channels, kernel, padding=(kernel - 1) // 2)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.c2(F.leaky_relu(self.c1(F.leaky_relu(x, 0.1)), 0.1))


class ResBlock(nn.Module):
    def __init__(self, channels: int, kernel: int, dilations: List[int]):
        super().__init__()
        self.pairs = nn.ModuleList([DilatedPair(channels, kernel, d) for d in dilations])

    def forward(self, x: Tensor) -> Tensor:
        for pair in self.pairs:
            x = pair(x)
        return x


class UpStage(nn.Module):
    """One HiFT upsampling stage: transposed conv, the source STFT brought to this rate, resblocks."""

    def __init__(self, cin: int, rate: int, kernel: int, source_stride: int, source_channels: int,
                 resblock_kernels: List[int], resblock_dilations: List[int], last: bool):
        super().__init__()
        cout = cin // 2
        self.last = last
        self.up = nn.ConvTranspose1d(cin, cout, kernel, stride=rate, padding=(kernel - rate) // 2)
        if source_stride == 1:
            self.source_down = nn.Conv1d(source_channels, cout, 1)
        else:
            self.source_down = nn.Conv1d(source_channels, cout, 2 * source_stride, stride=source_stride,
                                         padding=source_stride // 2)
        self.blocks = nn.ModuleList([ResBlock(cout, k, resblock_dilations) for k in resblock_kernels])

    def forward(self, x: Tensor, source: Tensor) -> Tensor:
        x = self.up(F.leaky_relu(x, 0.1))
        if self.last:
            x = F.pad(x, (1, 0), mode="reflect")
        x = x + self.source_down(source)
        xs = torch.zeros_like(x)
        for block in self.blocks:
            xs = xs + block(x)
        return xs / float(len(self.blocks))


class HiFT(nn.Module):
    """hift.pt: HiFTGenerator-shaped vocoder. mel [B, 80, F] -> waveform [B, F * 480] at 24 kHz.
    F0 predictor -> harmonic sine source (phase accumulated in float64, no random noise, so the output is
    deterministic) -> STFT of the source joins the last upsampling stage -> magnitude/phase -> iSTFT."""

    def __init__(self, base: int, f0_channels: int, upsample_rates: List[int], upsample_kernels: List[int],
                 resblock_kernels: List[int], resblock_dilations: List[int], n_fft: int = 16, hop: int = 4,
                 harmonics: int = 8, sample_rate: int = 24000):
        super().__init__()
        self.n_fft = n_fft
        self.hop = hop
        self.harmonics = harmonics
        self.sample_rate = sample_rate
        self.upp = hop
        for r in upsample_rates:
            self.upp *= r
        self.f0_convs = nn.ModuleList([nn.Conv1d(80 if i == 0 else f0_channels, f0_channels, 3, padding=1)
                                       for i in range(3)])
        self.f0_out = nn.Linear(f0_channels, 1)
        self.source_merge = nn.Linear(harmonics + 1, 1)
        self.conv_pre = nn.Conv1d(80, base, 7, padding=3)
        strides = []
        acc = 1
        for r in reversed(upsample_rates):
            strides.insert(0, acc)
            acc *= r
        stages = []
        ch = base
        for i, (r, k) in enumerate(zip(upsample_rates, upsample_kernels)):
            stages.append(UpStage(ch, r, k, strides[i], n_fft + 2, resblock_kernels, resblock_dilations,
                                  i == len(upsample_rates) - 1))
            ch = ch // 2
        self.stages = nn.ModuleList(stages)
        self.conv_post = nn.Conv1d(ch, n_fft + 2, 7, padding=3)
        self.register_buffer("stft_window", torch.hann_window(n_fft), persistent=True)
        self.register_buffer("harmonic_mul", torch.arange(1, harmonics + 2, dtype=torch.float64), persistent=True)

    def source(self, mel: Tensor, phase: Tensor, noise: Tensor) -> Tensor:
        """The NSF source [B, T]: harmonic sines from the predicted F0, starting at the random phases `phase`
        [B, H+1] (column 0, the fundamental, is set to 0 as CosyVoice's SineGen does), plus `noise` [B, H+1, T]
        (standard normal) scaled as SineGen scales it: 0.003 where voiced, 0.1 / 3 where not."""
        h = mel
        for conv in self.f0_convs:
            h = F.elu(conv(h))
        f0 = torch.abs(self.f0_out(h.transpose(1, 2))).squeeze(-1) * 100.0       # [B, F] Hz
        f0 = f0.repeat_interleave(self.upp, dim=1)                                 # [B, T]
        start = phase.double().clone()
        start[:, 0] = 0.0
        cycles = torch.cumsum(f0.double().unsqueeze(-1) * self.harmonic_mul / self.sample_rate, dim=1)
        cycles = cycles + start.unsqueeze(1)
        sines = 0.1 * torch.sin(2.0 * math.pi * torch.remainder(cycles, 1.0)).float()   # [B, T, H+1]
        voiced = (f0 > 10.0).to(sines.dtype).unsqueeze(-1)
        noise_amp = voiced * 0.003 + (1.0 - voiced) * (0.1 / 3.0)
        sines = sines * voiced + noise_amp * noise.transpose(1, 2)
        return torch.tanh(self.source_merge(sines)).squeeze(-1)                   # [B, T]

    @torch.jit.export
    def vocode(self, mel: Tensor, phase: Tensor, noise: Tensor, cache_source: Tensor) -> Tuple[Tensor, Tensor]:
        """mel [B, 80, F] -> (wav [B, F * 480], source [B, 1, F * 480]). The random draws are inputs (the caller owns
        the generator): phase [B, H+1] uniform, noise [B, H+1, F * 480] standard normal. cache_source [B, 1, S]
        (S may be 0) replaces the first S source samples: the previous hop's source, as CosyVoice's HiFT cache."""
        src = self.source(mel, phase, noise)
        s = cache_source.shape[2]
        if s > 0:
            src = torch.cat([cache_source[:, 0, :], src[:, s:]], dim=1)
        spec = torch.stft(src, self.n_fft, self.hop, window=self.stft_window, center=True, return_complex=True)
        src_feat = torch.cat([spec.real, spec.imag], dim=1)                      # [B, n_fft + 2, T / hop + 1]
        x = self.conv_pre(mel)
        for stage in self.stages:
            x = stage(x, src_feat)
        x = self.conv_post(F.leaky_relu(x))
        half = self.n_fft // 2 + 1
        magnitude = torch.clamp(torch.exp(x[:, :half]), max=100.0)
        phase_out = torch.sin(x[:, half:])
        spec_out = torch.complex(magnitude * torch.cos(phase_out), magnitude * torch.sin(phase_out))
        wav = torch.istft(spec_out, self.n_fft, self.hop, self.n_fft, window=self.stft_window, center=True)
        return torch.clamp(wav, -0.99, 0.99), src.unsqueeze(1)

    def forward(self, mel: Tensor) -> Tensor:
        """vocode with zero phases and zero noise (deterministic); the engine calls vocode."""
        b, f = mel.shape[0], mel.shape[2]
        h = self.harmonic_mul.shape[0]
        zeros = torch.zeros(b, h, f * self.upp, dtype=mel.dtype, device=mel.device)
        return self.vocode(mel, torch.zeros(b, h, dtype=mel.dtype, device=mel.device), zeros,
                           torch.zeros(b, 1, 0, dtype=mel.dtype, device=mel.device))[0]
