package io.timbre.synthesis;

import io.timbre.account.CurrentUser;
import io.timbre.api.ApiProblem;
import io.timbre.text.TextFrontend;
import jakarta.ws.rs.Consumes;
import jakarta.ws.rs.POST;
import jakarta.ws.rs.Path;
import jakarta.ws.rs.Produces;
import jakarta.ws.rs.core.MediaType;
import org.eclipse.microprofile.openapi.annotations.Operation;

import java.util.List;

/**
 * POST /v1/text/normalize: how a text will be read, before paying for synthesis. The answer is the exact segments
 * that /v1/tts and /v1/audio/speech speak for the same text, from the same code path ({@link SynthesisService#read}).
 */
@Path("/v1/text/normalize")
public class TextResource {

    /**
     * @param text      the text, at most 4096 characters
     * @param language  {@code auto} (default: each sentence in Chinese if it has a Chinese character, else English),
     *                  {@code zh} or {@code en}
     * @param normalize false: split only, as synthesis with {@code "normalize": false}; default true
     */
    public record NormalizeRequest(String text, String language, Boolean normalize) {
    }

    /**
     * @param language {@code zh}, {@code en}, or {@code mixed} when sentences were read in both
     * @param segments the segments synthesis speaks, in order; each is synthesized on its own
     */
    public record NormalizeResponse(String language, List<String> segments) {
    }

    private final SynthesisService synthesis;
    private final CurrentUser user;

    TextResource(SynthesisService synthesis, CurrentUser user) {
        this.synthesis = synthesis;
        this.user = user;
    }

    @POST
    @Consumes(MediaType.APPLICATION_JSON)
    @Produces({MediaType.APPLICATION_JSON, "application/problem+json"})
    @Operation(summary = "Preview how a text will be read: the normalized segments synthesis would speak")
    public NormalizeResponse normalize(NormalizeRequest request) {
        user.requireUserId();
        if (request == null) {
            throw ApiProblem.badRequest("Send a JSON object: {\"text\": \"...\", \"language\": \"auto\" (optional: auto, zh or en)}.");
        }
        String text = TtsResource.checkText(request.text());
        TextFrontend.Language language = TextFrontend.Language.parse(request.language());
        if (language == null) {
            throw ApiProblem.unprocessable("language-unsupported", "Language not supported", "'language' is '"
                    + request.language() + "'; use \"auto\" (the default), \"zh\" or \"en\".");
        }
        TextFrontend.Reading r = synthesis.read(text, language, !Boolean.FALSE.equals(request.normalize()));
        return new NormalizeResponse(r.language(), r.segments());
    }
}
