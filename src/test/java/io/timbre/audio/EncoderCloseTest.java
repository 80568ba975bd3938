package io.timbre.audio;

import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The FFmpeg encoder follows the native owners' idiom: close() frees everything once, a second close does nothing. */
class EncoderCloseTest {
    @Test
    void encoderClosesTwice() throws Exception {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        AudioWriter w = SpeechFormat.FLAC.writer(24000, out);
        w.write(new float[2400]);
        w.finish();
        w.close();
        assertDoesNotThrow(w::close, "FfmpegEncoder");
        assertTrue(out.size() > 0, "the encoder wrote the clip before it was closed");
    }
}
