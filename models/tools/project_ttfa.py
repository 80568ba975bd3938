"""Paper projection of CosyVoice 2's time to first audio (TTFA) on one GPU, from measured per-hop costs.

Builds the pack toolchain's own modules at full CosyVoice2-0.5B size with random weights (timbrepack.nets.SpeechLM
with sizes.SIZES["cosyvoice2-shape"]["llm"] and the Qwen2.5 vocabulary; timbrepack.cosyvoice2.Flow and HiFT with the
sizes of the release's cosyvoice2.yaml) and runs the work that must finish before the first streamed audio
(models/README.md 7.6a, Java io.timbre.engine.HopDecoder):

  prefill   LLM prefill over [sos, prompt text + target text, task, prompt speech tokens]
  decode    one LLM decode step (cost taken as constant over the first hop)
  flow      first hop: encode_streaming over prompt + (25 + pad) + 3 lookahead tokens (context 3, streaming), then
            n_timesteps = 10 estimate_streaming calls at CFG batch 2 over all mel frames
  vocoder   HiFT vocode on the first hop's new mel frames (2 per token, no mel cache yet)

For each stage it counts
  FLOPs         torch.utils.flop_counter.FlopCounterMode (matmuls, convolutions, attention; elementwise ops are not
                counted, which under-counts the vocoder a little)
  kernels       aten ops seen by a TorchDispatchMode, view ops excluded (~ kernel launches in eager mode)
  syncs         aten._local_scalar_dense (a host read of a device value: int(tensor) in the modules)
  weight bytes  parameter elements each op reads (embedding lookups count their rows only) x 2 bytes (bf16);
                a weight read by N calls counts N times (the estimator's weights do not fit in L2 across steps)
  act. bytes    every non-view op's tensor inputs and outputs that are not parameters x 2 bytes: the traffic of an
                unfused eager run (an upper bound; fused kernels move less)

Projection (per stage; the same formula for the CPU calibration and for the GPU):

  time = max(FLOPs / (peak x utilisation), bytes / (bandwidth x efficiency)) + kernels x launch overhead

GPU: one NVIDIA H200 SXM, datasheet 989 TFLOP/s dense BF16 and 4.8 TB/s HBM3e. Two cases:
  low   (optimistic): utilisation 40 %, bandwidth efficiency 80 %, bytes = weights only (fused kernels),
        1 us per kernel (CUDA graphs)
  high  (pessimistic): utilisation 10 %, bandwidth efficiency 50 %, bytes = weights + unfused activations,
        8 us per kernel (eager launches from the host, as LibTorch/TorchScript runs today)
  TTFA = prefill + (first-hop tokens - 1) x decode + flow + vocoder: the prefill samples the first token, each
  decode step one more, and the first hop needs 25 + pad + 3 tokens. Host-side work (sampling, HTTP, WAV
  framing) and queueing are not included.

CPU calibration: the same stages are timed on this machine (fp32, 1 thread, median of --runs) and predicted with the
same formula from a measured single-thread matmul peak (utilisation 100 %), a measured copy bandwidth (fp32 bytes)
and a measured per-op overhead. Both wall time and process CPU time are printed; on a shared, loaded machine the CPU
time is the fairer measure.

Run: python models/tools/project_ttfa.py [--prompt-tokens 85] [--text-tokens 20] [--prompt-text-tokens 10]
No timing assertions anywhere: this prints numbers.
"""
import argparse
import math
import os
import statistics
import sys
import time

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from timbrepack import cosyvoice2 as cv  # noqa: E402
from timbrepack import nets, sizes  # noqa: E402

# CosyVoice2-0.5B's cosyvoice2.yaml (flow and hift nodes), as timbrepack.cosyvoice2.flow_config / hift_config read it
FLOW_CONFIG = dict(
    input_size=512, output_size=80, spk_embed_dim=192, vocab_size=6561, token_mel_ratio=2, pre_lookahead_len=3,
    enc_input_size=512, enc_dim=512, enc_heads=8, enc_ffn=2048, enc_blocks=6, enc_key_bias=True,
    cfm_in_channels=240, cfm_spk_dim=80, inference_cfg_rate=0.7,
    est_in=320, est_out=80, est_channels=256, est_head_dim=64, est_blocks=4, est_mid=12, est_heads=8,
    enc_chunk=25, est_chunk=50)
HIFT_CONFIG = dict(
    in_channels=80, base_channels=512, nb_harmonics=8, sampling_rate=24000, nsf_alpha=0.1, nsf_sigma=0.003,
    nsf_voiced_threshold=10.0, upsample_rates=[8, 5, 3], upsample_kernel_sizes=[16, 11, 7], n_fft=16, hop_len=4,
    resblock_kernel_sizes=[3, 7, 11], resblock_dilation_sizes=[[1, 3, 5]] * 3,
    source_resblock_kernel_sizes=[7, 7, 11], source_resblock_dilation_sizes=[[1, 3, 5]] * 3,
    lrelu_slope=0.1, audio_limit=0.99, f0_in_channels=80, f0_cond_channels=512, f0_num_class=1)
