package io.timbre.api;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** Problem details never carry LibTorch's build paths or C++ frames; plain details pass unchanged. */
class NativeDetailTests {

    @Test
    void nativeInternalsAreCutAndAReferenceGiven() {
        String libtorch = "not a readable torch.save file: PytorchStreamReader failed reading zip archive: failed "
                + "finding central directory (/pytorch/caffe2/serialize/inline_container.cc:325)\n"
                + "Exception raised from init at /pytorch/caffe2/serialize/inline_container.cc:325 (most recent call "
                + "first):\nframe #0: c10::Error::Error(c10::SourceLocation, std::string) + 0x57";
        String detail = ProblemMappers.forUser(libtorch);
        assertFalse(detail.contains("/pytorch"), detail);
        assertFalse(detail.contains(".cc"), detail);
        assertFalse(detail.contains("frame #"), detail);
        assertTrue(detail.startsWith("not a readable torch.save file: PytorchStreamReader failed reading zip archive"),
                detail);
        assertTrue(detail.matches(".*\\(reference [0-9a-f]{8} in the server log at debug level\\)"), detail);
    }

    @Test
    void plainDetailsAreKept() {
        String plain = "The recording is 2.00 s long; it must be at least 3 s.";
        assertEquals(plain, ProblemMappers.forUser(plain));
        assertEquals("Attach a CosyVoice spk2info.pt as the 'file' part.",
                ProblemMappers.forUser("Attach a CosyVoice spk2info.pt as the 'file' part."));
    }
}
