package io.timbre.engine;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.Set;
import java.util.function.Function;

/**
 * What the LLM is prompted with, per model family, from the pack's declaration (pack.json: {@code family},
 * {@code system_prompt}, {@code instructions}). As CosyVoice's frontend and LLM do it:
 * <ul>
 *   <li><b>Zero-shot and stored speakers</b> (frontend_zero_shot): the prompt text is the recording's transcript and
 *       the LLM gets the prompt's speech tokens after {@code task_id}. CosyVoice 3 puts its system prompt before the
 *       transcript, ended by {@code <|endofprompt|>} ({@code "You are a helpful assistant.<|endofprompt|>" + transcript},
 *       example.py); its LLM asserts that the token is there. CosyVoice 2 uses the transcript alone, normalised as
 *       inference_zero_shot normalises it; CosyVoice 3's prompt holds {@code <|...|>}, so upstream's text_normalize
 *       leaves it as written, and so does this plan.</li>
 *   <li><b>Instruct</b> (frontend_instruct2): the prompt text is the instruction ended by {@code <|endofprompt|>}
 *       (CosyVoice 3: {@code system_prompt + " " + instruction + "<|endofprompt|>"}, the form of upstream's
 *       instruct_list), and the LLM gets <i>no</i> prompt speech tokens (frontend_instruct2 deletes
 *       llm_prompt_speech_token). The flow still gets the speaker's prompt tokens, mel and embedding. With a stored
 *       speaker upstream keeps the speaker's stored transcript as the prompt text instead of the instruction
 *       (issue #1400, PR #1475 unmerged): the LLM then reads a transcript with no speech tokens after it and speaks
 *       it. Here the instruction replaces the transcript for stored and zero-shot speakers alike.</li>
 * </ul>
 * Immutable; shared by all requests.
 */
public final class PromptPlan {
    public static final String END_OF_PROMPT = "<|endofprompt|>";

    public enum Family {
        COSYVOICE2("cosyvoice2"), COSYVOICE3("cosyvoice3");

        public final String id;

        Family(String id) {
            this.id = id;
        }

        /** The family of a pack.json value; a pack without one is CosyVoice 2 (packs written before families). */
        public static Family parse(String value, Path dir) {
            if (value == null || value.isEmpty()) {
                return COSYVOICE2;
            }
            for (Family f : values()) {
                if (f.id.equals(value)) {
                    return f;
                }
            }
            throw new PackException("model pack " + dir + ": family '" + value + "' is not known (cosyvoice2 or cosyvoice3)");
        }
    }

    /**
     * One supported instruction: a short {@code id} for the API and the model's own wording ({@code text}, without
     * the system prompt and without {@code <|endofprompt|>}).
     */
    public record Instruction(String id, String text) {
    }

    /** The LLM's part of a request's prompt: the text ids before the target text, and the speech tokens after task_id. */
    public record LlmPrompt(long[] text, long[] speech) {
    }

    private final Family family;
    private final String systemPrompt;
    private final List<Instruction> instructions;
    private final Function<String, long[]> encoder;
    private final long endOfPrompt;

    /**
     * @param systemPrompt CosyVoice 3's system prompt (null for CosyVoice 2)
     * @param encoder      the pack's text tokenizer; {@code <|endofprompt|>} must be one token of it when the plan
     *                     needs it (CosyVoice 3, or any pack that declares instructions)
     */
    public PromptPlan(Family family, String systemPrompt, List<Instruction> instructions, Function<String, long[]> encoder) {
        this.family = family;
        this.systemPrompt = systemPrompt;
        this.instructions = List.copyOf(instructions);
        this.encoder = encoder;
        if (family == Family.COSYVOICE3 && (systemPrompt == null || systemPrompt.isBlank())) {
            throw new PackException("a cosyvoice3 pack must declare its system_prompt (CosyVoice 3's is \"You are a helpful assistant.\")");
        }
        Set<String> ids = new HashSet<>();
        for (Instruction i : this.instructions) {
            if (i.id() == null || !i.id().matches("[a-z0-9][a-z0-9-]{0,39}") || i.text() == null || i.text().isBlank()
                    || i.text().contains(END_OF_PROMPT)) {
                throw new PackException("instruction " + i + ": needs an id of lower-case letters, digits and '-' and the "
                        + "instruction's text without " + END_OF_PROMPT);
            }
            if (!ids.add(i.id())) {
                throw new PackException("instruction id '" + i.id() + "' is declared twice");
            }
        }
        long[] eop = encoder.apply(END_OF_PROMPT);
        if (eop.length == 1) {
            this.endOfPrompt = eop[0];
        } else if (family == Family.COSYVOICE3 || !this.instructions.isEmpty()) {
            throw new PackException("the pack's tokenizer does not have " + END_OF_PROMPT + " as one token (it gives "
                    + Arrays.toString(eop) + "); " + family.id + (this.instructions.isEmpty() ? "" : " instructions") + " need it");
        } else {
            this.endOfPrompt = -1;
        }
    }

