package io.timbre.synthesis;

import com.fasterxml.jackson.databind.JsonNode;
import io.quarkus.narayana.jta.QuarkusTransaction;
import io.timbre.account.CurrentUser;
import io.timbre.api.ApiProblem;
import io.timbre.api.TextInputs;
import io.timbre.audio.SpeechFormat;
import io.timbre.speaker.Speaker;
import io.timbre.speaker.SpeakerService;
import io.timbre.text.TextFrontend;
import jakarta.ws.rs.Consumes;
import jakarta.ws.rs.POST;
import jakarta.ws.rs.Path;
import jakarta.ws.rs.Produces;
import io.vertx.core.http.HttpServerResponse;
import jakarta.ws.rs.core.Context;
import jakarta.ws.rs.core.MediaType;
import jakarta.ws.rs.core.Response;
import org.eclipse.microprofile.openapi.annotations.Operation;

import java.util.List;
import java.util.Set;
import java.util.UUID;

/**
 * POST /v1/audio/speech, OpenAI's speech API: {@code model} (any string, ignored), {@code input} (at most 4096
 * characters), {@code voice} (a speaker id or the name of one of the caller's speakers, as a string or as
 * {@code {"id": ...}}), {@code response_format} (mp3 by default, opus, aac, flac, wav, pcm), {@code speed} (0.25 to
 * 4.0), {@code stream_format} ({@code audio} by default, or {@code sse}), {@code instructions} (one of the model's
 * instructions, by id or text, see GET /v1/instructions; 422 listing them otherwise), and Timbre's
 * optional {@code seed} and {@code normalize} (false: speak the text as written). As OpenAI's, the audio is
 * streamed with chunked transfer encoding as it is synthesized (one chunk per vocoded segment; WAV with an
 * unknown-length header); a client that disconnects cancels its work.
 */
@Path("/v1/audio/speech")
public class SpeechResource {
    /** OpenAI's built-in voices: not speakers here. */
    static final Set<String> OPENAI_VOICES = Set.of("alloy", "ash", "ballad", "coral", "echo", "fable", "nova",
            "onyx", "sage", "shimmer", "verse", "marin", "cedar");

    private final SynthesisService synthesis;
    private final SpeakerService speakers;
    private final CurrentUser user;

    SpeechResource(SynthesisService synthesis, SpeakerService speakers, CurrentUser user) {
        this.synthesis = synthesis;
        this.speakers = speakers;
        this.user = user;
    }

    @POST
    @Consumes(MediaType.APPLICATION_JSON)
    // OpenAI clients send "Accept: application/octet-stream"; the response carries the format's own type.
    @Produces({"audio/mpeg", "audio/ogg", "audio/aac", "audio/flac", "audio/wav", "audio/pcm", MediaType.APPLICATION_OCTET_STREAM,
            "text/event-stream", "application/problem+json"})
    @Operation(summary = "OpenAI-compatible speech: input, voice (your speaker's id or name), response_format")
    public Response speech(JsonNode body, @Context HttpServerResponse http) {
        long userId = user.requireUserId();
        if (body == null || !body.isObject()) {
            throw ApiProblem.badRequest("Send a JSON object: {\"model\": \"tts-1\", \"input\": \"...\", \"voice\": "
                    + "\"<your speaker's id or name>\", \"response_format\": \"mp3\"}.");
        }
        String input = text(body, "input");
        if (input == null || input.isBlank()) {
            throw ApiProblem.badRequest("Send 'input': the text to speak (at most " + TtsResource.MAX_TEXT + " characters).");
        }
        if (input.length() > TtsResource.MAX_TEXT) {
            throw new ApiProblem(400, "input-too-long", "Input too long", "'input' has " + input.length()
                    + " characters; the limit is " + TtsResource.MAX_TEXT + ". Split it into several requests.");
        }
        String formatName = body.hasNonNull("response_format") ? text(body, "response_format") : "mp3";
        SpeechFormat format = SpeechFormat.parse(formatName).orElseThrow(() -> new ApiProblem(400,
                "response-format-unsupported", "Unsupported response_format", "'response_format' is '" + formatName
                + "'; use one of " + SpeechFormat.names() + "."));
        double speed = speed(body.get("speed"));
        String streamFormat = body.hasNonNull("stream_format") ? text(body, "stream_format") : "audio";
        if (!streamFormat.equals("audio") && !streamFormat.equals("sse")) {
            throw new ApiProblem(400, "stream-format-unsupported", "Unsupported stream_format",
                    "'stream_format' is '" + streamFormat + "'; use \"audio\" (the default) or \"sse\".");
        }
        long seed = 0L;
        JsonNode s = body.get("seed");
        if (s != null && !s.isNull()) {
            if (!s.canConvertToLong() || !s.isIntegralNumber()) {
                throw ApiProblem.badRequest("'seed' must be an integer.");
            }
            seed = s.asLong();
        }
        JsonNode n = body.get("normalize");
        if (n != null && !n.isNull() && !n.isBoolean()) {
            throw ApiProblem.badRequest("'normalize' must be true or false.");
        }
        var instruction = synthesis.instruction("instructions", text(body, "instructions"));
        List<String> segments = synthesis.read(input, TextFrontend.Language.AUTO, n == null || n.isNull() || n.asBoolean()).segments();
        Speaker speaker = voice(userId, body.get("voice"));
        // streamed by hop, CosyVoice 2's chunks (speed other than 1 streams whole segments)
        return AudioResponses.stream(synthesis.start(speaker, segments, seed, speed, instruction, true).latencyTags("speech", "hop"),
                format, streamFormat.equals("sse"), http);
    }

