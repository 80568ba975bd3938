"""CosyVoice 2's flow (CausalMaskedDiffWithXvec) and vocoder (HiFTGenerator), written here as scriptable modules
whose parameter names are the release's flow.pt / hift.pt keys, so the released state dicts load by name.

Only the inference path Timbre uses is defined: non-streaming flow encoding (full attention, no lookahead context),
one estimator evaluation per call (the caller runs the Euler loop with classifier-free guidance), and HiFT's
whole-utterance vocoding without the streaming cache. The numerics follow CosyVoice's classes (read from its
public repository: cosyvoice/flow, cosyvoice/transformer, cosyvoice/hifigan, Matcha-TTS's decoder components and
diffusers' attention); every size comes from the release's cosyvoice2.yaml, every weight from its state dicts.
Nothing here imports CosyVoice, Matcha-TTS, diffusers or hyperpyyaml."""
import ast
import math
import operator
import re
from typing import Dict, List, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ReleaseError(Exception):
    """The release directory is not what this exporter understands; the message names file, key and expectation."""


# ------------------------------------------------------------------------------------------- yaml
class _Tagged:
    """A hyperpyyaml node: `!new:` / `!name:` / `!apply:` with the dotted class or function name and its arguments."""

    def __init__(self, kind: str, target: str, args):
        self.kind, self.target, self.args = kind, target, args

    def __repr__(self) -> str:
        return f"!{self.kind}:{self.target}"


class _Ref:
    def __init__(self, expr: str):
        self.expr = expr


_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
        ast.FloorDiv: operator.floordiv, ast.Pow: operator.pow, ast.Mod: operator.mod}


def _arith(node):
    if isinstance(node, ast.Expression):
        return _arith(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_arith(node.left), _arith(node.right))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_arith(node.operand)
    raise ValueError("not plain arithmetic")


def load_config(path: str) -> dict:
    """Read cosyvoice2.yaml (hyperpyyaml) without running it: `!new:`/`!name:`/`!apply:` become _Tagged nodes,
    `!ref <key>` (also simple arithmetic such as `<a> * <b>`) is resolved against the top-level keys."""
    try:
        import yaml
    except ImportError as e:
        raise ReleaseError("PyYAML is needed to read cosyvoice2.yaml (apt-get install -y python3-yaml)") from e

    class Loader(yaml.SafeLoader):
        pass

    def tagged(kind):
        def build(loader, suffix, node):
            if isinstance(node, yaml.MappingNode):
                args = loader.construct_mapping(node, deep=True)
            elif isinstance(node, yaml.SequenceNode):
                args = loader.construct_sequence(node, deep=True)
            else:
                args = loader.construct_scalar(node) or {}
            return _Tagged(kind, suffix, args)
        return build

    for kind in ("new", "name", "apply", "module"):
        Loader.add_multi_constructor(f"!{kind}:", tagged(kind))
    Loader.add_constructor("!ref", lambda loader, node: _Ref(loader.construct_scalar(node)))
    Loader.add_constructor("!copy", lambda loader, node: _Ref(loader.construct_scalar(node)))
    Loader.add_constructor("!tuple", lambda loader, node: tuple(loader.construct_sequence(node, deep=True)))
    Loader.add_constructor("!include", lambda loader, node: _Tagged("include", loader.construct_scalar(node), {}))
    try:
        with open(path, encoding="utf-8") as f:
            raw = yaml.load(f, Loader=Loader)
    except (OSError, yaml.YAMLError) as e:
        raise ReleaseError(f"{path}: cannot be read as YAML: {e}") from e
    if not isinstance(raw, dict):
        raise ReleaseError(f"{path}: not a mapping at the top level")

    def lookup(name: str, where: str):
        node = raw
        for part in re.split(r"[\[\].]+", name.strip()):
            if not part:
                continue
            if isinstance(node, _Tagged) and isinstance(node.args, dict):
                node = node.args
            if not isinstance(node, dict) or part not in node:
                raise ReleaseError(f"{path}: {where}: !ref <{name}> names no key of the file")
            node = node[part]
        return resolve(node, where)

    def resolve(node, where: str):
        if isinstance(node, _Ref):
            names = re.findall(r"<([^<>]+)>", node.expr)
            if node.expr.strip() == f"<{names[0]}>" if names else False:
                return lookup(names[0], where)
            text = node.expr
            for n in names:
                text = text.replace(f"<{n}>", repr(lookup(n, where)))
            try:
                return _arith(ast.parse(text, mode="eval"))
            except (ValueError, SyntaxError) as e:
                raise ReleaseError(f"{path}: {where}: cannot evaluate !ref {node.expr!r}") from e
        if isinstance(node, _Tagged):
            node.args = resolve(node.args, where)
            return node
        if isinstance(node, dict):
            return {k: resolve(v, f"{where}.{k}" if where else str(k)) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v, where) for v in node]
        return node

    return resolve(raw, "")


class _Section:
    """One `!new:` node of the yaml with checked access: every refusal names the file, the key and the expectation."""

    def __init__(self, path: str, where: str, node, cls: str):
        if not isinstance(node, _Tagged) or node.kind != "new":
            raise ReleaseError(f"{path}: {where}: expected `!new:{cls}`, found {node!r}")
        if node.target != cls:
            raise ReleaseError(f"{path}: {where}: expected !new:{cls}, found !new:{node.target} "
                               "(only CosyVoice 2's classes are understood)")
        if not isinstance(node.args, dict):
            raise ReleaseError(f"{path}: {where}: expected keyword arguments under !new:{cls}")
        self.path, self.where, self.args = path, where, node.args

    def need(self, key: str, kind=None):
        if key not in self.args:
            raise ReleaseError(f"{self.path}: {self.where}.{key} is missing")
        return self._typed(key, self.args[key], kind)

    def get(self, key: str, default, kind=None):
        return self._typed(key, self.args.get(key, default), kind)

    def _typed(self, key, value, kind):
        if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ReleaseError(f"{self.path}: {self.where}.{key} = {value!r}: expected an integer")
        if kind is float:
            if isinstance(value, str):
                try:
                    value = float(value)        # YAML 1.1 reads 1e-06 as a string
                except ValueError:
                    pass
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ReleaseError(f"{self.path}: {self.where}.{key} = {value!r}: expected a number")
            return float(value)
        if kind is list and not isinstance(value, (list, tuple)):
            raise ReleaseError(f"{self.path}: {self.where}.{key} = {value!r}: expected a list")
        return value

    def expect(self, key: str, wanted, default=None) -> None:
        value = self.args.get(key, default)
        if value != wanted:
            raise ReleaseError(f"{self.path}: {self.where}.{key} = {value!r}: only {wanted!r} is supported")

    def sub(self, key: str, cls: str) -> "_Section":
        if key not in self.args:
            raise ReleaseError(f"{self.path}: {self.where}.{key} is missing")
        return _Section(self.path, f"{self.where}.{key}", self.args[key], cls)


