"""Timbre model-pack toolchain: CosyVoice 2-shaped modules, pack writer, reference pipeline."""
FORMAT_ID = "timbre-pack/2"
