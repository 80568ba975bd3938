package io.timbre.engine;

import io.timbre.text.TextTokenizer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The LLM's prompt per family, against CosyVoice's own rules (frontend_zero_shot, frontend_instruct2, example.py,
 * cosyvoice/utils/common.py instruct_list), with the tiny pack's tokenizer (which has {@code <|endofprompt|>}).
 */
class PromptPlanTest {
    /** Upstream's CosyVoice 3 instruct_list (cosyvoice/utils/common.py at ace7c47), verbatim. */
    static final List<String> UPSTREAM_COSYVOICE3_INSTRUCT_LIST = List.of(
            "You are a helpful assistant. 请用广东话表达。<|endofprompt|>",
            "You are a helpful assistant. 请用东北话表达。<|endofprompt|>",
            "You are a helpful assistant. 请用甘肃话表达。<|endofprompt|>",
            "You are a helpful assistant. 请用贵州话表达。<|endofprompt|>",
            "You are a helpful assistant. 请用河南话表达。<|endofprompt|>",
            "You are a helpful assistant. 请用湖北话表达。<|endofprompt|>",
            "You are a helpful assistant. 请用湖南话表达。<|endofprompt|>",
            "You are a helpful assistant. 请用江西话表达。<|endofprompt|>",
            "You are a helpful assistant. 请用闽南话表达。<|endofprompt|>",
            "You are a helpful assistant. 请用宁夏话表达。<|endofprompt|>",
            "You are a helpful assistant. 请用山西话表达。<|endofprompt|>",
            "You are a helpful assistant. 请用陕西话表达。<|endofprompt|>",
            "You are a helpful assistant. 请用山东话表达。<|endofprompt|>",
            "You are a helpful assistant. 请用上海话表达。<|endofprompt|>",
            "You are a helpful assistant. 请用四川话表达。<|endofprompt|>",
            "You are a helpful assistant. 请用天津话表达。<|endofprompt|>",
            "You are a helpful assistant. 请用云南话表达。<|endofprompt|>",
            "You are a helpful assistant. Please say a sentence as loudly as possible.<|endofprompt|>",
            "You are a helpful assistant. Please say a sentence in a very soft voice.<|endofprompt|>",
            "You are a helpful assistant. 请用尽可能慢地语速说一句话。<|endofprompt|>",
            "You are a helpful assistant. 请用尽可能快地语速说一句话。<|endofprompt|>",
            "You are a helpful assistant. 请非常开心地说一句话。<|endofprompt|>",
            "You are a helpful assistant. 请非常伤心地说一句话。<|endofprompt|>",
            "You are a helpful assistant. 请非常生气地说一句话。<|endofprompt|>",
            "You are a helpful assistant. 我想体验一下小猪佩奇风格，可以吗？<|endofprompt|>",
            "You are a helpful assistant. 你可以尝试用机器人的方式解答吗？<|endofprompt|>");

    static TextTokenizer tokenizer;
    static PromptPlan cv2;
    static PromptPlan cv3;

    @BeforeAll
    static void plans() throws IOException {
        tokenizer = new TextTokenizer(Path.of("models/tiny/tokenizer.json"));
        cv2 = PromptPlan.read(Path.of("models/tiny"), tokenizer::encode);
        cv3 = PromptPlan.read(cosyvoice3Pack(Files.createTempDirectory("timbre-cv3-plan")), tokenizer::encode);
    }

    @AfterAll
    static void close() {
        tokenizer.close();
    }

    /** A pack.json as models/tiny's, with CosyVoice 3's declaration (src/test/resources/packs/cosyvoice3-declaration.json). */
    static Path cosyvoice3Pack(Path dir) throws IOException {
        var mapper = new com.fasterxml.jackson.databind.ObjectMapper();
        var root = (com.fasterxml.jackson.databind.node.ObjectNode) mapper.readTree(Path.of("models/tiny/pack.json").toFile());
        var decl = mapper.readTree(Path.of("src/test/resources/packs/cosyvoice3-declaration.json").toFile());
        root.setAll((com.fasterxml.jackson.databind.node.ObjectNode) decl);
        Files.writeString(dir.resolve("pack.json"), mapper.writeValueAsString(root));
        return dir;
    }

