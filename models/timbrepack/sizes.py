"""Pack sizes. cosyvoice2-shape follows CosyVoice2-0.5B (cosyvoice2.yaml): LLM 24 x 896 (Qwen2.5-0.5B: 14 heads,
2 KV heads, FFN 4864, text vocabulary 151936), flow encoder 6 x 512 (8 heads, FFN 2048, 4 up-blocks), estimator
256 channels with 12 mid blocks, HiFT base 512 channels."""

SIZES = {
    "tiny": dict(
        spk=dict(channels=32, layers=2), tok=dict(channels=32, layers=1, heads=2),
        llm=dict(dim=64, layers=2, heads=4, kv_heads=2, ffn=128),
        flow=dict(dim=32, heads=2, ffn=64, layers=2, up_layers=1, est_channels=32, est_heads=2, est_mid=1, est_tf=1),
        hift=dict(base=32, f0_channels=16),
        text_vocab=None,  # byte-level tokenizer: 256 + special tokens
    ),
    "bench": dict(
        spk=dict(channels=256, layers=4), tok=dict(channels=256, layers=2, heads=4),
        llm=dict(dim=512, layers=8, heads=8, kv_heads=2, ffn=1536),
        flow=dict(dim=192, heads=4, ffn=768, layers=4, up_layers=2, est_channels=128, est_heads=4, est_mid=2, est_tf=1),
        hift=dict(base=256, f0_channels=128),
        text_vocab=None,
    ),
    "cosyvoice2-shape": dict(
        spk=dict(channels=512, layers=6), tok=dict(channels=1280, layers=6, heads=20),
        llm=dict(dim=896, layers=24, heads=14, kv_heads=2, ffn=4864),
        flow=dict(dim=512, heads=8, ffn=2048, layers=6, up_layers=4, est_channels=256, est_heads=8, est_mid=12, est_tf=1),
        hift=dict(base=512, f0_channels=512),
        text_vocab=151936,  # Qwen2.5 vocabulary (the tokenizer stays byte-level; ids above 275 are simply unused)
    ),
}

HIFT_COMMON = dict(upsample_rates=[8, 5, 3], upsample_kernels=[16, 11, 7], resblock_kernels=[3, 7, 11],
                   resblock_dilations=[1, 3, 5], n_fft=16, hop=4, harmonics=8, sample_rate=24000)
NOISE_LEN = 15000
