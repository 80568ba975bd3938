"""CosyVoice 3's LLM (CosyVoice3LM), flow (CausalMaskedDiffWithDiT) and vocoder (CausalHiFTGenerator), written here
as scriptable modules whose parameter names are the release's llm.pt / flow.pt / hift.pt keys.

Only the inference path Timbre uses is defined, with the pack's method signatures (the same as CosyVoice 2's packs,
models/README.md §4): the LLM's prefill/decode over an explicit KV cache, the flow's encode/estimate/noise (the
caller runs the Euler loop with classifier-free guidance; non-streamed, full attention over the valid frames) and
the vocoder's whole-utterance forward(mel). The numerics follow CosyVoice's classes (read from its public
repository: cosyvoice/llm/llm.py, cosyvoice/flow/flow.py, cosyvoice/flow/DiT, cosyvoice/hifigan,
cosyvoice/transformer/upsample_encoder.py and x_transformers' rotary embedding); sizes come from cosyvoice3.yaml,
weights from the state dicts. Nothing here imports CosyVoice or x_transformers.

CosyVoice 3 facts this module encodes:
  * LLM: no llm_embedding; sos and task_id are rows 6561 and 6563 of speech_embedding (6761 rows); the head
    llm_decoder is Linear(dim, 6561 + 200) without bias and is not tied to anything; every id 6561..6760 stops
    decoding, and only 6561 is masked below min_len (the caller's rules, declared in pack.json).
  * Flow: input_embedding [6561, 80]; PreLookaheadLayer (conv k=4 over 3 look-ahead tokens, leaky ReLU, causal conv
    k=3, residual) then each token repeated twice; DiT estimator (time MLP, input projection of [x, cond, mu, spk]
    with a causal conv position embedding, AdaLN-zero blocks with rotary attention on the first head's channels,
    final AdaLN and projection).
  * Vocoder: causal convolutions, a causal F0 predictor run in float64 (as upstream does), and a source whose
    random parts are fixed buffers (SineGen2.rand_ini, SineGen2.sine_waves, SourceModuleHnNSF.uv) rather than
    draws at each call. Upstream draws those buffers from the global RNG while the yaml is built, so they are not
    in hift.pt; Timbre draws them with source_buffers() below (documented seeds) and stores them in the pack."""
import math
from typing import List, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import nets
from .cosyvoice2 import ReleaseError, _Section, _Tagged, Snake
from .cosyvoice2 import chunk_mask as cv2_chunk_mask

SPEECH_TOKEN_SIZE = 6561
RESERVED = 200                         # CosyVoice3LM: llm_decoder / speech_embedding have 6561 + 200 rows
LLM_VOCAB = SPEECH_TOKEN_SIZE + RESERVED
SOS = SPEECH_TOKEN_SIZE                # speech_embedding rows
TASK_ID = SPEECH_TOKEN_SIZE + 2
EOS = SPEECH_TOKEN_SIZE
STOP_TOKENS = list(range(SPEECH_TOKEN_SIZE, LLM_VOCAB))
ENDOFPROMPT = "<|endofprompt|>"
# CosyVoice3Model.silent_tokens (cli/model.py): llm_job keeps at most 5 of them in a row.
SILENT_TOKENS = [1, 2, 28, 29, 55, 248, 494, 2241, 2242, 2322, 2323]
MAX_SILENT_RUN = 5
SOURCE_SEEDS = (3001, 3002, 3003)      # rand_ini, sine_waves, uv (Timbre's; upstream's come from the global RNG)

LLM_CLASS = "cosyvoice.llm.llm.CosyVoice3LM"
FLOW_CLASS = "cosyvoice.flow.flow.CausalMaskedDiffWithDiT"
LOOKAHEAD_CLASS = "cosyvoice.transformer.upsample_encoder.PreLookaheadLayer"
CFM_CLASS = "cosyvoice.flow.flow_matching.CausalConditionalCFM"
DIT_CLASS = "cosyvoice.flow.DiT.dit.DiT"
HIFT_CLASS = "cosyvoice.hifigan.generator.CausalHiFTGenerator"
F0_CLASS = "cosyvoice.hifigan.f0_predictor.CausalConvRNNF0Predictor"

# CosyVoice3Tokenizer's special tokens, in its order (cosyvoice/tokenizer/tokenizer.py): control tags, then the CMU
# phonemes and the pinyin finals/initials used for inline pronunciation.
_CMU = ("AA AA0 AA1 AA2 AE AE0 AE1 AE2 AH AH0 AH1 AH2 AO AO0 AO1 AO2 AW AW0 AW1 AW2 AY AY0 AY1 AY2 B CH D DH EH EH0 "
        "EH1 EH2 ER ER0 ER1 ER2 EY EY0 EY1 EY2 F G HH IH IH0 IH1 IH2 IY IY0 IY1 IY2 JH K L M N NG OW OW0 OW1 OW2 OY "
        "OY0 OY1 OY2 P R S SH T TH UH UH0 UH1 UH2 UW UW0 UW1 UW2 V W Y Z ZH").split()
_PINYIN = ("a ai an ang ao b c ch d e ei en eng f g h i ian in ing iu ià iàn iàng iào iá ián iáng iáo iè ié iòng ióng "
           "iù iú iā iān iāng iāo iē iě iōng iū iǎ iǎn iǎng iǎo iǒng iǔ j k l m n o ong ou p q r s sh t u uang ue un "
           "uo uà uài uàn uàng uá uái uán uáng uè ué uì uí uò uó uā uāi uān uāng uē uě uī uō uǎ uǎi uǎn uǎng uǐ uǒ vè "
           "w x y z zh à ài àn àng ào á ái án áng áo è èi èn èng èr é éi én éng ér ì ìn ìng í ín íng ò òng òu ó óng óu "
           "ù ùn ú ún ā āi ān āng āo ē ēi ēn ēng ě ěi ěn ěng ěr ī īn īng ō ōng ōu ū ūn ǎ ǎi ǎn ǎng ǎo ǐ ǐn ǐng ǒ ǒng "
           "ǒu ǔ ǔn ǘ ǚ ǜ").split()