    @Test
    void theTinyPackIsCosyVoice2WithUpstreamsInstructExample() {
        assertEquals(PromptPlan.Family.COSYVOICE2, cv2.family());
        assertNull(cv2.systemPrompt());
        PromptPlan.Instruction sichuan = cv2.find("sichuanese").orElseThrow();
        // example.py, cosyvoice2_example: inference_instruct2(text, '用四川话说这句话<|endofprompt|>', prompt_wav)
        assertEquals("用四川话说这句话<|endofprompt|>", cv2.instructText(sichuan));
        assertTrue(cv2.normalizesTranscript(), "inference_zero_shot runs text_normalize on CosyVoice 2's prompt text");
    }

    @Test
    void cosyVoice3InstructionsAreUpstreamsInstructListExactly() {
        List<String> made = new ArrayList<>();
        for (PromptPlan.Instruction i : cv3.instructions()) {
            made.add(cv3.instructText(i));
        }
        assertEquals(UPSTREAM_COSYVOICE3_INSTRUCT_LIST, made);
        assertEquals("You are a helpful assistant.", cv3.systemPrompt());
    }

    @Test
    void zeroShotPromptText() {
        String transcript = "希望你以后能够做的比我还好呦。";
        assertEquals(transcript, cv2.speakerPromptText(transcript), "CosyVoice 2: the transcript alone");
        // example.py, cosyvoice3_example: inference_zero_shot(text, 'You are a helpful assistant.<|endofprompt|>希望你...')
        assertEquals("You are a helpful assistant.<|endofprompt|>希望你以后能够做的比我还好呦。", cv3.speakerPromptText(transcript));
        String written = "You are a helpful assistant.<|endofprompt|>" + transcript;
        assertEquals(written, cv3.speakerPromptText(written), "a transcript already holding the marker is taken as written");
        assertFalse(cv3.normalizesTranscript(), "text_normalize skips text with <|...|>, as CosyVoice 3's prompt is");
    }

    @Test
    void withoutAnInstructionTheLlmGetsTheSpeakersPromptTextAndSpeechTokens() {
        long[] text = tokenizer.encode("A steady vowel.");
        long[] speech = {5, 17, 400, 6000};
        PromptPlan.LlmPrompt p = cv2.llmPrompt(text, speech, null);
        assertArrayEquals(text, p.text());
        assertArrayEquals(speech, p.speech(), "frontend_zero_shot: llm_prompt_speech_token is the prompt's tokens");

        long[] cv3Text = tokenizer.encode(cv3.speakerPromptText("A steady vowel."));
        PromptPlan.LlmPrompt q = cv3.llmPrompt(cv3Text, speech, null);
        assertArrayEquals(cv3Text, q.text());
        assertArrayEquals(speech, q.speech());
    }

    @Test
    void aCosyVoice3EntryWithoutTheSystemPromptGetsIt() {
        long[] bare = tokenizer.encode("A steady vowel.");
        PromptPlan.LlmPrompt p = cv3.llmPrompt(bare, new long[]{1, 2}, null);
        assertArrayEquals(tokenizer.encode("You are a helpful assistant.<|endofprompt|>A steady vowel."), p.text(),
                "CosyVoice 3's LLM asserts <|endofprompt|> is in its text");
    }

    @Test
    void anInstructionReplacesTheTranscriptAndTheLlmGetsNoPromptSpeech() {
        long[] transcript = tokenizer.encode("The transcript of my recording.");
        long[] speech = {5, 17, 400, 6000};
        for (PromptPlan plan : List.of(cv2, cv3)) {
            for (PromptPlan.Instruction i : plan.instructions()) {
                long[] stored = plan == cv3 ? tokenizer.encode(plan.speakerPromptText("The transcript of my recording.")) : transcript;
                PromptPlan.LlmPrompt p = plan.llmPrompt(stored, speech, i);
                assertArrayEquals(tokenizer.encode(plan.instructText(i)), p.text(), i.id());
                assertEquals(0, p.speech().length, "frontend_instruct2 deletes llm_prompt_speech_token");
                assertFalse(containsRun(p.text(), transcript), "the stored transcript never reaches the LLM (upstream #1400)");
            }
        }
    }

