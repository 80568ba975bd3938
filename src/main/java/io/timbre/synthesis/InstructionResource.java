package io.timbre.synthesis;

import io.timbre.engine.SpeechSynthesis;
import io.timbre.account.CurrentUser;
import io.timbre.engine.PromptPlan;
import jakarta.ws.rs.GET;
import jakarta.ws.rs.Path;
import jakarta.ws.rs.Produces;
import jakarta.ws.rs.core.MediaType;
import org.eclipse.microprofile.openapi.annotations.Operation;

import java.util.List;

/**
 * GET /v1/instructions: the instructions the loaded model pack declares, which {@code instruct} on /v1/tts and
 * {@code instructions} on /v1/audio/speech accept (by id or by text).
 */
@Path("/v1/instructions")
public class InstructionResource {

    /**
     * @param pack         the loaded pack, name@version
     * @param family       {@code cosyvoice2} or {@code cosyvoice3}
     * @param systemPrompt CosyVoice 3's system prompt, put before every instruction and transcript (null for CosyVoice 2)
     * @param instructions the supported instructions
     */
    public record Instructions(String pack, String family, String systemPrompt, List<PromptPlan.Instruction> instructions) {
    }

    private final SynthesisService synthesis;
    private final SpeechSynthesis engine;
    private final CurrentUser user;

    InstructionResource(SynthesisService synthesis, SpeechSynthesis engine, CurrentUser user) {
        this.synthesis = synthesis;
        this.engine = engine;
        this.user = user;
    }

    @GET
    @Produces({MediaType.APPLICATION_JSON, "application/problem+json"})
    @Operation(summary = "The model's instructions (dialects, emotions, rate...) that 'instruct' accepts")
    public Instructions list() {
        user.requireUserId();
        PromptPlan plan = synthesis.promptPlan();
        return new Instructions(engine.packKey(), plan.family().id, plan.systemPrompt(), plan.instructions());
    }
}