SPECIAL_TOKENS = (["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|endofprompt|>", "[breath]", "<strong>",
                   "</strong>", "[noise]", "[laughter]", "[cough]", "[clucking]", "[accent]", "[quick_breath]",
                   "<laughter>", "</laughter>", "[hissing]", "[sigh]", "[vocalized-noise]", "[lipsmack]", "[mn]",
                   "<|endofsystem|>"] + [f"[{p}]" for p in _CMU] + [f"[{p}]" for p in _PINYIN])


def source_buffers(samples: int, dims: int = 9) -> Tuple[Tensor, Tensor, Tensor]:
    """The causal source's fixed random buffers, as upstream shapes them: rand_ini [1, dims] (first column 0),
    sine_waves [1, samples, dims] and uv [1, samples, 1], uniform in [0, 1), each from its own seeded generator."""
    g = torch.Generator().manual_seed(SOURCE_SEEDS[0])
    rand_ini = torch.rand(1, dims, generator=g)
    rand_ini[:, 0] = 0
    sine_waves = torch.rand(1, samples, dims, generator=torch.Generator().manual_seed(SOURCE_SEEDS[1]))
    uv = torch.rand(1, samples, 1, generator=torch.Generator().manual_seed(SOURCE_SEEDS[2]))
    return rand_ini, sine_waves, uv


# ------------------------------------------------------------------------------------------- yaml
def llm_config(cfg: dict, path: str) -> dict:
    if "llm" not in cfg:
        raise ReleaseError(f"{path}: llm is missing")
    s = _Section(path, "llm", cfg["llm"], LLM_CLASS)
    out = dict(speech_token_size=s.need("speech_token_size", int), input_size=s.need("llm_input_size", int),
               output_size=s.need("llm_output_size", int))
    if out["speech_token_size"] != SPEECH_TOKEN_SIZE:
        raise ReleaseError(f"{path}: llm.speech_token_size = {out['speech_token_size']}: expected {SPEECH_TOKEN_SIZE}")
    return out


def flow_config(cfg: dict, path: str) -> dict:
    if "flow" not in cfg:
        raise ReleaseError(f"{path}: flow is missing")
    fl = _Section(path, "flow", cfg["flow"], FLOW_CLASS)
    la = fl.sub("pre_lookahead_layer", LOOKAHEAD_CLASS)
    dec = fl.sub("decoder", CFM_CLASS)
    est = dec.sub("estimator", DIT_CLASS)
    fl.expect("output_type", "mel", "mel")
    cfm = dec.args.get("cfm_params")
    content = cfm.args.get("content") if isinstance(cfm, _Tagged) and isinstance(cfm.args, dict) else None
    if not isinstance(content, dict):
        raise ReleaseError(f"{path}: flow.decoder.cfm_params.content is missing")
    cfm_sec = _Section.__new__(_Section)
    cfm_sec.path, cfm_sec.where, cfm_sec.args = path, "flow.decoder.cfm_params.content", content
    cfm_sec.expect("solver", "euler")
    cfm_sec.expect("t_scheduler", "cosine")
    est.expect("long_skip_connection", False, False)
    out = dict(
        input_size=fl.need("input_size", int), output_size=fl.need("output_size", int),
        spk_embed_dim=fl.need("spk_embed_dim", int), vocab_size=fl.need("vocab_size", int),
        token_mel_ratio=fl.need("token_mel_ratio", int), pre_lookahead_len=fl.need("pre_lookahead_len", int),
        la_in=la.need("in_channels", int), la_channels=la.need("channels", int),
        la_len=la.need("pre_lookahead_len", int),
        inference_cfg_rate=cfm_sec.need("inference_cfg_rate", float),
        dim=est.need("dim", int), depth=est.need("depth", int), heads=est.get("heads", 8, int),
        dim_head=est.get("dim_head", 64, int), ff_mult=est.get("ff_mult", 4, float),
        mel_dim=est.get("mel_dim", 80, int), mu_dim=est.get("mu_dim", None) or est.get("mel_dim", 80, int),
        spk_dim=est.get("spk_dim", None), out_channels=est.get("out_channels", None),
        static_chunk_size=est.get("static_chunk_size", 50, int))
    if out["token_mel_ratio"] != 2:
        raise ReleaseError(f"{path}: flow.token_mel_ratio = {out['token_mel_ratio']}: expected 2")
    if out["la_len"] != out["pre_lookahead_len"]:
        raise ReleaseError(f"{path}: flow.pre_lookahead_layer.pre_lookahead_len = {out['la_len']}: expected "
                           f"flow.pre_lookahead_len ({out['pre_lookahead_len']})")
    if out["la_in"] != out["input_size"] or out["input_size"] != out["output_size"]:
        raise ReleaseError(f"{path}: flow.input_size / pre_lookahead_layer.in_channels / output_size = "
                           f"{out['input_size']} / {out['la_in']} / {out['output_size']}: expected all equal (80)")
    if out["spk_dim"] is None or int(out["spk_dim"]) != out["output_size"]:
        raise ReleaseError(f"{path}: flow.decoder.estimator.spk_dim = {out['spk_dim']!r}: expected {out['output_size']}")
    if out["mel_dim"] != out["output_size"] or int(out["mu_dim"]) != out["output_size"]:
        raise ReleaseError(f"{path}: flow.decoder.estimator.mel_dim/mu_dim: expected {out['output_size']}")
    out["spk_dim"] = int(out["spk_dim"])
    out["mu_dim"] = int(out["mu_dim"])
    return out


