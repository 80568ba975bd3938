package io.timbre.synthesis;

import io.timbre.account.CurrentUser;
import io.timbre.account.User;
import io.timbre.api.ApiProblem;
import io.timbre.audio.WavCodec;
import io.timbre.speaker.Speaker;
import io.timbre.speaker.SpeakerResource;
import io.timbre.speaker.SpeakerService;
import io.quarkus.narayana.jta.QuarkusTransaction;
import jakarta.ws.rs.Consumes;
import jakarta.ws.rs.POST;
import jakarta.ws.rs.Path;
import jakarta.ws.rs.Produces;
import jakarta.ws.rs.core.MediaType;
import jakarta.ws.rs.core.Response;
import org.eclipse.microprofile.openapi.annotations.Operation;
import org.jboss.resteasy.reactive.RestForm;
import org.jboss.resteasy.reactive.multipart.FileUpload;

import java.util.UUID;

/**
 * POST /v1/tts: with a speaker (the request's, else the user's current one) from cached features; without
 * one, zero-shot from audio in the same request (multipart), computing features for that request only.
 */
@Path("/v1/tts")
public class TtsResource {
    public static final int MAX_TEXT = 4096;
    public static final String AUDIO_WAV = "audio/wav";

    public record TtsRequest(String text, UUID speakerId, Long seed) {
    }

    private final SynthesisService synthesis;
    private final SpeakerService speakers;
    private final CurrentUser user;

    TtsResource(SynthesisService synthesis, SpeakerService speakers, CurrentUser user) {
        this.synthesis = synthesis;
        this.speakers = speakers;
        this.user = user;
    }

    @POST
    @Consumes(MediaType.APPLICATION_JSON)
    @Produces({AUDIO_WAV, "application/problem+json"})
    @Operation(summary = "Speak text with a speaker: speakerId, else your current speaker")
    public Response speak(TtsRequest request) {
        long userId = user.requireUserId();
        if (request == null) {
            throw ApiProblem.badRequest("Send a JSON object: {\"text\": \"...\", \"speakerId\": \"...\" (optional), \"seed\": 0 (optional)}.");
        }
        String text = checkText(request.text());
        UUID speakerId = request.speakerId() != null ? request.speakerId()
                : QuarkusTransaction.requiringNew().call(() -> User.<User>findById(userId).currentSpeakerId);
        if (speakerId == null) {
            throw ApiProblem.unprocessable("no-speaker", "No speaker",
                    "You have no current speaker and named none. Register one (POST /v1/speakers) and select it "
                            + "(PUT /v1/me/speaker), pass \"speakerId\", or clone zero-shot: send multipart/form-data "
                            + "with 'text', 'promptText' and 'audio' (a 3-30 s WAV).");
        }
        Speaker speaker = speakers.get(userId, speakerId);
        return wav(synthesis.speak(speaker, text, seed(request.seed())));
    }

    @POST
    @Consumes(MediaType.MULTIPART_FORM_DATA)
    @Produces({AUDIO_WAV, "application/problem+json"})
    @Operation(summary = "Speak text zero-shot from a recording sent with the request; nothing is stored")
    public Response zeroShot(@RestForm String text, @RestForm String promptText, @RestForm("audio") FileUpload audio,
                             @RestForm Long seed) {
        user.requireUserId();
        String t = checkText(text);
        byte[] wav = SpeakerResource.bytes(audio, "audio",
                "Zero-shot needs the 'audio' part (a 3-30 s WAV) and its 'promptText'; or use a registered speaker.");
        String prompt = promptText == null || promptText.isBlank() ? null : promptText.strip();
        if (prompt == null) {
            throw ApiProblem.unprocessable("prompt-text-missing", "Transcript missing",
                    "Send 'promptText': the words spoken in the recording.");
        }
        float[] pcm = speakers.normalisePrompt(wav);
        return wav(synthesis.speakZeroShot(pcm, prompt, t, seed(seed)));
    }

    private static Response wav(SynthesisService.Speech s) {
        return s.headers(Response.ok(WavCodec.encodePcm16(s.pcm(), s.sampleRate()), AUDIO_WAV)).build();
    }

    static String checkText(String text) {
        if (text == null || text.isBlank()) {
            throw ApiProblem.unprocessable("text-missing", "Text missing", "Send the 'text' to speak.");
        }
        if (text.length() > MAX_TEXT) {
            throw ApiProblem.unprocessable("text-too-long", "Text too long", "The text has " + text.length()
                    + " characters; the limit is " + MAX_TEXT + ". Split it into several requests.");
        }
        return text;
    }

    static long seed(Long seed) {
        return seed == null ? 0L : seed;
    }
}