    private static String text(JsonNode body, String field) {
        JsonNode n = body.get(field);
        if (n == null || n.isNull()) {
            return null;
        }
        if (!n.isTextual()) {
            throw ApiProblem.badRequest("'" + field + "' must be a string.");
        }
        return TextInputs.requireNoNul(field, n.asText());
    }

    private static double speed(JsonNode speed) {
        if (speed == null || speed.isNull()) {
            return 1.0;
        }
        if (!speed.isNumber()) {
            throw ApiProblem.badRequest("'speed' must be a number from 0.25 to 4.0.");
        }
        double v = speed.asDouble();
        if (v < TtsResource.MIN_SPEED || v > TtsResource.MAX_SPEED) {
            throw ApiProblem.badRequest("'speed' is " + v + "; it must be from 0.25 to 4.0.");
        }
        return v;
    }

    /** The caller's speaker named by id (UUID) or by name; 404 otherwise. */
    private Speaker voice(long userId, JsonNode voice) {
        String v = voice == null || voice.isNull() ? null
                : voice.isTextual() ? voice.asText()
                : voice.isObject() && voice.path("id").isTextual() ? voice.path("id").asText() : null;
        TextInputs.requireNoNul("voice", v);
        if (v == null || v.isBlank()) {
            throw ApiProblem.badRequest("Send 'voice': the id or the name of one of your speakers (GET /v1/speakers).");
        }
        UUID id = uuid(v);
        if (id != null) {
            return speakers.get(userId, id);
        }
        String name = v.strip();
        return QuarkusTransaction.requiringNew().call(() -> Speaker.<Speaker>find("owner.id = ?1 and name = ?2", userId, name)
                .firstResultOptional()).orElseThrow(() -> new ApiProblem(404, "voice-not-found", "Voice not found",
                OPENAI_VOICES.contains(name.toLowerCase(java.util.Locale.ROOT))
                        ? "'" + name + "' is one of OpenAI's built-in voices; Timbre has none. Register a speaker of "
                        + "your own (POST /v1/speakers with a 3-30 s recording) and pass its name or id as 'voice'."
                        : "You have no speaker named '" + name + "'; list yours with GET /v1/speakers, or register "
                        + "one (POST /v1/speakers) and pass its name or id as 'voice'."));
    }

    private static UUID uuid(String s) {
        if (s.length() != 36) {
            return null;
        }
        try {
            return UUID.fromString(s);
        } catch (IllegalArgumentException e) {
            return null;
        }
    }
}