def hift_config(cfg: dict, path: str) -> dict:
    if "hift" not in cfg:
        raise ReleaseError(f"{path}: hift is missing")
    h = _Section(path, "hift", cfg["hift"], HIFT_CLASS)
    f0 = h.sub("f0_predictor", F0_CLASS)
    istft = h.need("istft_params")
    if not isinstance(istft, dict) or "n_fft" not in istft or "hop_len" not in istft:
        raise ReleaseError(f"{path}: hift.istft_params: expected n_fft and hop_len")
    out = dict(
        in_channels=h.need("in_channels", int), base_channels=h.need("base_channels", int),
        nb_harmonics=h.need("nb_harmonics", int), sampling_rate=h.need("sampling_rate", int),
        nsf_alpha=h.need("nsf_alpha", float), nsf_sigma=h.need("nsf_sigma", float),
        nsf_voiced_threshold=h.need("nsf_voiced_threshold", float),
        upsample_rates=[int(x) for x in h.need("upsample_rates", list)],
        upsample_kernel_sizes=[int(x) for x in h.need("upsample_kernel_sizes", list)],
        n_fft=int(istft["n_fft"]), hop_len=int(istft["hop_len"]),
        resblock_kernel_sizes=[int(x) for x in h.need("resblock_kernel_sizes", list)],
        resblock_dilation_sizes=[[int(y) for y in x] for x in h.need("resblock_dilation_sizes", list)],
        source_resblock_kernel_sizes=[int(x) for x in h.need("source_resblock_kernel_sizes", list)],
        source_resblock_dilation_sizes=[[int(y) for y in x] for x in h.need("source_resblock_dilation_sizes", list)],
        lrelu_slope=h.get("lrelu_slope", 0.1, float), audio_limit=h.get("audio_limit", 0.99, float),
        conv_pre_look_right=h.get("conv_pre_look_right", 4, int),
        f0_in_channels=f0.get("in_channels", 80, int), f0_cond_channels=f0.get("cond_channels", 512, int),
        f0_num_class=f0.get("num_class", 1, int))
    if out["sampling_rate"] == 22050:
        raise ReleaseError(f"{path}: hift.sampling_rate = 22050: that selects SineGen (CosyVoice 1); expected 24000")
    if out["nb_harmonics"] != 8:
        raise ReleaseError(f"{path}: hift.nb_harmonics = {out['nb_harmonics']}: the causal source's buffers are 9 "
                           "wide (upstream hard-codes 9), expected 8")
    if out["f0_num_class"] != 1:
        raise ReleaseError(f"{path}: hift.f0_predictor.num_class = {out['f0_num_class']}: expected 1")
    n = len(out["upsample_rates"])
    for k in ("upsample_kernel_sizes", "source_resblock_kernel_sizes", "source_resblock_dilation_sizes"):
        if len(out[k]) != n:
            raise ReleaseError(f"{path}: hift.{k} has {len(out[k])} entries: expected {n} (one per upsample rate)")
    return out


# ------------------------------------------------------------------------------------------- LLM
class SpeechLM3(nn.Module):
    """llm.pt for CosyVoice 3: CosyVoice3LM's Qwen2 with the pack's prefill/decode (timbrepack.nets.SpeechLM's
    contract). sos and task_id are speech_embedding rows 6561 and 6563; the head is bias-free with 6761 outputs."""

    def __init__(self, text_vocab: int, dim: int, layers: int, heads: int, kv_heads: int, ffn: int,
                 theta: float = 1000000.0):
        super().__init__()
        self.layers_n = layers
        self.sos = SOS
        self.task_id = TASK_ID
        self.kv_heads = kv_heads
        self.head_dim = dim // heads
        self.text_embedding = nn.Embedding(text_vocab, dim)
        self.speech_embedding = nn.Embedding(LLM_VOCAB, dim)
        self.layers = nn.ModuleList([nets.DecoderLayer(dim, heads, kv_heads, ffn, theta) for _ in range(layers)])
        self.norm = nets.RMSNorm(dim)
        self.llm_decoder = nn.Linear(dim, LLM_VOCAB, bias=False)

    @torch.jit.export
    def prefill(self, text: Tensor, text_len: Tensor, speech: Tensor, speech_len: Tensor,
                cache_len: int) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """As nets.SpeechLM.prefill; logp is [B, 6761]."""
        b = text.shape[0]
        seq_len = text_len + speech_len + 2
        t = int(seq_len.max())
        if cache_len < t:
            raise ValueError("cache_len is shorter than the prefill sequence")
        text_emb = self.text_embedding(text)
        speech_emb = self.speech_embedding(speech)
        sos = self.speech_embedding.weight[self.sos]
        task = self.speech_embedding.weight[self.task_id]
        x = torch.zeros(b, t, text_emb.shape[2], dtype=text_emb.dtype, device=text.device)
        for i in range(b):
            tl = int(text_len[i])
            sl = int(speech_len[i])
            x[i, 0] = sos
            x[i, 1:1 + tl] = text_emb[i, :tl]
            x[i, 1 + tl] = task
            x[i, 2 + tl:2 + tl + sl] = speech_emb[i, :sl]
        pos = torch.arange(t, device=text.device).unsqueeze(0).expand(b, t)
        causal = pos.unsqueeze(2) >= pos.unsqueeze(1)
        valid = pos < seq_len.unsqueeze(1)
        allowed = (causal & valid.unsqueeze(1)).unsqueeze(1)
        k_cache = torch.zeros(self.layers_n, b, self.kv_heads, cache_len, self.head_dim, dtype=x.dtype, device=x.device)
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
        """As nets.SpeechLM.decode; logp is [B, 6761]."""
        b = token.shape[0]
        x = self.speech_embedding(token).unsqueeze(1)
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
class PreLookahead(nn.Module):
    """PreLookaheadLayer (finalize): right-pad `lookahead` zero tokens, conv k=lookahead+1, leaky ReLU, left-pad,
    conv k=3, residual."""

    def __init__(self, cin: int, channels: int, lookahead: int):
        super().__init__()
        self.lookahead = lookahead
        self.conv1 = nn.Conv1d(cin, channels, lookahead + 1)
        self.conv2 = nn.Conv1d(channels, cin, 3)

    def forward(self, x: Tensor, context: int = 0) -> Tensor:
        """x [B, T, D]; the last `context` tokens are only look-ahead (PreLookaheadLayer(inputs, context), as
        CausalMaskedDiffWithDiT.inference passes them with finalize=False): zero padding fills the look-ahead they
        do not cover, and the result covers T - context tokens."""
        t = x.shape[1] - context
        h = F.pad(x.transpose(1, 2), (0, self.lookahead - context))
        h = F.leaky_relu(self.conv1(h))
        h = self.conv2(F.pad(h, (2, 0)))
        return h.transpose(1, 2) + x[:, :t]