FLOW_CLASS = "cosyvoice.flow.flow.CausalMaskedDiffWithXvec"
ENCODER_CLASS = "cosyvoice.transformer.upsample_encoder.UpsampleConformerEncoder"
CFM_CLASS = "cosyvoice.flow.flow_matching.CausalConditionalCFM"
ESTIMATOR_CLASS = "cosyvoice.flow.decoder.CausalConditionalDecoder"
HIFT_CLASS = "cosyvoice.hifigan.generator.HiFTGenerator"
F0_CLASS = "cosyvoice.hifigan.f0_predictor.ConvRNNF0Predictor"


def flow_config(cfg: dict, path: str) -> dict:
    """The flow's sizes from cosyvoice2.yaml's `flow` node (checked to be the CosyVoice 2 configuration)."""
    if "flow" not in cfg:
        raise ReleaseError(f"{path}: flow is missing")
    fl = _Section(path, "flow", cfg["flow"], FLOW_CLASS)
    enc = fl.sub("encoder", ENCODER_CLASS)
    dec = fl.sub("decoder", CFM_CLASS)
    est = dec.sub("estimator", ESTIMATOR_CLASS)
    fl.expect("output_type", "mel", "mel")
    enc.expect("input_layer", "linear", "conv2d")
    enc.expect("pos_enc_layer_type", "rel_pos_espnet", "rel_pos")
    enc.expect("selfattention_layer_type", "rel_selfattn", "rel_selfattn")
    enc.expect("normalize_before", True, True)
    enc.expect("use_cnn_module", False, True)
    enc.expect("macaron_style", False, True)
    enc.expect("activation_type", "swish", "swish")
    est.expect("act_fn", "gelu", "snake")
    cfm = dec.args.get("cfm_params")
    content = cfm.args.get("content") if isinstance(cfm, _Tagged) and isinstance(cfm.args, dict) else None
    if not isinstance(content, dict):
        raise ReleaseError(f"{path}: flow.decoder.cfm_params.content is missing")
    cfm_sec = _Section.__new__(_Section)
    cfm_sec.path, cfm_sec.where, cfm_sec.args = path, "flow.decoder.cfm_params.content", content
    cfm_sec.expect("solver", "euler")
    cfm_sec.expect("t_scheduler", "cosine")
    channels = est.need("channels", list)
    if len(channels) != 1:
        raise ReleaseError(f"{path}: flow.decoder.estimator.channels = {channels!r}: only one level (as CosyVoice 2's "
                           "[256]) is supported")
    out = dict(
        input_size=fl.need("input_size", int), output_size=fl.need("output_size", int),
        spk_embed_dim=fl.need("spk_embed_dim", int), vocab_size=fl.need("vocab_size", int),
        token_mel_ratio=fl.need("token_mel_ratio", int), pre_lookahead_len=fl.need("pre_lookahead_len", int),
        enc_input_size=enc.need("input_size", int), enc_dim=enc.need("output_size", int),
        enc_heads=enc.need("attention_heads", int), enc_ffn=enc.need("linear_units", int),
        enc_blocks=enc.need("num_blocks", int), enc_key_bias=bool(enc.get("key_bias", True)),
        cfm_in_channels=dec.need("in_channels", int), cfm_spk_dim=dec.need("spk_emb_dim", int),
        inference_cfg_rate=cfm_sec.need("inference_cfg_rate", float),
        est_in=est.need("in_channels", int), est_out=est.need("out_channels", int), est_channels=int(channels[0]),
        est_head_dim=est.need("attention_head_dim", int), est_blocks=est.need("n_blocks", int),
        est_mid=est.need("num_mid_blocks", int), est_heads=est.need("num_heads", int),
        enc_chunk=enc.need("static_chunk_size", int), est_chunk=est.need("static_chunk_size", int))
    if out["token_mel_ratio"] != 2:
        raise ReleaseError(f"{path}: flow.token_mel_ratio = {out['token_mel_ratio']}: the encoder upsamples by 2")
    if out["est_in"] != 4 * out["output_size"]:
        raise ReleaseError(f"{path}: flow.decoder.estimator.in_channels = {out['est_in']}: expected 4 x output_size "
                           f"({4 * out['output_size']}: x, mu, speaker, condition)")
    return out


def hift_config(cfg: dict, path: str) -> dict:
    """The vocoder's sizes from cosyvoice2.yaml's `hift` node."""
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
        f0_in_channels=f0.get("in_channels", 80, int), f0_cond_channels=f0.get("cond_channels", 512, int),
        f0_num_class=f0.get("num_class", 1, int))
    if out["sampling_rate"] == 22050:
        raise ReleaseError(f"{path}: hift.sampling_rate = 22050: that selects CosyVoice 1's SineGen; only CosyVoice 2's "
                           "24000 Hz vocoder (SineGen2) is supported")
    if out["f0_num_class"] != 1:
        raise ReleaseError(f"{path}: hift.f0_predictor.num_class = {out['f0_num_class']}: expected 1")
    n = len(out["upsample_rates"])
    for k in ("upsample_kernel_sizes", "source_resblock_kernel_sizes", "source_resblock_dilation_sizes"):
        if len(out[k]) != n:
            raise ReleaseError(f"{path}: hift.{k} has {len(out[k])} entries: expected {n} (one per upsample rate)")
    if len(out["resblock_dilation_sizes"]) != len(out["resblock_kernel_sizes"]):
        raise ReleaseError(f"{path}: hift.resblock_dilation_sizes: expected one list per resblock kernel size")
    return out


