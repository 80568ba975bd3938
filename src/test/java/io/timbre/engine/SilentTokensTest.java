package io.timbre.engine;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertSame;

/** CosyVoice3Model.llm_job's silent-token rule as SpeechLm applies it to the tokens handed to the flow. */
class SilentTokensTest {
    /** CosyVoice3Model.silent_tokens (cosyvoice/cli/model.py), as export_cosyvoice3.py writes them into pack.json. */
    static final int[] SILENT = {1, 2, 28, 29, 55, 248, 494, 2241, 2242, 2322, 2323};

    @Test
    void runsLongerThanFiveAreCutAndOtherTokensResetTheRun() {
        int[] in = {7, 1, 2, 28, 29, 55, 248, 494, 2241, 9, 2322, 2323, 1, 1, 1, 1, 1, 300};
        int[] want = {7, 1, 2, 28, 29, 55, 9, 2322, 2323, 1, 1, 1, 300};
        assertArrayEquals(want, SpeechLm.dropLongSilences(in, SILENT, 5));
    }

    @Test
    void aRunOfExactlyFiveIsKept() {
        int[] in = {1, 1, 1, 1, 1, 4000};
        assertArrayEquals(in, SpeechLm.dropLongSilences(in, SILENT, 5));
    }

    @Test
    void cosyVoice2PacksDeclareNoSilentTokensAndKeepEverything() {
        int[] in = {1, 1, 1, 1, 1, 1, 1, 1};
        assertSame(in, SpeechLm.dropLongSilences(in, new int[0], 5));
    }
}