TOKEN_HOP = 25          # token_hop_len
LOOKAHEAD = 3           # pre_lookahead_len
N_TIMESTEPS = 10        # Euler steps of the flow
SAMPLES_PER_TOKEN = 960  # 24 kHz, 25 tokens/s
HOLD_BACK = 3840        # samples each hop keeps for the cross-fade

# one H200 SXM (datasheet)
GPU_PEAK = 989e12       # dense BF16 FLOP/s
GPU_BW = 4.8e12         # HBM3e bytes/s
CASES = {  # name: (utilisation, bandwidth efficiency, count activations, launch overhead s/kernel)
    "low": (0.40, 0.80, False, 1e-6),
    "high": (0.10, 0.50, True, 8e-6),
}
BF16 = 2
FP32 = 4


class OpCounter(TorchDispatchMode):
    """Counts aten ops (views apart), host syncs, parameter elements read and activation elements moved."""

    def __init__(self, params):
        super().__init__()
        self.params = {p.untyped_storage().data_ptr() for p in params}
        self.kernels = 0
        self.views = 0
        self.syncs = 0
        self.weight_elems = 0
        self.act_elems = 0

    def _is_param(self, t):
        return t.untyped_storage().data_ptr() in self.params

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if func.is_view:
            self.views += 1
            return out
        self.kernels += 1
        if func is torch.ops.aten._local_scalar_dense.default:
            self.syncs += 1
        ins = [a for a in tree_flatten((args, kwargs))[0] if isinstance(a, torch.Tensor)]
        if func is torch.ops.aten.embedding.default:
            weight, indices = args[0], args[1]
            self.weight_elems += indices.numel() * weight.shape[1]
            ins = ins[1:]
        for a in ins:
            if self._is_param(a):
                self.weight_elems += a.numel()
            else:
                self.act_elems += a.numel()
        outs = out if isinstance(out, (tuple, list)) else (out,)
        self.act_elems += sum(o.numel() for o in outs if isinstance(o, torch.Tensor))
        return out


def build(seed: int, smoke: bool):
    """smoke: small modules of the same classes (a quick check that the tool runs, not a projection)."""
    torch.manual_seed(seed)
    if smoke:
        llm = nets.SpeechLM(151936, **sizes.SIZES["tiny"]["llm"]).eval()
        flow = cv.Flow(dict(FLOW_CONFIG, input_size=64, enc_input_size=64, enc_dim=64, enc_heads=2, enc_ffn=128,
                            enc_blocks=1, est_channels=32, est_head_dim=16, est_heads=2, est_mid=1, est_blocks=1),
                       sizes.NOISE_LEN).eval()
        hift = cv.HiFT(dict(HIFT_CONFIG, base_channels=32, f0_cond_channels=16)).eval()
        return llm, flow, hift
    cfg = sizes.SIZES["cosyvoice2-shape"]
    llm = nets.SpeechLM(cfg["text_vocab"], **cfg["llm"]).eval()
    flow = cv.Flow(FLOW_CONFIG, sizes.NOISE_LEN).eval()
    hift = cv.HiFT(HIFT_CONFIG).eval()
    return llm, flow, hift