# -------------------------------------------------------------------------------------- state dicts
_WN_OLD = (".weight_g", ".weight_v")
_WN_NEW = (".parametrizations.weight.original0", ".parametrizations.weight.original1")


def fold_weight_norm(sd: Dict[str, Tensor], file: str) -> Dict[str, Tensor]:
    """Replace weight-norm pairs by plain weights, w = g * v / |v| (norm over all dims but 0, torch._weight_norm,
    the function both PyTorch weight-norm forms compute with). Accepts PyTorch < 2.1 names (weight_g / weight_v)
    and >= 2.1 parametrization names (parametrizations.weight.original0 / original1)."""
    out = {}
    done = set()
    for k in sd:
        for g_suffix, v_suffix in (_WN_OLD, _WN_NEW):
            if k.endswith(g_suffix) or k.endswith(v_suffix):
                base = k[:-len(g_suffix)] if k.endswith(g_suffix) else k[:-len(v_suffix)]
                if base in done:
                    break
                g, v = sd.get(base + g_suffix), sd.get(base + v_suffix)
                if g is None or v is None:
                    missing = base + (g_suffix if g is None else v_suffix)
                    raise ReleaseError(f"{file}: {k} has no partner {missing} (a weight-norm pair needs both)")
                if base + ".weight" in sd or base + ".weight" in out:
                    raise ReleaseError(f"{file}: {base}.weight appears both plain and weight-normed")
                if g.dim() != v.dim() or g.shape[0] != v.shape[0] or g.numel() != g.shape[0]:
                    raise ReleaseError(f"{file}: {base + g_suffix} has shape {tuple(g.shape)}: expected "
                                       f"[{v.shape[0]}, 1, ...] to match {base + v_suffix} {tuple(v.shape)}")
                out[base + ".weight"] = torch._weight_norm(v.float(), g.float(), 0)
                done.add(base)
                break
        else:
            out[k] = sd[k]
    return out


def load_named(module: nn.Module, sd: Dict[str, Tensor], file: str) -> None:
    """load_state_dict(strict) with refusals that name the file, the key and the expected shape."""
    target = module.state_dict()
    own_buffers = {k for k, _ in module.named_buffers()}
    wanted = [k for k in target if k not in own_buffers]
    missing = [k for k in wanted if k not in sd]
    if missing:
        shown = ", ".join(f"{k} (expected shape {list(target[k].shape)})" for k in missing[:5])
        raise ReleaseError(f"{file}: missing key{'s' if len(missing) > 1 else ''} {shown}"
                           + (f" and {len(missing) - 5} more" if len(missing) > 5 else ""))
    unexpected = [k for k in sd if k not in target]
    if unexpected:
        shown = ", ".join(f"{k} {list(sd[k].shape)}" for k in unexpected[:5])
        raise ReleaseError(f"{file}: unexpected key{'s' if len(unexpected) > 1 else ''} {shown}"
                           + (f" and {len(unexpected) - 5} more" if len(unexpected) > 5 else "")
                           + ": the file does not match the sizes in cosyvoice2.yaml")
    for k in wanted:
        if tuple(sd[k].shape) != tuple(target[k].shape):
            raise ReleaseError(f"{file}: {k} has shape {list(sd[k].shape)}: expected {list(target[k].shape)} "
                               "(from cosyvoice2.yaml)")
        if not sd[k].is_floating_point():
            raise ReleaseError(f"{file}: {k} has dtype {sd[k].dtype}: expected a floating-point tensor")
    with torch.no_grad():
        for k in wanted:
            target[k].copy_(sd[k].to(target[k].dtype))


# ---------------------------------------------------------------------------------- flow: encoder
def rel_positions(t: int, dim: int, device: torch.device) -> Tensor:
    """ESPnet's relative positional table for relative distances t-1 .. -(t-1): [1, 2t-1, dim]."""
    r = torch.arange(t - 1, -t, -1, dtype=torch.float32, device=device).unsqueeze(1)
    inv = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32, device=device) * -(math.log(10000.0) / dim))
    pe = torch.zeros(2 * t - 1, dim, device=device)
    pe[:, 0::2] = torch.sin(r * inv)
    pe[:, 1::2] = torch.cos(r * inv)
    return pe.unsqueeze(0)


