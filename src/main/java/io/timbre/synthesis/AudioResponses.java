package io.timbre.synthesis;

import io.timbre.audio.AudioWriter;
import io.timbre.audio.SpeechFormat;
import io.timbre.engine.SynthesisJob;
import io.vertx.core.http.HttpServerResponse;
import jakarta.ws.rs.core.Response;
import jakarta.ws.rs.core.StreamingOutput;
import org.jboss.logging.Logger;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.Base64;

/**
 * Audio responses that follow a {@link SynthesisService.Synthesis}: streamed with chunked transfer encoding,
 * one chunk per vocoded segment, as raw audio or as OpenAI's server-sent events; and the client-disconnect hook
 * that cancels the synthesis (its rows leave the LLM batch at the next step, its unstarted work is skipped).
 */
final class AudioResponses {
    private static final Logger LOG = Logger.getLogger(AudioResponses.class);

    private AudioResponses() {
    }

    /**
     * When the client's connection closes before the response is complete, the synthesis is cancelled. Polled
     * rather than a close handler: Vert.x keeps one close handler per response, and the streaming output stream
     * installs its own.
     */
    static void cancelOnDisconnect(HttpServerResponse http, SynthesisService.Synthesis s) {
        if (http != null) {
            s.cancelWhen(http::closed);
        }
    }

    /**
     * A 200 response whose body is the synthesis in {@code format}, written as each segment is vocoded; the
     * response owns the synthesis and closes it when written (or when the client has gone).
     *
     * @param sse OpenAI's {@code stream_format: "sse"}: base64 audio in {@code speech.audio.delta} events, then
     *            {@code speech.audio.done}
     */
    static Response stream(SynthesisService.Synthesis s, SpeechFormat format, boolean sse, HttpServerResponse http) {
        cancelOnDisconnect(http, s);
        StreamingOutput body = out -> {
            try (s) {
                // Nothing goes out before the first segment exists: a request refused while it waited in the
                // queue still gets its 503 problem, not a 200 with a cut-off body.
                float[] first = s.next();
                OutputStream target = sse ? new SseAudio(out) : out;
                try (AudioWriter w = format.writer(s.sampleRate(), target)) {
                    for (float[] a = first; a != null; a = s.next()) {
                        w.write(a);
                        target.flush();
                        s.firstAudioWritten();
                    }
                    w.finish();
                    target.flush();
                    if (sse) {
                        ((SseAudio) target).done(s.inputTokens(), s.outputTokens());
                    }
                    out.flush();
                }
            } catch (SynthesisJob.CancelledException e) {
                LOG.debug("streamed synthesis cancelled: the client went away");
            } catch (IOException e) {
                LOG.debugf("streamed synthesis stopped: %s", e.getMessage());   // the client went away; s is cancelled
            }
        };
        String type = sse ? "text/event-stream" : format.contentType();
        return s.headers(Response.ok(body, type)).header("X-Timbre-Sample-Rate", s.sampleRate()).build();
    }

    /** Bytes written between flushes become one {@code speech.audio.delta} event. */
    private static final class SseAudio extends OutputStream {
        private final OutputStream out;
        private final ByteArrayOutputStream pending = new ByteArrayOutputStream();

        SseAudio(OutputStream out) {
            this.out = out;
        }

        @Override
        public void write(int b) {
            pending.write(b);
        }

        @Override
        public void write(byte[] b, int off, int len) {
            pending.write(b, off, len);
        }

        @Override
        public void flush() throws IOException {
            if (pending.size() > 0) {
                event("{\"type\":\"speech.audio.delta\",\"audio\":\"" + Base64.getEncoder().encodeToString(pending.toByteArray()) + "\"}");
                pending.reset();
            }
            out.flush();
        }

        void done(int input, int output) throws IOException {
            flush();
            event("{\"type\":\"speech.audio.done\",\"usage\":{\"input_tokens\":" + input + ",\"output_tokens\":"
                    + output + ",\"total_tokens\":" + (input + output) + "}}");
            out.flush();
        }

        private void event(String json) throws IOException {
            out.write(("data: " + json + "\n\n").getBytes(StandardCharsets.UTF_8));
        }
    }
}