def stages(llm, flow, hift, prompt_tokens: int, text_tokens: int, prompt_text_tokens: int):
    """The first hop's work as callables (stage name -> (module, fn)), plus the plan's numbers."""
    g = torch.Generator().manual_seed(7)
    lt = prompt_text_tokens + text_tokens
    text = torch.randint(0, 151936, (1, lt), generator=g)
    speech = torch.randint(0, 6561, (1, prompt_tokens), generator=g)
    seq = lt + prompt_tokens + 2
    pad = math.ceil(prompt_tokens / TOKEN_HOP) * TOKEN_HOP - prompt_tokens
    hop = TOKEN_HOP + pad
    need = hop + LOOKAHEAD                               # tokens sampled before the first hop can run
    cache_len = seq + need + 8
    _, k_cache, v_cache, seq_len = llm.prefill(text, torch.tensor([lt]), speech, torch.tensor([prompt_tokens]), cache_len)
    position = seq_len + need // 2                       # a decode step in the middle of the first hop
    token = torch.randint(0, 6561, (1,), generator=g)

    all_tokens = torch.randint(0, 6561, (1, prompt_tokens + need), generator=g)
    fp = 2 * prompt_tokens
    prompt_feat = torch.randn(1, fp, 80, generator=g)
    emb = torch.randn(1, 192, generator=g)
    frames = 2 * (prompt_tokens + hop)
    noise0 = torch.randn(1, 80, frames, generator=g)
    new_frames = 2 * hop
    h = HIFT_CONFIG["nb_harmonics"] + 1
    phase = torch.rand(1, h, generator=g)
    draws = torch.randn(1, h, new_frames * 480, generator=g)
    mel_new = torch.randn(1, 80, new_frames, generator=g)

    def prefill():
        return llm.prefill(text, torch.tensor([lt]), speech, torch.tensor([prompt_tokens]), cache_len)

    def decode():
        return llm.decode(token, k_cache, v_cache, position)

    def flow_hop():
        mu, mask, spks, cond = flow.encode_streaming(all_tokens, torch.tensor([prompt_tokens + need]), prompt_feat,
                                                     torch.tensor([fp]), emb, LOOKAHEAD, True)
        x = noise0
        mask_in = torch.cat([mask, mask])
        mu_in = torch.cat([mu, torch.zeros_like(mu)])
        spks_in = torch.cat([spks, torch.zeros_like(spks)])
        cond_in = torch.cat([cond, torch.zeros_like(cond)])
        ts = 1 - torch.cos(torch.linspace(0, 1, N_TIMESTEPS + 1) * 0.5 * math.pi)
        t = ts[0]
        for step in range(1, N_TIMESTEPS + 1):
            dt = ts[step] - ts[step - 1]
            v = flow.estimate_streaming(torch.cat([x, x]), mask_in, mu_in, t.expand(2), spks_in, cond_in, True)
            x = x + dt * (1.7 * v[0:1] - 0.7 * v[1:2])
            t = t + dt
        return x[:, :, fp:]

    def vocoder():
        return hift.vocode(mel_new, phase, draws, torch.zeros(1, 1, 0))

    plan = dict(pad=pad, hop=hop, need=need, seq=seq, frames=frames, new_frames=new_frames,
                first_samples=SAMPLES_PER_TOKEN * hop - HOLD_BACK)
    return {"prefill": (llm, prefill), "decode": (llm, decode), "flow": (flow, flow_hop),
            "vocoder": (hift, vocoder)}, plan


def count(module, fn):
    ops = OpCounter(list(module.parameters()) + list(module.buffers()))
    flops = FlopCounterMode(display=False)
    with torch.no_grad(), flops, ops:
        fn()
    return dict(flops=flops.get_total_flops(), kernels=ops.kernels, views=ops.views, syncs=ops.syncs,
                weight_elems=ops.weight_elems, act_elems=ops.act_elems)


def timed(fn, runs: int):
    if runs <= 0:
        return float("nan"), float("nan")
    walls, cpus = [], []
    with torch.no_grad():                                # the counting pass before it is the warm-up
        for _ in range(runs):
            w0, c0 = time.perf_counter(), time.process_time()
            fn()
            walls.append(time.perf_counter() - w0)
            cpus.append(time.process_time() - c0)
    return statistics.median(walls), statistics.median(cpus)


def cpu_machine():
    """Single-thread fp32 matmul peak (FLOP/s), copy bandwidth (bytes/s, read + write) and per-op overhead (s)."""
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(5):
        c0 = time.process_time()
        for _ in range(2):
            torch.mm(a, b)
        best = min(best, (time.process_time() - c0) / 2)
    peak = 2 * 1024 ** 3 / best
    src = torch.ones(32 * 1024 * 1024)                  # 128 MB
    dst = torch.empty_like(src)
    dst.copy_(src)
    best = float("inf")
    for _ in range(3):
        c0 = time.process_time()
        dst.copy_(src)
        best = min(best, time.process_time() - c0)
    bw = 2 * src.numel() * FP32 / best
    x = torch.zeros(1)
    for _ in range(1000):
        x.add_(1)
    c0 = time.process_time()
    for _ in range(20000):
        torch.add(x, 1)
    overhead = (time.process_time() - c0) / 20000
    return peak, bw, overhead