class TimeEmbedding(nn.Module):
    def __init__(self, dim: int, freq_dim: int = 256):
        super().__init__()
        self.freq_dim = freq_dim
        self.time_mlp = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: Tensor) -> Tensor:
        half = self.freq_dim // 2
        scale = math.log(10000) / (half - 1)
        freqs = torch.exp(torch.arange(half, device=t.device).float() * -scale)
        emb = 1000.0 * t.unsqueeze(1) * freqs.unsqueeze(0)
        return self.time_mlp(torch.cat((emb.sin(), emb.cos()), dim=-1).to(t.dtype))


class CausalPosConv(nn.Module):
    """CausalConvPositionEmbedding: two (left-padded grouped conv k=31 + Mish)."""

    def __init__(self, dim: int, kernel: int = 31, groups: int = 16):
        super().__init__()
        self.kernel = kernel
        self.conv1 = nn.Sequential(nn.Conv1d(dim, dim, kernel, groups=groups), nn.Mish())
        self.conv2 = nn.Sequential(nn.Conv1d(dim, dim, kernel, groups=groups), nn.Mish())

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(F.pad(x.transpose(1, 2), (self.kernel - 1, 0)))
        h = self.conv2(F.pad(h, (self.kernel - 1, 0)))
        return h.transpose(1, 2)


class InputEmbed(nn.Module):
    def __init__(self, mel_dim: int, mu_dim: int, spk_dim: int, dim: int):
        super().__init__()
        self.proj = nn.Linear(mel_dim * 2 + mu_dim + spk_dim, dim)
        self.conv_pos_embed = CausalPosConv(dim)

    def forward(self, x: Tensor, cond: Tensor, mu: Tensor, spks: Tensor) -> Tensor:
        s = spks.unsqueeze(1).expand(spks.shape[0], x.shape[1], spks.shape[1])
        x = self.proj(torch.cat([x, cond, mu, s], dim=-1))
        return self.conv_pos_embed(x) + x