class RelPosSelfAttention(nn.Module):
    """Transformer-XL style attention with learned biases u/v and a relative-position projection."""

    def __init__(self, dim: int, heads: int, key_bias: bool):
        super().__init__()
        self.h = heads
        self.d_k = dim // heads
        self.linear_q = nn.Linear(dim, dim)
        self.linear_k = nn.Linear(dim, dim, bias=key_bias)
        self.linear_v = nn.Linear(dim, dim)
        self.linear_out = nn.Linear(dim, dim)
        self.linear_pos = nn.Linear(dim, dim, bias=False)
        self.pos_bias_u = nn.Parameter(torch.zeros(heads, self.d_k))
        self.pos_bias_v = nn.Parameter(torch.zeros(heads, self.d_k))

    def forward(self, x: Tensor, key_mask: Tensor, pos: Tensor) -> Tensor:
        b, t, _ = x.shape
        q = self.linear_q(x).view(b, t, self.h, self.d_k)
        k = self.linear_k(x).view(b, t, self.h, self.d_k).transpose(1, 2)
        v = self.linear_v(x).view(b, t, self.h, self.d_k).transpose(1, 2)
        p = self.linear_pos(pos).view(1, -1, self.h, self.d_k).transpose(1, 2)          # [1, h, 2t-1, d_k]
        content = torch.matmul((q + self.pos_bias_u).transpose(1, 2), k.transpose(-2, -1))
        position = torch.matmul((q + self.pos_bias_v).transpose(1, 2), p.transpose(-2, -1))  # [b, h, t, 2t-1]
        # column j of row i is relative distance i - j, stored at index (t - 1) - i + j of the table
        rows = torch.arange(t, device=x.device).unsqueeze(1)
        cols = torch.arange(t, device=x.device).unsqueeze(0)
        index = ((t - 1) - rows + cols).view(1, 1, t, t).expand(b, self.h, t, t)
        position = torch.gather(position, 3, index)
        scores = (content + position) / math.sqrt(self.d_k)
        blocked = ~key_mask.unsqueeze(1)                                                  # [b, 1, 1, t]
        scores = scores.masked_fill(blocked, -float("inf"))
        attn = torch.softmax(scores, dim=-1).masked_fill(blocked, 0.0)
        y = torch.matmul(attn, v).transpose(1, 2).contiguous().view(b, t, self.h * self.d_k)
        return self.linear_out(y)


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.w_1 = nn.Linear(dim, hidden)
        self.w_2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.w_2(F.silu(self.w_1(x)))


class ConformerLayer(nn.Module):
    """Pre-norm layer without convolution or macaron feed-forward (use_cnn_module False, macaron_style False)."""

    def __init__(self, dim: int, heads: int, ffn: int, key_bias: bool):
        super().__init__()
        self.self_attn = RelPosSelfAttention(dim, heads, key_bias)
        self.feed_forward = FeedForward(dim, ffn)
        self.norm_ff = nn.LayerNorm(dim, eps=1e-12)
        self.norm_mha = nn.LayerNorm(dim, eps=1e-12)

    def forward(self, x: Tensor, key_mask: Tensor, pos: Tensor) -> Tensor:
        x = x + self.self_attn(self.norm_mha(x), key_mask, pos)
        return x + self.feed_forward(self.norm_ff(x))


class LinearEmbed(nn.Module):
    """Linear -> LayerNorm -> * sqrt(dim) (input_layer 'linear' with rel_pos_espnet), keys out.0 / out.1."""

    def __init__(self, idim: int, odim: int):
        super().__init__()
        self.out = nn.ModuleList([nn.Linear(idim, odim), nn.LayerNorm(odim, eps=1e-5)])
        self.xscale = math.sqrt(odim)

    def forward(self, x: Tensor) -> Tensor:
        return self.out[1](self.out[0](x)) * self.xscale


class PreLookahead(nn.Module):
    def __init__(self, channels: int, lookahead: int):
        super().__init__()
        self.lookahead = lookahead
        self.conv1 = nn.Conv1d(channels, channels, lookahead + 1)
        self.conv2 = nn.Conv1d(channels, channels, 3)

    def forward(self, x: Tensor, context: int) -> Tensor:
        """x [B, T, D]; its last `context` frames are lookahead only (PreLookaheadLayer's context): T - context out."""
        t = x.shape[1] - context
        h = F.pad(x.transpose(1, 2), (0, self.lookahead - context))    # sees `lookahead` future frames
        h = F.leaky_relu(self.conv1(h))
        h = self.conv2(F.pad(h, (2, 0)))                               # causal
        return h.transpose(1, 2) + x[:, :t]


def chunk_mask(key_mask: Tensor, chunk: int) -> Tensor:
    """key_mask [B, 1, T] bool -> [B, T, T] for chunk > 0 (add_optional_chunk_mask with a static chunk and all left
    chunks: query i sees keys j < (i // chunk + 1) * chunk; a row left with no key sees all, as it forces), else as is."""
    if chunk <= 0:
        return key_mask
    t = key_mask.shape[2]
    pos = torch.arange(t, device=key_mask.device)
    block = (torch.div(pos, chunk, rounding_mode="floor") + 1) * chunk
    allowed = key_mask & (pos.unsqueeze(0) < block.unsqueeze(1)).unsqueeze(0)
    return allowed | ~allowed.any(dim=-1, keepdim=True)


class Upsample2(nn.Module):
    """Nearest-neighbour x2, then a causal conv of width 2 * stride + 1 (key conv.*)."""

    def __init__(self, channels: int, stride: int = 2):
        super().__init__()
        self.stride = stride
        self.conv = nn.Conv1d(channels, channels, 2 * stride + 1)

    def forward(self, x: Tensor) -> Tensor:
        h = x.repeat_interleave(self.stride, dim=2)
        return self.conv(F.pad(h, (2 * self.stride, 0)))


