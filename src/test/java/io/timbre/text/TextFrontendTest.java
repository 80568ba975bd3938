package io.timbre.text;

import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** CosyVoice 2's text rules: normalisation and split_paragraph (80 / 60 / 20), punctuation-only segments dropped. */
class TextFrontendTest {
    // byte count stands in for BPE tokens, as with the tiny pack's byte-level tokenizer
    final TextFrontend f = new TextFrontend(s -> s.getBytes(java.nio.charset.StandardCharsets.UTF_8).length, 80, 60, 20);

    @Test
    void shortEnglishIsOneSegmentWithAFinalStop() {
        assertEquals(List.of("Hello world."), f.segments("  Hello world "));
    }

    @Test
    void numbersAreSpelledOut() {
        assertEquals(List.of("Room forty-two at nine."), f.segments("Room 42 at 9."));
        assertTrue(f.segments("我有3个苹果。").get(0).contains("三"));
    }

    @Test
    void longEnglishSplitsAtSentenceEndsWithinLimits() {
        String s = "This is the first sentence of a longer text. ".repeat(6);
        List<String> parts = f.segments(s);
        assertTrue(parts.size() > 1);
        for (String p : parts) {
            assertTrue(p.length() <= 80 + 46, "segment too long: " + p);
        }
        assertEquals(s.replace(" ", ""), String.join("", parts).replace(" ", ""), "nothing lost");
    }

    @Test
    void shortTailMergesIntoThePreviousSegment() {
        String s = "A".repeat(70) + ". " + "B".repeat(70) + ". Ok.";
        List<String> parts = f.segments(s);
        assertTrue(parts.get(parts.size() - 1).endsWith("Ok."));
        assertTrue(parts.get(parts.size() - 1).length() > 20, "the 4-token tail is merged");
    }

    @Test
    void chineseSplitsByCharactersAndDropsBlanks() {
        String s = "今天天气很好。".repeat(20);
        List<String> parts = f.segments(s);
        assertTrue(parts.size() > 1);
        for (String p : parts) {
            assertTrue(p.length() <= 80 + 7);
        }
        assertEquals(List.of("你好世界。"), f.segments("你好 世界"));
    }

    @Test
    void punctuationOnlySegmentsAreDropped() {
        assertEquals(List.of(), f.segments("... !!! ?"));
        assertEquals(List.of("Hi.", " Bye."), new TextFrontend(s -> 100, 80, 60, 0).segments("Hi. ... Bye."));
    }

    @Test
    void closingQuoteStaysWithItsSentence() {
        List<String> parts = new TextFrontend(s -> 100, 80, 60, 0).segments("He said \"Stop.\" Then left.");
        assertEquals("He said \"Stop.\"", parts.get(0));
    }
}
