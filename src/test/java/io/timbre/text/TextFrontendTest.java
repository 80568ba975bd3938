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

    @Test
    void neverCutsInsideADecimalATimeOrAnAbbreviation() {
        TextFrontend tiny = new TextFrontend(s -> 100, 80, 60, 0);   // every sentence would be its own segment
        assertEquals(List.of("一千二百三十四点五六元。"), tiny.segments("1234.56元"));
        assertEquals(List.of("Meet Doctor Smith at ten thirty."), tiny.segments("Meet Dr. Smith at 10:30."));
        assertEquals(List.of("one thousand two hundred thirty-four dollars and fifty-six cents."), tiny.segments("$1,234.56"));
    }

    @Test
    void eachSentenceIsReadInItsOwnLanguage() {
        TextFrontend.Reading r = f.read("我有2个苹果。I have 2 apples.", TextFrontend.Language.AUTO, true);
        assertEquals("mixed", r.language());
        assertEquals("我有两个苹果。I have two apples.", String.join("", r.segments()));
        assertEquals("two apples.", String.join("", f.read("2 apples", TextFrontend.Language.EN, true).segments()));
        assertEquals("两个苹果。", String.join("", f.read("2个苹果", TextFrontend.Language.ZH, true).segments()));
    }

    @Test
    void normalizeFalseSpeaksTheTextAsWritten() {
        assertEquals(List.of("Room 42 at 9:30, ok?"), f.read("Room 42 at 9:30, ok?", TextFrontend.Language.AUTO, false).segments());
    }

    @Test
    void nothingSpeakableGivesNoSegments() {
        for (String s : List.of("   ", "\u200B\u200B\uFEFF", "\u0000\u0000", "...!!!", "\n\t ")) {
            assertEquals(List.of(), f.segments(s), "for " + s.codePoints().mapToObj(Integer::toHexString).toList());
        }
    }

    @Test
    void anUnpunctuatedSentenceIsCutWithinTheBudget() {
        String words = "word ".repeat(600);                      // 3000 characters, no punctuation
        List<String> parts = f.segments(words);
        assertTrue(parts.size() > 1);
        for (String p : parts) {
            assertTrue(f.length(p, false) <= f.budget(), p.length() + " bytes");
        }
        assertEquals(words.replace(" ", ""), String.join("", parts).replace(" ", "").replace(".", ""));
        List<String> zh = f.segments("天".repeat(3000));
        assertTrue(zh.size() >= 3000 / f.budget());
        zh.forEach(p -> assertTrue(f.length(p, true) <= f.budget()));
    }

    @Test
    void specialTokensAreNotNormalizedButStillCutOutsideTokens() {
        String text = "Say 42<|endofprompt|>" + "go on ".repeat(400) + "<|im_end|>";
        List<String> parts = f.segments(text);
        assertTrue(parts.size() > 1);
        assertTrue(parts.get(0).startsWith("Say 42<|endofprompt|>"), "not normalized, token whole");
        for (String p : parts) {
            assertTrue(f.length(p, false) <= f.budget());
            assertEquals(p.split("<\\|", -1).length, p.split("\\|>", -1).length, "a token was cut: " + p);
        }
        assertEquals(text, String.join("", parts));
    }
}