def project(c, peak, util, bw, eff, with_act, launch, elem_bytes):
    moved = (c["weight_elems"] + (c["act_elems"] if with_act else 0)) * elem_bytes
    return max(c["flops"] / (peak * util), moved / (bw * eff)) + c["kernels"] * launch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prompt-tokens", type=int, default=85, help="prompt speech tokens (25/s; 85 = a 3.4 s prompt)")
    ap.add_argument("--text-tokens", type=int, default=20, help="target text tokens")
    ap.add_argument("--prompt-text-tokens", type=int, default=10, help="prompt transcript tokens")
    ap.add_argument("--runs", type=int, default=3, help="timed CPU runs per stage (median); 0: count only")
    ap.add_argument("--smoke", action="store_true", help="small modules: check that the tool runs (no projection)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)

    t0 = time.perf_counter()
    llm, flow, hift = build(args.seed, args.smoke)
    params = {n: sum(p.numel() for p in m.parameters()) for n, m in (("llm", llm), ("flow", flow), ("hift", hift))}
    print(f"modules (random weights, CosyVoice2-0.5B shape): LLM {params['llm'] / 1e6:.1f} M, "
          f"flow {params['flow'] / 1e6:.1f} M, HiFT {params['hift'] / 1e6:.1f} M parameters "
          f"(built in {time.perf_counter() - t0:.0f} s)")
    with torch.no_grad():
        work, plan = stages(llm, flow, hift, args.prompt_tokens, args.text_tokens, args.prompt_text_tokens)
    print(f"first hop: prompt {args.prompt_tokens} speech tokens + {args.prompt_text_tokens} prompt-text + "
          f"{args.text_tokens} text tokens -> prefill sequence {plan['seq']}; pad {plan['pad']}, hop {plan['hop']} "
          f"tokens + {LOOKAHEAD} lookahead = {plan['need']} tokens sampled (prefill + {plan['need'] - 1} decode steps); "
          f"flow over {plan['frames']} mel frames (CFG batch 2, {N_TIMESTEPS} steps); vocoder on {plan['new_frames']} "
          f"frames; first chunk {plan['first_samples']} samples = {plan['first_samples'] / 24000:.2f} s of audio")

    peak, bw, overhead = cpu_machine()
    print(f"CPU (1 thread, fp32): matmul peak {peak / 1e9:.1f} GFLOP/s, copy bandwidth {bw / 1e9:.1f} GB/s, "
          f"{overhead * 1e6:.1f} us per op")

    counts, times = {}, {}
    steps = plan["need"] - 1
    mult = {"prefill": 1, "decode": steps, "flow": 1, "vocoder": 1}

    print()
    print("per stage (one call; decode = one step)")
    print(f"{'stage':8s} {'GFLOP':>9s} {'kernels':>8s} {'syncs':>6s} {'weights MB':>11s} {'act MB':>9s} "
          f"{'CPU pred ms':>11s} {'CPU ms':>9s} {'wall ms':>9s} {'H200 low ms':>12s} {'H200 high ms':>13s}")
    gpu = {k: {} for k in CASES}
    cpu_pred, cpu_meas, cpu_wall = {}, {}, {}
    for name, (module, fn) in work.items():
        counts[name] = c = count(module, fn)
        times[name] = timed(fn, args.runs)
        cpu_pred[name] = project(c, peak, 1.0, bw, 1.0, True, overhead, FP32)
        cpu_wall[name], cpu_meas[name] = times[name]
        for case, (util, eff, with_act, launch) in CASES.items():
            gpu[case][name] = project(c, GPU_PEAK, util, GPU_BW, eff, with_act, launch, BF16)
        print(f"{name:8s} {c['flops'] / 1e9:9.2f} {c['kernels']:8d} {c['syncs']:6d} "
              f"{c['weight_elems'] * BF16 / 1e6:11.1f} {c['act_elems'] * BF16 / 1e6:9.1f} "
              f"{cpu_pred[name] * 1e3:11.1f} {cpu_meas[name] * 1e3:9.1f} {cpu_wall[name] * 1e3:9.1f} "
              f"{gpu['low'][name] * 1e3:12.2f} {gpu['high'][name] * 1e3:13.2f}", flush=True)

    def total(d):
        return sum(d[n] * mult[n] for n in d)

    print()
    print(f"time to first audio = prefill + {steps} x decode + flow + vocoder")
    print(f"{'':24s} {'prefill':>9s} {'decode x' + str(steps):>11s} {'flow':>9s} {'vocoder':>9s} {'TTFA':>9s}")
    rows = [("CPU predicted (1 thread)", cpu_pred), ("CPU measured (CPU time)", cpu_meas),
            ("CPU measured (wall)", cpu_wall), ("H200 low (graphs)", gpu["low"]), ("H200 high (eager)", gpu["high"])]
    for label, d in rows:
        print(f"{label:24s} {d['prefill'] * 1e3:9.1f} {d['decode'] * steps * 1e3:11.1f} {d['flow'] * 1e3:9.1f} "
              f"{d['vocoder'] * 1e3:9.1f} {total(d) * 1e3:9.1f}  ms")
    print()
    print(f"H200 assumptions: {GPU_PEAK / 1e12:.0f} TFLOP/s dense BF16, {GPU_BW / 1e12:.1f} TB/s HBM3e, bf16 weights; "
          "low = 40 % utilisation, 80 % bandwidth, weights only, 1 us/kernel (CUDA graphs); high = 10 % utilisation, "
          "50 % bandwidth, weights + unfused activations, 8 us/kernel (eager). Host sync per decode step "
          "(int(position.max())) and sampling not included.")
    print("CosyVoice's README claims first-packet latency 'as low as 150ms' (bi-streaming, on a GPU).")


if __name__ == "__main__":
    main()