    @Test
    void instructionsAreFoundByIdTextOrWholePrompt() {
        PromptPlan.Instruction cantonese = cv3.find("cantonese").orElseThrow();
        assertSame(cantonese, cv3.find("Cantonese ").orElseThrow());
        assertSame(cantonese, cv3.find("请用广东话表达。").orElseThrow());
        assertSame(cantonese, cv3.find("You are a helpful assistant. 请用广东话表达。<|endofprompt|>").orElseThrow());
        assertSame(cantonese, cv3.find("You are a helpful assistant. 请用广东话表达。").orElseThrow());
        assertTrue(cv3.find("speak like a pirate").isEmpty());
        assertTrue(cv3.find("").isEmpty());
        assertTrue(cv2.find("robot").isEmpty(), "robot is CosyVoice 3's, not in the tiny CosyVoice 2 pack's list");
        assertThrows(IllegalArgumentException.class, () -> cv2.llmPrompt(new long[0], new long[0], cantonese),
                "an instruction of another pack is never prompted");
    }

    @Test
    void theFamilyOfAnEntryIsWhetherItsPromptHoldsEndOfPrompt() {
        int[] withMarker = Arrays.stream(tokenizer.encode(cv3.speakerPromptText("hi"))).mapToInt(Math::toIntExact).toArray();
        int[] without = Arrays.stream(tokenizer.encode("hi")).mapToInt(Math::toIntExact).toArray();
        assertEquals(PromptPlan.Family.COSYVOICE3, cv2.familyOf(withMarker));
        assertEquals(PromptPlan.Family.COSYVOICE2, cv3.familyOf(without));
    }

    @Test
    void declarationsThatCannotWorkAreRefused() throws IOException {
        List<PromptPlan.Instruction> one = List.of(new PromptPlan.Instruction("x", "say it"));
        assertThrows(PackException.class, () -> new PromptPlan(PromptPlan.Family.COSYVOICE3, null, List.of(), tokenizer::encode),
                "cosyvoice3 without a system prompt");
        assertThrows(PackException.class, () -> new PromptPlan(PromptPlan.Family.COSYVOICE2, null,
                List.of(new PromptPlan.Instruction("a", "x"), new PromptPlan.Instruction("a", "y")), tokenizer::encode), "duplicate id");
        assertThrows(PackException.class, () -> new PromptPlan(PromptPlan.Family.COSYVOICE2, null,
                List.of(new PromptPlan.Instruction("a", "x<|endofprompt|>")), tokenizer::encode), "marker inside the text");
        assertThrows(PackException.class, () -> new PromptPlan(PromptPlan.Family.COSYVOICE2, null, one, s -> new long[]{1, 2}),
                "a tokenizer without <|endofprompt|> as one token cannot prompt instructions");
        PromptPlan plain = new PromptPlan(PromptPlan.Family.COSYVOICE2, null, List.of(), s -> new long[]{1, 2});
        assertTrue(plain.instructions().isEmpty(), "a CosyVoice 2 pack without instructions needs no marker");

        Path dir = Files.createTempDirectory("timbre-family");
        Files.writeString(dir.resolve("pack.json"), "{\"family\":\"cosyvoice9\"}");
        PackException e = assertThrows(PackException.class, () -> PromptPlan.read(dir, tokenizer::encode));
        assertTrue(e.getMessage().contains("cosyvoice9"), e.getMessage());
        Files.writeString(dir.resolve("pack.json"), "{}");
        assertEquals(PromptPlan.Family.COSYVOICE2, PromptPlan.read(dir, tokenizer::encode).family(),
                "a pack without a family is CosyVoice 2");
    }

    private static boolean containsRun(long[] hay, long[] needle) {
        outer:
        for (int i = 0; i + needle.length <= hay.length; i++) {
            for (int j = 0; j < needle.length; j++) {
                if (hay[i + j] != needle[j]) {
                    continue outer;
                }
            }
            return true;
        }
        return false;
    }
}
