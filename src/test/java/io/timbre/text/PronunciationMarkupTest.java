package io.timbre.text;

import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * CosyVoice 3's inline pronunciation (pinyin initials/finals with tones, CMU phonemes with stress) and the tags of both
 * families pass through normalization and segmentation as written: never read, never cut.
 */
class PronunciationMarkupTest {
    final TextFrontend f = new TextFrontend(s -> s.getBytes(StandardCharsets.UTF_8).length, 80, 60, 20);
    final TextNormalizer n = new TextNormalizer();

    @Test
    void upstreamsPinyinHotfixExampleIsKeptAndTheRestNormalized() {
        // example.py, cosyvoice3_example "hotfix usage"
        assertEquals(List.of("高管也通过电话、短信、微信等方式对报道[j][ǐ]予好评。"),
                f.segments("高管也通过电话、短信、微信等方式对报道[j][ǐ]予好评。"));
        assertEquals(List.of("第三季度报道[j][ǐ]予好评，增长百分之五。"), f.segments("第3季度报道[j][ǐ]予好评，增长5%。"));
    }

    @Test
    void cmuPhonemesAreNeitherSpelledNorReadAsNumbers() {
        String text = "Say [M][AY1][K][AH0][L] and [HH][AH0][L][OW1] at 9 am.";
        List<String> out = f.segments(text);
        assertEquals(1, out.size());
        assertTrue(out.get(0).startsWith("Say [M][AY1][K][AH0][L] and [HH][AH0][L][OW1] at nine"), out.get(0));
        // without the markup rules: "[AH0]" was spelled A H, the 0 read as zero
        assertEquals("[AA1] [NG] [ZH]", n.normalize("[AA1] [NG] [ZH]", false));
        assertEquals("读[zh][òng]音", n.normalize("读[zh][òng]音", true));
    }

    @Test
    void tagsOfBothFamiliesStay() {
        assertEquals(List.of("在他讲述那个荒诞故事的过程中，他突然[laughter]停下来，因为他自己也被逗笑了[laughter]。"),
                f.segments("在他讲述那个荒诞故事的过程中，他突然[laughter]停下来，因为他自己也被逗笑了[laughter]。"));
        assertEquals(List.of("在面对挑战时，他展现了非凡的<strong>勇气</strong>与<strong>智慧</strong>。"),
                f.segments("在面对挑战时，他展现了非凡的<strong>勇气</strong>与<strong>智慧</strong>。"));
        assertEquals(List.of("[breath]Well, [quick_breath] it is two."), f.segments("[breath]Well, [quick_breath] it is 2."));
    }

    @Test
    void aCitationInBracketsIsStillRead() {
        assertEquals(List.of("As shown [one], it works."), f.segments("As shown [1], it works."));
    }

    @Test
    void longTextIsNeverCutInsideMarkup() {
        String word = "[M][AY1][K][AH0][L] ";
        String text = word.repeat(60);   // far over the budget, no sentence marks
        List<String> out = f.segments(text);
        assertTrue(out.size() > 1, "split: " + out.size());
        for (String seg : out) {
            assertTrue(seg.matches("(\\s*\\[[A-Z]{1,2}[0-2]?])+\\s*\\.?"), "a cut inside a phoneme: " + seg);
        }
        assertEquals(text.replace(" ", ""), String.join("", out).replace(" ", "").replaceAll("\\.$", ""));

        String zh = "报道[j][ǐ]予好评".repeat(40);
        for (String seg : f.segments(zh)) {
            assertTrue(seg.chars().filter(c -> c == '[').count() == seg.chars().filter(c -> c == ']').count(), seg);
        }
    }

    @Test
    void textWithSpecialTokensKeepsMarkupWhole() {
        List<String> out = f.segments("<|en|>" + "[HH][AH0][L][OW1] ".repeat(50));
        for (String seg : out) {
            assertTrue(seg.replaceAll("\\[[A-Z]{1,2}[0-2]?]|<\\|en\\|>|\\s", "").isEmpty(), "a cut inside markup: " + seg);
        }
    }

    @Test
    void privateUseCharactersOfTheTextItselfSurvive() {
        assertEquals(List.of("a\uE000b [B] c."), f.segments("a\uE000b [B] c."));
    }

    @Test
    void thePromptTranscriptKeepsMarkupToo() {
        assertEquals("报道[j][ǐ]予好评三个。", f.normalize("报道[j][ǐ]予好评3个."));
    }
}