class UpsampleEncoder(nn.Module):
    """UpsampleConformerEncoder, non-streaming: [B, T, D] + lengths -> [B, 2T, D]."""

    def __init__(self, input_size: int, dim: int, heads: int, ffn: int, blocks: int, up_blocks: int,
                 lookahead: int, key_bias: bool):
        super().__init__()
        self.dim = dim
        self.embed = LinearEmbed(input_size, dim)
        self.pre_lookahead_layer = PreLookahead(dim, lookahead)
        self.encoders = nn.ModuleList([ConformerLayer(dim, heads, ffn, key_bias) for _ in range(blocks)])
        self.up_layer = Upsample2(dim)
        self.up_embed = LinearEmbed(input_size, dim)
        self.up_encoders = nn.ModuleList([ConformerLayer(dim, heads, ffn, key_bias) for _ in range(up_blocks)])
        self.after_norm = nn.LayerNorm(dim, eps=1e-5)

    def forward(self, xs: Tensor, xs_lens: Tensor) -> Tensor:
        return self.chunked(xs, xs_lens, 0, 0)

    def chunked(self, xs: Tensor, xs_lens: Tensor, context: int, chunk: int) -> Tensor:
        """xs [B, T, D] with lengths xs_lens (the last `context` frames of each row are the lookahead context of
        UpsampleConformerEncoder.forward(context=...): they enter only the pre-lookahead layer) -> [B, 2 (T - context), D];
        chunk > 0: chunk attention masks (streaming=True), chunk tokens, then 2 * chunk frames after upsampling."""
        t_all = xs.shape[1]
        t = t_all - context
        lens = xs_lens - context
        all_mask = (torch.arange(t_all, device=xs.device).unsqueeze(0) < xs_lens.unsqueeze(1)).unsqueeze(1)
        key_mask = (torch.arange(t, device=xs.device).unsqueeze(0) < lens.unsqueeze(1)).unsqueeze(1)
        # padded frames are zeroed after the embedding so that the lookahead of a padded row sees the zeros
        # a row of its own length would (CosyVoice pads after the embedding, inside the lookahead layer)
        x = self.embed(xs) * torch.cat([key_mask, all_mask[:, :, t:]], dim=2).transpose(1, 2).to(xs.dtype)
        pos = rel_positions(t, self.dim, xs.device)
        x = self.pre_lookahead_layer(x, context)
        attn = chunk_mask(key_mask, chunk)
        for layer in self.encoders:
            x = layer(x, attn, pos)
        x = self.up_layer(x.transpose(1, 2)).transpose(1, 2)
        t2 = x.shape[1]
        key_mask = (torch.arange(t2, device=xs.device).unsqueeze(0) < (lens * 2).unsqueeze(1)).unsqueeze(1)
        x = self.up_embed(x)
        pos = rel_positions(t2, self.dim, xs.device)
        attn = chunk_mask(key_mask, 2 * chunk)
        for layer in self.up_encoders:
            x = layer(x, attn, pos)
        return self.after_norm(x)


# -------------------------------------------------------------------------------- flow: estimator
class CausalConv(nn.Conv1d):
    def __init__(self, cin: int, cout: int, kernel: int):
        super().__init__(cin, cout, kernel)
        self.left = kernel - 1

    def forward(self, x: Tensor) -> Tensor:
        return F.conv1d(F.pad(x, (self.left, 0)), self.weight, self.bias)