    /** The plan a pack declares (pack.json), with the pack's tokenizer. */
    public static PromptPlan read(Path packDir, Function<String, long[]> encoder) {
        JsonNode root;
        try {
            root = new ObjectMapper().readTree(Files.readAllBytes(packDir.resolve("pack.json")));
        } catch (IOException e) {
            throw new PackException("model pack " + packDir + ": pack.json is not readable: " + e.getMessage(), e);
        }
        Family family = Family.parse(root.path("family").asText(""), packDir);
        String system = root.path("system_prompt").isTextual() ? root.path("system_prompt").asText() : null;
        List<Instruction> list = new ArrayList<>();
        JsonNode declared = root.path("instructions");
        if (!declared.isMissingNode() && !declared.isNull() && !declared.isArray()) {
            throw new PackException("model pack " + packDir + ": 'instructions' must be a list of {id, text}");
        }
        for (JsonNode n : declared) {
            list.add(new Instruction(n.path("id").asText(null), n.path("text").asText(null)));
        }
        try {
            return new PromptPlan(family, family == Family.COSYVOICE3 ? system : null, list, encoder);
        } catch (PackException e) {
            throw new PackException("model pack " + packDir + ": " + e.getMessage(), e);
        }
    }

    public Family family() {
        return family;
    }

    public List<Instruction> instructions() {
        return instructions;
    }

    /** The system prompt (CosyVoice 3), else null. */
    public String systemPrompt() {
        return systemPrompt;
    }

    /**
     * The supported instruction a client names: by its id (any case), by its text, or by the whole prompt the model
     * gets for it (system prompt and {@code <|endofprompt|>} included, as upstream's instruct_list writes it).
     * Surrounding white space is ignored.
     */
    public Optional<Instruction> find(String requested) {
        if (requested == null) {
            return Optional.empty();
        }
        String r = requested.strip();
        for (Instruction i : instructions) {
            if (i.id().equals(r.toLowerCase(Locale.ROOT)) || i.text().equals(r) || instructText(i).equals(r)
                    || instructText(i).equals(r + END_OF_PROMPT)) {
                return Optional.of(i);
            }
        }
        return Optional.empty();
    }

    /**
     * The text a speaker's {@code prompt_text} is tokenized from at registration or extraction, as upstream's
     * add_zero_shot_spk stores it (so that spk2info moves between deployments of the family): CosyVoice 2 the
     * transcript; CosyVoice 3 the system prompt, {@code <|endofprompt|>}, then the transcript (a transcript that
     * already holds {@code <|endofprompt|>} is taken as written).
     */
    public String speakerPromptText(String transcript) {
        if (family == Family.COSYVOICE3 && !transcript.contains(END_OF_PROMPT)) {
            return systemPrompt + END_OF_PROMPT + transcript;
        }
        return transcript;
    }

    /**
     * Whether a zero-shot transcript is normalised before it is tokenized: CosyVoice 2's inference_zero_shot runs
     * text_normalize(prompt_text, split=False); CosyVoice 3's prompt holds {@code <|endofprompt|>}, which makes
     * text_normalize return it as written.
     */
    public boolean normalizesTranscript() {
        return family == Family.COSYVOICE2;
    }

    /** The prompt text the LLM gets for an instruction, as upstream writes it (example.py, instruct_list). */
    public String instructText(Instruction instruction) {
        return family == Family.COSYVOICE3
                ? systemPrompt + " " + instruction.text() + END_OF_PROMPT
                : instruction.text() + END_OF_PROMPT;
    }

    /**
     * The LLM's prompt for a speaker's features ({@code promptText}: the features' prompt_text ids;
     * {@code speechTokens}: their llm_prompt_speech_token) and an optional instruction.
     * Without an instruction: the features' prompt text (CosyVoice 3: the system prompt is put first when an imported
     * entry lacks it, since the LLM needs {@code <|endofprompt|>}) and their speech tokens. With one: the instruction's
     * prompt text and no speech tokens, never the speaker's transcript.
     */
    public LlmPrompt llmPrompt(long[] promptText, long[] speechTokens, Instruction instruction) {
        if (instruction != null) {
            if (!instructions.contains(instruction)) {
                throw new IllegalArgumentException("instruction '" + instruction.id() + "' is not one of this pack's");
            }
            return new LlmPrompt(encoder.apply(instructText(instruction)), new long[0]);
        }
        if (family == Family.COSYVOICE3 && !contains(promptText, endOfPrompt)) {
            long[] head = encoder.apply(systemPrompt + END_OF_PROMPT);
            long[] text = Arrays.copyOf(head, head.length + promptText.length);
            System.arraycopy(promptText, 0, text, head.length, promptText.length);
            return new LlmPrompt(text, speechTokens);
        }
        return new LlmPrompt(promptText, speechTokens);
    }

    /**
     * The family whose frontend made a speaker entry with this prompt_text: CosyVoice 3 entries hold
     * {@code <|endofprompt|>} (upstream's CosyVoice 3 LLM refuses a prompt without it), CosyVoice 2 entries do not.
     */
    public Family familyOf(int[] promptText) {
        for (int id : promptText) {
            if (endOfPrompt >= 0 && id == endOfPrompt) {
                return Family.COSYVOICE3;
            }
        }
        return Family.COSYVOICE2;
    }

    private static boolean contains(long[] ids, long id) {
        for (long x : ids) {
            if (x == id) {
                return true;
            }
        }
        return false;
    }
}
