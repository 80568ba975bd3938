package io.timbre.engine;

import org.bytedeco.pytorch.Tensor;

/** Mel -> waveform with the pack's HiFT vocoder. Call inside the caller's PointerScope and InferenceMode. */
public final class Vocoder {
    private final ModelPack pack;

    public Vocoder(ModelPack pack) {
        this.pack = pack;
    }

    /** @param mel [1, 80, F] @return F * 480 samples at the pack's output rate */
    public float[] vocode(Tensor mel) {
        return Tensors.toFloats(Tensors.tensor(Tensors.call(pack.vocode, mel)));
    }
}