class CausalBlock(nn.Module):
    """Causal conv -> LayerNorm over channels -> Mish, masked before and after (keys block.0, block.2)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.block = nn.ModuleList([CausalConv(cin, cout, 3), nn.Identity(), nn.LayerNorm(cout)])

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        h = self.block[0](x * mask)
        h = self.block[2](h.transpose(1, 2)).transpose(1, 2)
        return F.mish(h) * mask


class CausalResnet(nn.Module):
    def __init__(self, cin: int, cout: int, time_dim: int):
        super().__init__()
        self.mlp = nn.ModuleList([nn.Identity(), nn.Linear(time_dim, cout)])     # Mish, Linear
        self.block1 = CausalBlock(cin, cout)
        self.block2 = CausalBlock(cout, cout)
        self.res_conv = nn.Conv1d(cin, cout, 1)

    def forward(self, x: Tensor, mask: Tensor, temb: Tensor) -> Tensor:
        h = self.block1(x, mask)
        h = h + self.mlp[1](F.mish(temb)).unsqueeze(-1)
        h = self.block2(h, mask)
        return h + self.res_conv(x * mask)


class Attention(nn.Module):
    """diffusers-style self-attention (to_q/to_k/to_v without bias, to_out.0 with bias), additive mask bias."""

    def __init__(self, dim: int, heads: int, head_dim: int):
        super().__init__()
        self.heads = heads
        self.head_dim = head_dim
        inner = heads * head_dim
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_k = nn.Linear(dim, inner, bias=False)
        self.to_v = nn.Linear(dim, inner, bias=False)
        self.to_out = nn.ModuleList([nn.Linear(inner, dim)])

    def forward(self, x: Tensor, bias: Tensor) -> Tensor:
        b, t, _ = x.shape
        q = self.to_q(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        k = self.to_k(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        v = self.to_v(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        scores = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(self.head_dim)) + bias.unsqueeze(1)
        y = torch.matmul(torch.softmax(scores, dim=-1), v)
        return self.to_out[0](y.transpose(1, 2).reshape(b, t, self.heads * self.head_dim))


class GeluProj(nn.Module):
    def __init__(self, dim: int, inner: int):
        super().__init__()
        self.proj = nn.Linear(dim, inner)

    def forward(self, x: Tensor) -> Tensor:
        return F.gelu(self.proj(x))


class FeedForwardGelu(nn.Module):
    def __init__(self, dim: int, mult: int = 4):
        super().__init__()
        self.net = nn.ModuleList([GeluProj(dim, dim * mult), nn.Identity(), nn.Linear(dim * mult, dim)])

    def forward(self, x: Tensor) -> Tensor:
        return self.net[2](self.net[0](x))


class TransformerBlock(nn.Module):
    """Matcha's BasicTransformerBlock as CosyVoice 2 configures it: self-attention and GELU feed-forward, pre-norm."""

    def __init__(self, dim: int, heads: int, head_dim: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = Attention(dim, heads, head_dim)
        self.norm3 = nn.LayerNorm(dim)
        self.ff = FeedForwardGelu(dim)

    def forward(self, x: Tensor, bias: Tensor) -> Tensor:
        x = self.attn1(self.norm1(x), bias) + x
        return self.ff(self.norm3(x)) + x


class TimeMLP(nn.Module):
    def __init__(self, cin: int, dim: int):
        super().__init__()
        self.linear_1 = nn.Linear(cin, dim)
        self.linear_2 = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear_2(F.silu(self.linear_1(x)))


def stage(cin: int, cout: int, time_dim: int, blocks: int, heads: int, head_dim: int, conv: bool) -> nn.ModuleList:
    """One entry of down_blocks / mid_blocks / up_blocks: [resnet, transformer blocks(, causal conv)] under the
    index keys 0, 1, 2 the release uses."""
    parts: List[nn.Module] = [CausalResnet(cin, cout, time_dim),
                              nn.ModuleList([TransformerBlock(cout, heads, head_dim) for _ in range(blocks)])]
    if conv:
        parts.append(CausalConv(cout, cout, 3))
    return nn.ModuleList(parts)


class Estimator(nn.Module):
    """CausalConditionalDecoder with one channel level, non-streaming (full attention over the valid frames)."""

    def __init__(self, in_channels: int, out_channels: int, channels: int, head_dim: int, blocks: int, mid: int,
                 heads: int):
        super().__init__()
        self.in_channels = in_channels
        time_dim = 4 * channels
        self.time_mlp = TimeMLP(in_channels, time_dim)
        self.down_blocks = nn.ModuleList([stage(in_channels, channels, time_dim, blocks, heads, head_dim, True)])
        self.mid_blocks = nn.ModuleList([stage(channels, channels, time_dim, blocks, heads, head_dim, False)
                                         for _ in range(mid)])
        self.up_blocks = nn.ModuleList([stage(2 * channels, channels, time_dim, blocks, heads, head_dim, True)])
        self.final_block = CausalBlock(channels, channels)
        self.final_proj = nn.Conv1d(channels, out_channels, 1)

    def time_embedding(self, t: Tensor) -> Tensor:
        half = self.in_channels // 2
        step = math.log(10000) / (half - 1)
        freqs = torch.exp(torch.arange(half, device=t.device).float() * -step)
        arg = 1000 * t.unsqueeze(1) * freqs.unsqueeze(0)
        return torch.cat([arg.sin(), arg.cos()], dim=-1)

    def forward(self, x: Tensor, mask: Tensor, mu: Tensor, t: Tensor, spks: Tensor, cond: Tensor) -> Tensor:
        return self.chunked(x, mask, mu, t, spks, cond, 0)

    def chunked(self, x: Tensor, mask: Tensor, mu: Tensor, t: Tensor, spks: Tensor, cond: Tensor, chunk: int) -> Tensor:
        """chunk > 0: attention within chunks of `chunk` frames and all chunks before (streaming=True)."""
        temb = self.time_mlp(self.time_embedding(t).to(t.dtype))
        h = torch.cat([x, mu, spks.unsqueeze(-1).expand(-1, -1, x.shape[2]), cond], dim=1)
        n = h.shape[2]
        allowed = chunk_mask(mask > 0, chunk)
        bias = (1.0 - allowed.to(h.dtype)) * -1.0e10                              # [B, 1 or T, T]: masked keys
        bias = bias.expand(-1, n, -1)
        skip = h
        for down in self.down_blocks:
            h = down[0](h, mask, temb)
            h = h.transpose(1, 2).contiguous()
            for block in down[1]:
                h = block(h, bias)
            h = h.transpose(1, 2).contiguous()
            skip = h
            h = down[2](h * mask)
        for mid in self.mid_blocks:
            h = mid[0](h, mask, temb)
            h = h.transpose(1, 2).contiguous()
            for block in mid[1]:
                h = block(h, bias)
            h = h.transpose(1, 2).contiguous()
        for up in self.up_blocks:
            h = torch.cat([h[:, :, :skip.shape[2]], skip], dim=1)
            h = up[0](h, mask, temb)
            h = h.transpose(1, 2).contiguous()
            for block in up[1]:
                h = block(h, bias)
            h = h.transpose(1, 2).contiguous()
            h = up[2](h * mask)
        h = self.final_block(h, mask)
        return self.final_proj(h * mask) * mask


class CFM(nn.Module):
    """CausalConditionalCFM's parameters: only its estimator (the Euler loop runs in the caller)."""

    def __init__(self, estimator: Estimator):
        super().__init__()
        self.estimator = estimator

    def forward(self, x: Tensor, mask: Tensor, mu: Tensor, t: Tensor, spks: Tensor, cond: Tensor) -> Tensor:
        return self.estimator(x, mask, mu, t, spks, cond)

    def chunked(self, x: Tensor, mask: Tensor, mu: Tensor, t: Tensor, spks: Tensor, cond: Tensor, chunk: int) -> Tensor:
        return self.estimator.chunked(x, mask, mu, t, spks, cond, chunk)


class Flow(nn.Module):
    """flow.pt of the pack: CausalMaskedDiffWithXvec's parameters under the release's names, with the pack's
    methods encode / estimate / noise (the contract of timbrepack.nets.Flow, models/README.md)."""

    def __init__(self, c: dict, noise_len: int = 15000):
        super().__init__()
        self.mel_bins = c["output_size"]
        self.encoder_chunk = c["enc_chunk"]          # encoder static_chunk_size (tokens)
        self.estimator_chunk = c["est_chunk"]        # estimator static_chunk_size (mel frames)
        self.input_embedding = nn.Embedding(c["vocab_size"], c["input_size"])
        self.spk_embed_affine_layer = nn.Linear(c["spk_embed_dim"], c["output_size"])
        self.encoder = UpsampleEncoder(c["enc_input_size"], c["enc_dim"], c["enc_heads"], c["enc_ffn"], c["enc_blocks"],
                                       4, c["pre_lookahead_len"], c["enc_key_bias"])
        self.encoder_proj = nn.Linear(c["enc_dim"], c["output_size"])
        self.decoder = CFM(Estimator(c["est_in"], c["est_out"], c["est_channels"], c["est_head_dim"], c["est_blocks"],
                                     c["est_mid"], c["est_heads"]))
        # CausalConditionalCFM's fixed starting noise: torch.manual_seed(0); torch.randn([1, 80, 50 * 300])
        gen = torch.Generator().manual_seed(0)
        self.register_buffer("rand_noise", torch.randn([1, c["output_size"], noise_len], generator=gen), persistent=True)

    @torch.jit.export
    def encode(self, tokens: Tensor, token_len: Tensor, prompt_feat: Tensor, prompt_feat_len: Tensor,
               embedding: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """tokens int64 [B, T] (prompt tokens then new ones), token_len [B]; prompt_feat [B, Fp, 80], prompt_feat_len
        [B]; embedding [B, 192]. Returns (mu [B, 80, 2T], mask [B, 1, 2T] float, spks [B, 80], cond [B, 80, 2T])."""
        return self.encode_streaming(tokens, token_len, prompt_feat, prompt_feat_len, embedding, 0, False)

    @torch.jit.export
    def encode_streaming(self, tokens: Tensor, token_len: Tensor, prompt_feat: Tensor, prompt_feat_len: Tensor,
                         embedding: Tensor, context: int, streaming: bool) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """CausalMaskedDiffWithXvec.inference's encoder part for chunked streaming: the last `context` tokens are
        the lookahead (finalize=False: context = pre_lookahead_len; token_len counts them), the results cover
        T - context tokens; streaming: the encoder's chunk attention masks. encode = encode_streaming(.., 0, False)."""
        b, t_all = tokens.shape
        t = t_all - context
        spks = self.spk_embed_affine_layer(F.normalize(embedding, dim=1))
        all_mask = torch.arange(t_all, device=tokens.device).unsqueeze(0) < token_len.unsqueeze(1)
        x = self.input_embedding(torch.clamp(tokens, min=0)) * all_mask.unsqueeze(-1).to(spks.dtype)
        tok_mask = torch.arange(t, device=tokens.device).unsqueeze(0) < (token_len - context).unsqueeze(1)
        chunk = self.encoder_chunk if streaming else 0
        h = self.encoder_proj(self.encoder.chunked(x, token_len, context, chunk))     # [B, 2T, 80]
        mel_mask = tok_mask.repeat_interleave(2, dim=1)
        mu = (h * mel_mask.unsqueeze(-1).to(h.dtype)).transpose(1, 2).contiguous()
        cond = torch.zeros(b, 2 * t, self.mel_bins, dtype=h.dtype, device=h.device)
        for i in range(b):
            n = int(prompt_feat_len[i])
            cond[i, :n] = prompt_feat[i, :n]
        return mu, mel_mask.unsqueeze(1).to(h.dtype), spks, cond.transpose(1, 2).contiguous()

    @torch.jit.export
    def estimate(self, x: Tensor, mask: Tensor, mu: Tensor, t: Tensor, spks: Tensor, cond: Tensor) -> Tensor:
        """One velocity evaluation: x, mu, cond [B, 80, F]; mask [B, 1, F]; t [B]; spks [B, 80]."""
        return self.decoder(x, mask, mu, t, spks, cond)

    @torch.jit.export
    def estimate_streaming(self, x: Tensor, mask: Tensor, mu: Tensor, t: Tensor, spks: Tensor, cond: Tensor,
                           streaming: bool) -> Tensor:
        """estimate; streaming: CausalConditionalDecoder's chunk attention (static_chunk_size frames)."""
        return self.decoder.chunked(x, mask, mu, t, spks, cond, self.estimator_chunk if streaming else 0)

    @torch.jit.export
    def noise(self, frames: int) -> Tensor:
        if frames > self.rand_noise.shape[2]:
            raise ValueError("more mel frames than the fixed noise buffer holds")
        return self.rand_noise[:, :, :frames].contiguous()

    def forward(self, x: Tensor, mask: Tensor, mu: Tensor, t: Tensor, spks: Tensor, cond: Tensor) -> Tensor:
        return self.estimate(x, mask, mu, t, spks, cond)


# ------------------------------------------------------------------------------------------- HiFT
class Snake(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(channels))

    def forward(self, x: Tensor) -> Tensor:
        a = self.alpha.unsqueeze(0).unsqueeze(-1)
        return x + (1.0 / (a + 1e-9)) * torch.pow(torch.sin(x * a), 2)


class SnakeResBlock(nn.Module):
    def __init__(self, channels: int, kernel: int, dilations: List[int]):
        super().__init__()
        self.convs1 = nn.ModuleList([nn.Conv1d(channels, channels, kernel, dilation=d, padding=(kernel * d - d) // 2)
                                     for d in dilations])
        self.convs2 = nn.ModuleList([nn.Conv1d(channels, channels, kernel, padding=(kernel - 1) // 2)
                                     for _ in dilations])
        self.activations1 = nn.ModuleList([Snake(channels) for _ in dilations])
        self.activations2 = nn.ModuleList([Snake(channels) for _ in dilations])

    def forward(self, x: Tensor) -> Tensor:
        for c1, c2, a1, a2 in zip(self.convs1, self.convs2, self.activations1, self.activations2):
            x = c2(a2(c1(a1(x)))) + x
        return x


class F0Predictor(nn.Module):
    """ConvRNNF0Predictor: 5 x (conv k3 + ELU) -> linear -> |.| (keys condnet.0,2,4,6,8 and classifier)."""

    def __init__(self, cin: int, cond: int):
        super().__init__()
        layers: List[nn.Module] = []
        for i in range(5):
            layers += [nn.Conv1d(cin if i == 0 else cond, cond, 3, padding=1), nn.ELU()]
        self.condnet = nn.Sequential(*layers)
        self.classifier = nn.Linear(cond, 1)

    def forward(self, mel: Tensor) -> Tensor:
        return torch.abs(self.classifier(self.condnet(mel).transpose(1, 2)).squeeze(-1))


class SourceModule(nn.Module):
    """SourceModuleHnNSF with SineGen2 (CosyVoice 2 at 24 kHz): harmonic sines whose phase is integrated at the
    frame rate and interpolated back, random initial phases, Gaussian noise; merged by l_linear + tanh.
    Draws torch.rand then torch.randn twice from the default generator, in CosyVoice's order."""

    def __init__(self, harmonics: int, sample_rate: int, upsample: int, sine_amp: float, noise_std: float,
                 voiced_threshold: float):
        super().__init__()
        self.sample_rate = sample_rate
        self.upsample = upsample
        self.sine_amp = sine_amp
        self.noise_std = noise_std
        self.voiced_threshold = voiced_threshold
        self.register_buffer("harmonic_mul", torch.arange(1, harmonics + 2, dtype=torch.float32).view(1, 1, -1),
                             persistent=True)
        self.l_linear = nn.Linear(harmonics + 1, 1)

    def forward(self, f0: Tensor, phase: Tensor, noise: Tensor) -> Tensor:
        """f0 [B, L, 1] at the sample rate -> source [B, L, 1]. CosyVoice's random draws are inputs: phase [B, H+1]
        (its torch.rand initial phases; column 0 is set to 0 here, as there) and noise [B, H+1, L] (its torch.randn_like of
        the sines, which are [B, L, H+1] transposed from [B, H+1, L] memory, so the draws fill [B, H+1, L];
        CosyVoice's third draw, a [B, L, 1] noise it discards, is not an input: the caller draws it to keep in step)."""
        fn = f0 * self.harmonic_mul                                                   # [B, L, H+1]
        rad = (fn / self.sample_rate) % 1
        start = phase.clone()
        start[:, 0] = 0
        rad[:, 0, :] = rad[:, 0, :] + start
        # the aten ops F.interpolate dispatches to, called directly: scripting F.interpolate under PyTorch >= 2.11
        # compiles its every branch, including ops LibTorch 2.10 lacks (aten::_upsample_lanczos2d_aa)
        rad = torch._C._nn.upsample_linear1d(rad.transpose(1, 2), None, False, [1.0 / self.upsample]).transpose(1, 2)
        phase = torch.cumsum(rad, dim=1) * 2 * math.pi
        phase = torch._C._nn.upsample_linear1d(phase.transpose(1, 2) * self.upsample, None, False,
                                               [float(self.upsample)]).transpose(1, 2)
        sines = torch.sin(phase) * self.sine_amp
        uv = (f0 > self.voiced_threshold).to(torch.float32)
        noise_amp = uv * self.noise_std + (1 - uv) * self.sine_amp / 3
        sines = sines * uv + noise_amp * noise.transpose(1, 2)
        return torch.tanh(self.l_linear(sines))


class HiFT(nn.Module):
    """hift.pt of the pack: HiFTGenerator (weight norm folded) under the release's names; vocode(mel [B, 80, F], phase,
    noise, cache_source) -> (waveform [B, F * 480], source). CosyVoice's source draws from torch's global generator;
    here those draws are inputs, so the caller's own generator decides them (same values for the same seed)."""

    def __init__(self, c: dict):
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
        self.f0_predictor = F0Predictor(c["f0_in_channels"], c["f0_cond_channels"])
        self.m_source = SourceModule(c["nb_harmonics"], c["sampling_rate"], self.upp, c["nsf_alpha"], c["nsf_sigma"],
                                     c["nsf_voiced_threshold"])
        self.conv_pre = nn.Conv1d(c["in_channels"], base, 7, padding=3)
        self.ups = nn.ModuleList([nn.ConvTranspose1d(base // 2 ** i, base // 2 ** (i + 1), k, u, padding=(k - u) // 2)
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
                self.source_downs.append(nn.Conv1d(self.n_fft + 2, ch, 1, 1))
            else:
                self.source_downs.append(nn.Conv1d(self.n_fft + 2, ch, u * 2, u, padding=u // 2))
            self.source_resblocks.append(SnakeResBlock(ch, k, d))
        self.resblocks = nn.ModuleList()
        ch = base
        for i in range(len(rates)):
            ch = base // 2 ** (i + 1)
            for k, d in zip(c["resblock_kernel_sizes"], c["resblock_dilation_sizes"]):
                self.resblocks.append(SnakeResBlock(ch, k, d))
        self.conv_post = nn.Conv1d(ch, self.n_fft + 2, 7, 1, padding=3)
        # scipy.signal.get_window("hann", n_fft, fftbins=True), computed in float64 then stored as float32
        n = torch.arange(self.n_fft, dtype=torch.float64)
        self.register_buffer("stft_window", (0.5 - 0.5 * torch.cos(2 * math.pi * n / self.n_fft)).float(),
                             persistent=True)

    def decode(self, x: Tensor, s: Tensor) -> Tensor:
        spec = torch.stft(s.squeeze(1), self.n_fft, self.hop, self.n_fft, window=self.stft_window, center=True,
                          return_complex=True)
        s_stft = torch.cat([spec.real, spec.imag], dim=1)
        x = self.conv_pre(x)
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
        return torch.clamp(wav, -self.audio_limit, self.audio_limit)

    @torch.jit.export
    def vocode(self, mel: Tensor, phase: Tensor, noise: Tensor, cache_source: Tensor) -> Tuple[Tensor, Tensor]:
        """HiFTGenerator.inference(speech_feat, cache_source) with its random draws as inputs (the caller owns the
        generator): mel [B, 80, F]; phase [B, H+1] uniform in [0, 1) (torch.rand); noise [B, H+1, F * 480] standard
        normal (torch.randn); cache_source [B, 1, S], S >= 0, replaces the first S source samples (the previous hop's
        source). Returns (wav [B, F * 480], source [B, 1, F * 480])."""
        f0 = self.f0_predictor(mel)                                                   # [B, F]
        s = torch._C._nn.upsample_nearest1d(f0.unsqueeze(1), None, [float(self.upp)]).transpose(1, 2)
        s = self.m_source(s, phase, noise).transpose(1, 2)                            # [B, 1, F * upp]
        n = cache_source.shape[2]
        if n > 0:
            s = torch.cat([cache_source, s[:, :, n:]], dim=2)
        return self.decode(mel, s), s

    def forward(self, mel: Tensor) -> Tensor:
        """vocode with zero phases and no noise: deterministic, and no draw from any generator."""
        b, f = mel.shape[0], mel.shape[2]
        h = self.m_source.harmonic_mul.shape[2]
        return self.vocode(mel, torch.zeros(b, h, dtype=mel.dtype, device=mel.device),
                           torch.zeros(b, h, f * self.upp, dtype=mel.dtype, device=mel.device),
                           torch.zeros(b, 1, 0, dtype=mel.dtype, device=mel.device))[0]