def rotate_pairs(x: Tensor) -> Tensor:
    """x_transformers' rotate_half: adjacent pairs (a, b) -> (-b, a)."""
    shape = x.shape
    p = x.reshape(shape[:-1] + (shape[-1] // 2, 2))
    return torch.stack((-p[..., 1], p[..., 0]), dim=-1).reshape(shape)


class DiTAttention(nn.Module):
    def __init__(self, dim: int, heads: int, dim_head: int):
        super().__init__()
        self.heads = heads
        self.dim_head = dim_head
        inner = heads * dim_head
        self.to_q = nn.Linear(dim, inner)
        self.to_k = nn.Linear(dim, inner)
        self.to_v = nn.Linear(dim, inner)
        self.to_out = nn.ModuleList([nn.Linear(inner, dim)])

    def rope(self, t: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        # apply_rotary_pos_emb with freqs of width dim_head on [B, N, heads * dim_head]: only the first dim_head
        # channels (the first head) are rotated, the rest pass unchanged
        r = t[..., :self.dim_head]
        return torch.cat((r * cos + rotate_pairs(r) * sin, t[..., self.dim_head:]), dim=-1)

    def forward(self, x: Tensor, key_mask: Tensor, allowed: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        """key_mask [B, N]: valid frames (the output's mask); allowed [B, 1, 1 or N, N]: keys each query sees."""
        b, n = x.shape[0], x.shape[1]
        q = self.rope(self.to_q(x), cos, sin).view(b, n, self.heads, self.dim_head).transpose(1, 2)
        k = self.rope(self.to_k(x), cos, sin).view(b, n, self.heads, self.dim_head).transpose(1, 2)
        v = self.to_v(x).view(b, n, self.heads, self.dim_head).transpose(1, 2)
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.dim_head)
        scores = scores.masked_fill(~allowed, float("-inf"))
        out = torch.matmul(torch.softmax(scores, dim=-1), v)
        out = self.to_out[0](out.transpose(1, 2).reshape(b, n, self.heads * self.dim_head))
        return out.masked_fill(~key_mask.unsqueeze(-1), 0.0)


class DiTFeedForward(nn.Module):
    def __init__(self, dim: int, inner: int):
        super().__init__()
        self.ff = nn.Sequential(nn.Sequential(nn.Linear(dim, inner), nn.GELU(approximate="tanh")), nn.Identity(),
                                nn.Linear(inner, dim))

    def forward(self, x: Tensor) -> Tensor:
        return self.ff(x)


class AdaNormZero(nn.Module):
    def __init__(self, dim: int, chunks: int):
        super().__init__()
        self.linear = nn.Linear(dim, dim * chunks)


class DiTBlock(nn.Module):
    def __init__(self, dim: int, heads: int, dim_head: int, ff_mult: float):
        super().__init__()
        self.dim = dim
        self.attn_norm = AdaNormZero(dim, 6)
        self.attn = DiTAttention(dim, heads, dim_head)
        self.ff = DiTFeedForward(dim, int(dim * ff_mult))

    def forward(self, x: Tensor, t: Tensor, key_mask: Tensor, allowed: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        e = self.attn_norm.linear(F.silu(t))
        d = self.dim
        shift_msa, scale_msa, gate_msa = e[:, :d], e[:, d:2 * d], e[:, 2 * d:3 * d]
        shift_mlp, scale_mlp, gate_mlp = e[:, 3 * d:4 * d], e[:, 4 * d:5 * d], e[:, 5 * d:]
        norm = F.layer_norm(x, [d], eps=1e-6) * (1 + scale_msa.unsqueeze(1)) + shift_msa.unsqueeze(1)
        x = x + gate_msa.unsqueeze(1) * self.attn(norm, key_mask, allowed, cos, sin)
        norm = F.layer_norm(x, [d], eps=1e-6) * (1 + scale_mlp.unsqueeze(1)) + shift_mlp.unsqueeze(1)
        return x + gate_mlp.unsqueeze(1) * self.ff(norm)


class RotaryTable(nn.Module):
    def __init__(self, dim_head: int):
        super().__init__()
        self.register_buffer("inv_freq", 1.0 / (10000 ** (torch.arange(0, dim_head, 2).float() / dim_head)),
                             persistent=True)


class DiT(nn.Module):
    def __init__(self, c: dict):
        super().__init__()
        dim = c["dim"]
        self.dim = dim
        self.time_embed = TimeEmbedding(dim)
        self.input_embed = InputEmbed(c["mel_dim"], c["mu_dim"], c["spk_dim"], dim)
        self.rotary_embed = RotaryTable(c["dim_head"])
        self.transformer_blocks = nn.ModuleList([DiTBlock(dim, c["heads"], c["dim_head"], c["ff_mult"])
                                                 for _ in range(c["depth"])])
        self.norm_out = AdaNormZero(dim, 2)
        self.proj_out = nn.Linear(dim, c["mel_dim"])

    def forward(self, x: Tensor, mask: Tensor, mu: Tensor, t: Tensor, spks: Tensor, cond: Tensor) -> Tensor:
        """x, mu, cond [B, 80, F]; mask [B, 1, F]; t [B]; spks [B, 80] -> velocity [B, 80, F] (full attention over
        the valid frames: the non-streamed path)."""
        return self.chunked(x, mask, mu, t, spks, cond, 0)

    def chunked(self, x: Tensor, mask: Tensor, mu: Tensor, t: Tensor, spks: Tensor, cond: Tensor, chunk: int) -> Tensor:
        """chunk > 0: DiT.forward(streaming=True): attention within chunks of `chunk` frames and all chunks before
        (add_optional_chunk_mask with static_chunk_size); chunk = 0: full attention over the valid frames."""
        x = x.transpose(1, 2)
        n = x.shape[1]
        temb = self.time_embed(t)
        h = self.input_embed(x, cond.transpose(1, 2), mu.transpose(1, 2), spks)
        pos = torch.arange(n, device=x.device).to(self.rotary_embed.inv_freq.dtype)
        freqs = pos.unsqueeze(1) * self.rotary_embed.inv_freq.unsqueeze(0)           # [N, dh/2]
        freqs = torch.stack((freqs, freqs), dim=-1).reshape(n, -1).unsqueeze(0)      # [1, N, dh] interleaved
        cos, sin = freqs.cos(), freqs.sin()
        key_mask = mask[:, 0, :] > 0                                                  # [B, N]
        b = key_mask.shape[0]
        if chunk > 0:
            allowed = cv2_chunk_mask(key_mask.unsqueeze(1), chunk).unsqueeze(1)         # [B, 1, N, N]
        else:
            allowed = key_mask.view(b, 1, 1, n)
        for block in self.transformer_blocks:
            h = block(h, temb, key_mask, allowed, cos, sin)
        e = self.norm_out.linear(F.silu(temb))
        scale, shift = e[:, :self.dim], e[:, self.dim:]
        h = F.layer_norm(h, [self.dim], eps=1e-6) * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)
        return self.proj_out(h).transpose(1, 2)


class CFM(nn.Module):
    def __init__(self, estimator: DiT):
        super().__init__()
        self.estimator = estimator


class Flow(nn.Module):
    """flow.pt for CosyVoice 3: CausalMaskedDiffWithDiT under the release's names with the pack's methods
    encode / estimate / noise (the same signatures as CosyVoice 2's packs)."""

    def __init__(self, c: dict, noise_len: int = 15000):
        super().__init__()
        self.mel_bins = c["output_size"]
        self.estimator_chunk = c["static_chunk_size"]             # DiT static_chunk_size (mel frames)
        self.token_chunk = c["static_chunk_size"] // c["token_mel_ratio"]   # the same chunk in tokens
        self.pre_lookahead_len = c["pre_lookahead_len"]
        self.input_embedding = nn.Embedding(c["vocab_size"], c["input_size"])
        self.spk_embed_affine_layer = nn.Linear(c["spk_embed_dim"], c["output_size"])
        self.pre_lookahead_layer = PreLookahead(c["la_in"], c["la_channels"], c["pre_lookahead_len"])
        self.decoder = CFM(DiT(c))
        gen = torch.Generator().manual_seed(0)
        self.register_buffer("rand_noise", torch.randn([1, c["output_size"], noise_len], generator=gen), persistent=True)

    @torch.jit.export
    def encode(self, tokens: Tensor, token_len: Tensor, prompt_feat: Tensor, prompt_feat_len: Tensor,
               embedding: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        return self.encode_streaming(tokens, token_len, prompt_feat, prompt_feat_len, embedding, 0, False)

    @torch.jit.export
    def encode_streaming(self, tokens: Tensor, token_len: Tensor, prompt_feat: Tensor, prompt_feat_len: Tensor,
                         embedding: Tensor, context: int, streaming: bool) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """CausalMaskedDiffWithDiT.inference's part before the ODE, for chunked streaming (the signature of CosyVoice 2
        packs): the last `context` tokens (finalize=False: pre_lookahead_len; token_len counts them) are only the
        pre-lookahead layer's context, the results cover T - context tokens. `streaming` changes nothing here (the
        DiT flow has no encoder; its chunk masks are estimate_streaming's). encode = encode_streaming(.., 0, False)."""
        b, t_all = tokens.shape
        t = t_all - context
        spks = self.spk_embed_affine_layer(F.normalize(embedding, dim=1))
        all_mask = torch.arange(t_all, device=tokens.device).unsqueeze(0) < token_len.unsqueeze(1)
        x = self.input_embedding(torch.clamp(tokens, min=0)) * all_mask.unsqueeze(-1).to(spks.dtype)
        h = self.pre_lookahead_layer(x, context).repeat_interleave(2, dim=1)        # [B, 2(T - context), 80]
        tok_mask = torch.arange(t, device=tokens.device).unsqueeze(0) < (token_len - context).unsqueeze(1)
        mel_mask = tok_mask.repeat_interleave(2, dim=1)
        mu = (h * mel_mask.unsqueeze(-1).to(h.dtype)).transpose(1, 2).contiguous()
        cond = torch.zeros(b, 2 * t, self.mel_bins, dtype=h.dtype, device=h.device)
        for i in range(b):
            n = int(prompt_feat_len[i])
            cond[i, :n] = prompt_feat[i, :n]
        return mu, mel_mask.unsqueeze(1).to(h.dtype), spks, cond.transpose(1, 2).contiguous()

    @torch.jit.export
    def estimate(self, x: Tensor, mask: Tensor, mu: Tensor, t: Tensor, spks: Tensor, cond: Tensor) -> Tensor:
        return self.decoder.estimator(x, mask, mu, t, spks, cond)

    @torch.jit.export
    def estimate_streaming(self, x: Tensor, mask: Tensor, mu: Tensor, t: Tensor, spks: Tensor, cond: Tensor,
                           streaming: bool) -> Tensor:
        """estimate; streaming: DiT.forward(streaming=True), chunk attention of static_chunk_size frames."""
        return self.decoder.estimator.chunked(x, mask, mu, t, spks, cond, self.estimator_chunk if streaming else 0)

    @torch.jit.export
    def noise(self, frames: int) -> Tensor:
        if frames > self.rand_noise.shape[2]:
            raise ValueError("more mel frames than the fixed noise buffer holds")
        return self.rand_noise[:, :, :frames].contiguous()

    def forward(self, x: Tensor, mask: Tensor, mu: Tensor, t: Tensor, spks: Tensor, cond: Tensor) -> Tensor:
        return self.estimate(x, mask, mu, t, spks, cond)


# ------------------------------------------------------------------------------------------- HiFT
class PadConv(nn.Conv1d):
    """CausalConv1d (stride 1): zero padding of `left` / `right` frames, then a plain convolution."""

    def __init__(self, cin: int, cout: int, kernel: int, dilation: int = 1, right: bool = False):
        super().__init__(cin, cout, kernel, dilation=dilation)
        pad = (kernel * dilation - dilation) // 2 * 2 + (kernel + 1) % 2
        self.left = 0 if right else pad
        self.right = pad if right else 0

    def forward(self, x: Tensor) -> Tensor:
        return F.conv1d(F.pad(x, (self.left, self.right)), self.weight, self.bias, 1, 0, self.dilation)


class UpConv(nn.Conv1d):
    """CausalConv1dUpsample: nearest upsampling by `stride`, left padding kernel-1, convolution."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int):
        super().__init__(cin, cout, kernel)
        self.stride_up = stride
        self.pad_left = kernel - 1

    def forward(self, x: Tensor) -> Tensor:
        x = torch._C._nn.upsample_nearest1d(x, None, [float(self.stride_up)])
        return F.conv1d(F.pad(x, (self.pad_left, 0)), self.weight, self.bias)


class DownConv(nn.Conv1d):
    """CausalConv1dDownSample: left padding stride-1, strided convolution."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int):
        super().__init__(cin, cout, kernel, stride)
        self.pad_left = stride - 1

    def forward(self, x: Tensor) -> Tensor:
        return F.conv1d(F.pad(x, (self.pad_left, 0)), self.weight, self.bias, self.stride)


class CausalResBlock(nn.Module):
    def __init__(self, channels: int, kernel: int, dilations: List[int]):
        super().__init__()
        self.convs1 = nn.ModuleList([PadConv(channels, channels, kernel, d) for d in dilations])
        self.convs2 = nn.ModuleList([PadConv(channels, channels, kernel, 1) for _ in dilations])
        self.activations1 = nn.ModuleList([Snake(channels) for _ in dilations])
        self.activations2 = nn.ModuleList([Snake(channels) for _ in dilations])

    def forward(self, x: Tensor) -> Tensor:
        for c1, c2, a1, a2 in zip(self.convs1, self.convs2, self.activations1, self.activations2):
            x = c2(a2(c1(a1(x)))) + x
        return x


class CausalF0Predictor(nn.Module):
    """CausalConvRNNF0Predictor, run in float64 as upstream does (its weights are kept in float64)."""

    def __init__(self, cin: int, cond: int):
        super().__init__()
        layers: List[nn.Module] = [PadConv(cin, cond, 4, right=True), nn.ELU()]
        for _ in range(4):
            layers += [PadConv(cond, cond, 3), nn.ELU()]
        self.condnet = nn.Sequential(*layers)
        self.classifier = nn.Linear(cond, 1)

    def forward(self, mel: Tensor) -> Tensor:
        x = self.condnet(mel.to(torch.float64)).transpose(1, 2)
        return torch.abs(self.classifier(x).squeeze(-1)).to(mel.dtype)


class CausalSource(nn.Module):
    """SourceModuleHnNSF + SineGen2 (causal): fixed initial phases and noise, phase integrated at the frame rate,
    nearest upsampling; harmonics merged by l_linear + tanh."""

    def __init__(self, harmonics: int, sample_rate: int, upsample: int, sine_amp: float, noise_std: float,
                 voiced_threshold: float, samples: int):
        super().__init__()
        self.sample_rate = sample_rate
        self.upsample = upsample
        self.sine_amp = sine_amp
        self.noise_std = noise_std
        self.voiced_threshold = voiced_threshold
        rand_ini, sine_waves, uv = source_buffers(samples, harmonics + 1)
        self.register_buffer("harmonic_mul", torch.arange(1, harmonics + 2, dtype=torch.float32).view(1, 1, -1),
                             persistent=True)
        self.register_buffer("rand_ini", rand_ini, persistent=True)
        self.register_buffer("sine_waves", sine_waves, persistent=True)
        self.l_linear = nn.Linear(harmonics + 1, 1)

    def forward(self, f0: Tensor) -> Tensor:
        """f0 [B, L, 1] at the sample rate -> source [B, L, 1]."""
        n = f0.shape[1]
        if n > self.sine_waves.shape[1]:
            raise ValueError("longer than the vocoder's fixed source buffer (export with a larger --source-seconds)")
        fn = f0 * self.harmonic_mul
        rad = (fn / self.sample_rate) % 1
        rad[:, 0, :] = rad[:, 0, :] + self.rand_ini
        rad = torch._C._nn.upsample_linear1d(rad.transpose(1, 2), None, False, [1.0 / self.upsample]).transpose(1, 2)
        phase = torch.cumsum(rad, dim=1) * 2 * math.pi
        phase = torch._C._nn.upsample_nearest1d(phase.transpose(1, 2) * self.upsample, None,
                                                [float(self.upsample)]).transpose(1, 2)
        sines = torch.sin(phase) * self.sine_amp
        uv = (f0 > self.voiced_threshold).to(torch.float32)
        noise_amp = uv * self.noise_std + (1 - uv) * self.sine_amp / 3
        sines = sines * uv + noise_amp * self.sine_waves[:, :n]
        return torch.tanh(self.l_linear(sines))


class HiFT(nn.Module):
    """hift.pt for CosyVoice 3: CausalHiFTGenerator (weight norm folded) under the release's names; forward(mel
    [B, 80, F]) -> waveform [B, F * 480] (finalize: the whole utterance). Deterministic: no RNG draws."""

    def __init__(self, c: dict, source_samples: int):
        super().__init__()
        rates = c["upsample_rates"]
        self.upp = c["hop_len"]
        for r in rates:
            self.upp *= r
        self.n_fft = c["n_fft"]
        self.hop = c["hop_len"]
        self.lrelu_slope = c["lrelu_slope"]
        self.audio_limit = c["audio_limit"]
        self.num_kernels = len(c["resblock_kernel_sizes"])
        base = c["base_channels"]
        self.f0_predictor = CausalF0Predictor(c["f0_in_channels"], c["f0_cond_channels"]).double()
        self.m_source = CausalSource(c["nb_harmonics"], c["sampling_rate"], self.upp, c["nsf_alpha"], c["nsf_sigma"],
                                     c["nsf_voiced_threshold"], source_samples)
        self.conv_pre = PadConv(c["in_channels"], base, c["conv_pre_look_right"] + 1, right=True)
        # finalize=False (CausalHiFTGenerator.inference / decode): frames of look-ahead the causal parts drop
        self.f0_look_right = self.f0_predictor.condnet[0].right
        self.pre_look_right = self.conv_pre.right
        self.stft_per_frame = self.upp // self.hop
        self.ups = nn.ModuleList([UpConv(base // 2 ** i, base // 2 ** (i + 1), k, u)
                                  for i, (u, k) in enumerate(zip(rates, c["upsample_kernel_sizes"]))])
        down = [1] + rates[::-1][:-1]
        cum = []
        acc = 1
        for d in down:
            acc *= d
            cum.append(acc)
        self.source_downs = nn.ModuleList()
        self.source_resblocks = nn.ModuleList()
        for i, (u, k, d) in enumerate(zip(cum[::-1], c["source_resblock_kernel_sizes"],
                                          c["source_resblock_dilation_sizes"])):
            ch = base // 2 ** (i + 1)
            if u == 1:
                self.source_downs.append(PadConv(self.n_fft + 2, ch, 1))
            else:
                self.source_downs.append(DownConv(self.n_fft + 2, ch, u * 2, u))
            self.source_resblocks.append(CausalResBlock(ch, k, d))
        self.resblocks = nn.ModuleList()
        ch = base
        for i in range(len(rates)):
            ch = base // 2 ** (i + 1)
            for k, d in zip(c["resblock_kernel_sizes"], c["resblock_dilation_sizes"]):
                self.resblocks.append(CausalResBlock(ch, k, d))
        self.conv_post = PadConv(ch, self.n_fft + 2, 7)
        n = torch.arange(self.n_fft, dtype=torch.float64)
        self.register_buffer("stft_window", (0.5 - 0.5 * torch.cos(2 * math.pi * n / self.n_fft)).float(),
                             persistent=True)

    def decode(self, x: Tensor, s: Tensor, finalize: bool) -> Tensor:
        spec = torch.stft(s.squeeze(1), self.n_fft, self.hop, self.n_fft, window=self.stft_window, center=True,
                          return_complex=True)
        s_stft = torch.cat([spec.real, spec.imag], dim=1)
        x = self.conv_pre(x)
        if not finalize:
            # upstream: conv_pre over x[:-look] with the last `look` frames as its right context (what the zero
            # padding gives for the frames kept) and the source's STFT cut by as many frames' worth
            x = x[:, :, :x.shape[2] - self.pre_look_right]
            s_stft = s_stft[:, :, :s_stft.shape[2] - self.stft_per_frame * self.pre_look_right]
        last = len(self.ups) - 1
        i = 0
        for up, source_down, source_block in zip(self.ups, self.source_downs, self.source_resblocks):
            x = up(F.leaky_relu(x, self.lrelu_slope))
            if i == last:
                x = F.pad(x, (1, 0), mode="reflect")
            x = x + source_block(source_down(s_stft))
            xs = torch.zeros_like(x)
            j = 0
            for block in self.resblocks:
                if i * self.num_kernels <= j < (i + 1) * self.num_kernels:
                    xs = xs + block(x)
                j += 1
            x = xs / self.num_kernels
            i += 1
        x = self.conv_post(F.leaky_relu(x))
        half = self.n_fft // 2 + 1
        magnitude = torch.clamp(torch.exp(x[:, :half, :]), max=1e2)
        phase = torch.sin(x[:, half:, :])
        spec_out = torch.complex(magnitude * torch.cos(phase), magnitude * torch.sin(phase))
        wav = torch.istft(spec_out, self.n_fft, self.hop, self.n_fft, window=self.stft_window)
        if not finalize:
            wav = wav[:, :wav.shape[1] - self.upp]
        return torch.clamp(wav, -self.audio_limit, self.audio_limit)

    @torch.jit.export
    def vocode(self, mel: Tensor, phase: Tensor, noise: Tensor, cache_source: Tensor) -> Tuple[Tensor, Tensor]:
        """The pack's vocoder signature (shared with CosyVoice 2's HiFT): mel [B, 80, F] -> (wav [B, F * 480], source
        [B, 1, F * 480]). The causal source draws nothing (its phases and noise are fixed buffers), so pack.json
        declares vocoder.source_harmonics = 0 and the caller passes empty phase [B, 0] and noise [B, 0, 0]; a causal
        HiFT keeps no source cache between hops either, so cache_source must be empty ([B, 1, 0])."""
        if phase.shape[1] != 0 or noise.shape[1] != 0 or cache_source.shape[2] != 0:
            raise ValueError("the causal vocoder takes no random draws and no source cache")
        return self.vocode_streaming(mel, True)

    @torch.jit.export
    def vocode_streaming(self, mel: Tensor, finalize: bool) -> Tuple[Tensor, Tensor]:
        """CausalHiFTGenerator.inference(speech_feat, finalize): CosyVoice 3's chunked streaming re-runs the vocoder
        over all the mel so far. finalize=True: the whole utterance (= vocode). finalize=False: the F0 predictor's
        first (right-padded) conv takes its last 3 frames as context, conv_pre the next 4, and the last frame's
        samples are dropped: mel [B, 80, F] -> (wav [B, (F - 8) * 480], source [B, 1, (F - 3) * 480])."""
        f0 = self.f0_predictor(mel)
        if not finalize:
            # the right-padded first conv run on mel[:-3] with mel[-3:] as its context gives the padded conv's first
            # F - 3 frames; every later layer is causal, so those frames are f0[:F - 3]
            keep = mel.shape[2] - self.f0_look_right
            if keep <= self.pre_look_right + 1:
                raise ValueError("too few mel frames for a streamed vocoder call")
            f0 = f0[:, :keep]
            mel = mel[:, :, :keep]
        s = torch._C._nn.upsample_nearest1d(f0.unsqueeze(1), None, [float(self.upp)]).transpose(1, 2)
        s = self.m_source(s).transpose(1, 2)
        return self.decode(mel, s, finalize), s

    def forward(self, mel: Tensor) -> Tensor:
        b = mel.shape[0]
        return self.vocode(mel, torch.zeros(b, 0, dtype=mel.dtype), torch.zeros(b, 0, 0, dtype=mel.dtype),
                           torch.zeros(b, 1, 0, dtype=mel.dtype))[0]
