package io.timbre.synthesis;

import io.timbre.account.CurrentUser;
import io.timbre.account.User;
import io.timbre.api.ApiProblem;
import io.timbre.api.TextInputs;
import io.timbre.audio.SpeechFormat;
import io.vertx.core.http.HttpServerResponse;
import jakarta.ws.rs.core.Context;
import io.timbre.speaker.Speaker;
import io.timbre.speaker.SpeakerResource;
import io.timbre.speaker.SpeakerService;
import io.timbre.text.TextFrontend;
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

import java.util.List;
import java.util.UUID;

/**
 * POST /v1/tts: with a speaker (the request's, else the user's current one) from cached features; without
 * one, zero-shot from audio in the same request (multipart), computing features for that request only. The whole
 * clip, or with {@code stream} chunked audio as each segment is vocoded; a client that disconnects cancels its work.
 */
@Path("/v1/tts")
public class TtsResource {
    public static final int MAX_TEXT = 4096;
    public static final String AUDIO_WAV = "audio/wav";
    public static final double MIN_SPEED = 0.25;
    public static final double MAX_SPEED = 4.0;

    /**
     * @param stream true: chunked audio as each segment is vocoded (a WAV header with unknown length, or raw PCM)
     * @param format {@code wav} (default) or {@code pcm} (16-bit little-endian mono at X-Timbre-Sample-Rate)
     * @param speed  0.25 to 4.0 (default 1.0): the speaking rate, pitch kept
     * @param normalize false: speak the text as written (no reading of numbers, dates, units...); default true
     * @param instruct  one of the model's instructions (GET /v1/instructions), by id or text: how to speak it
     *                  (dialect, emotion, rate...); optional
     * @param streamUnit with {@code stream}: {@code hop} (default; CosyVoice 2's chunks of 25 speech tokens, the first
     *                   audio long before a long sentence is done) or {@code segment} (one chunk per sentence-sized segment)
     */
    public record TtsRequest(String text, UUID speakerId, Long seed, Boolean stream, String format, Double speed,
                             Boolean normalize, String instruct,
                             @com.fasterxml.jackson.annotation.JsonProperty("stream_unit") String streamUnit) {
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
    @Produces({AUDIO_WAV, "audio/pcm", "application/problem+json"})
    @Operation(summary = "Speak text with a speaker: speakerId, else your current speaker")
    public Response speak(TtsRequest request, @Context HttpServerResponse http) {
        long userId = user.requireUserId();
        if (request == null) {
            throw ApiProblem.badRequest("Send a JSON object: {\"text\": \"...\", \"speakerId\": \"...\" (optional), \"seed\": 0 (optional)}.");
        }
        String text = checkText(request.text());
        var instruction = synthesis.instruction("instruct", TextInputs.requireNoNul("instruct", request.instruct()));
        List<String> segments = synthesis.read(text, TextFrontend.Language.AUTO, !Boolean.FALSE.equals(request.normalize())).segments();
        UUID speakerId = request.speakerId() != null ? request.speakerId()
                : QuarkusTransaction.requiringNew().call(() -> User.<User>findById(userId).currentSpeakerId);
        if (speakerId == null) {
            throw ApiProblem.unprocessable("no-speaker", "No speaker",
                    "You have no current speaker and named none. Register one (POST /v1/speakers) and select it "
                            + "(PUT /v1/me/speaker), pass \"speakerId\", or clone zero-shot: send multipart/form-data "
                            + "with 'text', 'promptText' and 'audio' (a 3-30 s recording: WAV, MP3, M4A, Ogg, FLAC or WebM).");
        }
        Speaker speaker = speakers.get(userId, speakerId);
        SpeechFormat format = format(request.format());
        double speed = speed(request.speed());
        boolean stream = Boolean.TRUE.equals(request.stream());
        boolean hops = stream && byHop(request.streamUnit());
        return respond(synthesis.start(speaker, segments, seed(request.seed()), speed, instruction, hops), stream, hops, format, http);
    }

    @POST
    @Consumes(MediaType.MULTIPART_FORM_DATA)
    @Produces({AUDIO_WAV, "audio/pcm", "application/problem+json"})
    @Operation(summary = "Speak text zero-shot from a recording sent with the request; nothing is stored")
    public Response zeroShot(@RestForm String text, @RestForm String promptText, @RestForm("audio") FileUpload audio,
                             @RestForm Long seed, @RestForm Boolean stream, @RestForm String format, @RestForm Double speed,
                             @RestForm Boolean normalize, @RestForm String instruct, @RestForm("stream_unit") String streamUnit,
                             @Context HttpServerResponse http) {
        user.requireUserId();
        var instruction = synthesis.instruction("instruct", TextInputs.requireNoNul("instruct", instruct));
        List<String> segments = synthesis.read(checkText(text), TextFrontend.Language.AUTO, !Boolean.FALSE.equals(normalize)).segments();
        SpeechFormat f = format(format);
        double rate = speed(speed);
        byte[] wav = SpeakerResource.bytes(audio, "audio",
                "Zero-shot needs the 'audio' part (a 3-30 s recording: WAV, MP3, M4A, Ogg, FLAC or WebM) and its 'promptText'; or use a registered speaker.");
        TextInputs.requireNoNul("promptText", promptText);
        String prompt = promptText == null || promptText.isBlank() ? null : promptText.strip();
        if (prompt == null) {
            throw ApiProblem.unprocessable("prompt-text-missing", "Transcript missing",
                    "Send 'promptText': the words spoken in the recording.");
        }
        boolean streamed = Boolean.TRUE.equals(stream);
        boolean hops = streamed && byHop(streamUnit);
        SpeakerService.PromptAudio pcm = speakers.normalisePrompt(wav);
        return respond(synthesis.startZeroShot(pcm.samples(), pcm.sampleRate(), prompt, segments, seed(seed), rate, instruction, hops),
                streamed, hops, f, http);
    }

    /** Streams, or waits for the whole clip (a WAV with its exact length); a client that leaves cancels the work. */
    private static Response respond(SynthesisService.Synthesis s, boolean stream, boolean hops, SpeechFormat format,
                                    HttpServerResponse http) {
        s.latencyTags("tts", !stream ? "none" : hops ? "hop" : "segment");
        if (stream) {
            return AudioResponses.stream(s, format, false, http);
        }
        try (s) {
            AudioResponses.cancelOnDisconnect(http, s);
            SynthesisService.Speech speech = s.all();
            byte[] audio = format.encode(speech.pcm(), speech.sampleRate());
            s.firstAudioWritten();   // the whole clip goes to the HTTP layer now
            return speech.headers(Response.ok(audio, format.contentType()))
                    .header("X-Timbre-Sample-Rate", speech.sampleRate()).build();
        }
    }

    /** stream_unit: "hop" (null too) or "segment". */
    static boolean byHop(String unit) {
        if (unit == null || unit.equals("hop")) {
            return true;
        }
        if (unit.equals("segment")) {
            return false;
        }
        throw ApiProblem.unprocessable("stream-unit-unsupported", "Stream unit not supported", "'stream_unit' is '" + unit
                + "'; use \"hop\" (the default: chunks of 25 speech tokens as they are sampled) or \"segment\" (one chunk per segment).");
    }

    private static SpeechFormat format(String name) {
        if (name == null || name.isBlank() || name.equals("wav")) {
            return SpeechFormat.WAV;
        }
        if (name.equals("pcm")) {
            return SpeechFormat.PCM;
        }
        throw ApiProblem.unprocessable("format-unsupported", "Format not supported", "'format' is '" + name
                + "'; /v1/tts answers \"wav\" (default) or \"pcm\". For mp3, opus, aac or flac use POST /v1/audio/speech.");
    }

    /** The speaking rate, 0.25 to 4.0 as OpenAI's API; null is 1.0. */
    static double speed(Double speed) {
        if (speed == null) {
            return 1.0;
        }
        if (speed.isNaN() || speed < MIN_SPEED || speed > MAX_SPEED) {
            throw ApiProblem.unprocessable("speed-out-of-range", "Speed out of range", "'speed' is " + speed + "; it must be from "
                    + MIN_SPEED + " to " + MAX_SPEED + " (1.0 is the natural rate).");
        }
        return speed;
    }

    static String checkText(String text) {
        TextInputs.requireNoNul("text", text);
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
