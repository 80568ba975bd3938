package io.timbre.synthesis;

import com.openai.client.OpenAIClient;
import com.openai.client.okhttp.OpenAIOkHttpClient;
import com.openai.core.JsonValue;
import com.openai.core.http.HttpResponse;
import com.openai.errors.OpenAIServiceException;
import com.openai.models.audio.speech.SpeechCreateParams;
import com.openai.models.audio.speech.SpeechCreateParams.ResponseFormat;
import io.quarkus.test.common.http.TestHTTPResource;
import io.quarkus.test.junit.QuarkusTest;
import io.restassured.http.ContentType;
import io.timbre.account.TestUsers;
import io.timbre.audio.NativeFfmpeg;
import org.bytedeco.ffmpeg.avcodec.AVCodecContext;
import org.bytedeco.ffmpeg.avcodec.AVPacket;
import org.bytedeco.ffmpeg.avformat.AVFormatContext;
import org.bytedeco.ffmpeg.avutil.AVDictionary;
import org.bytedeco.ffmpeg.avutil.AVFrame;
import org.bytedeco.ffmpeg.global.avcodec;
import org.bytedeco.ffmpeg.global.avformat;
import org.bytedeco.ffmpeg.global.avutil;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.io.InputStream;
import java.net.URL;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;

import static io.restassured.RestAssured.given;
import static org.hamcrest.Matchers.containsString;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** POST /v1/audio/speech through the official OpenAI Java client, on the tiny pack. */
@QuarkusTest
class OpenAiSpeechTests {

    @TestHTTPResource("/v1")
    URL base;

    String key;
    String speakerId;
    OpenAIClient client;

    @BeforeEach
    void speaker() throws Exception {
        key = TestUsers.createUser(TestUsers.uniqueName("openai"));
        speakerId = TestUsers.registerSpeaker(key, "narrator");
        client = OpenAIOkHttpClient.builder().apiKey(key).baseUrl(base.toString()).maxRetries(0).build();
    }

    record Audio(byte[] bytes, String contentType) {
    }

    Audio speak(String voice, ResponseFormat format) throws Exception {
        SpeechCreateParams.Builder p = SpeechCreateParams.builder().model("tts-1").input("Hi.").voice(voice)
                .putAdditionalBodyProperty("seed", JsonValue.from(3));
        if (format != null) {
            p.responseFormat(format);
        }
        try (HttpResponse r = client.audio().speech().create(p.build()); InputStream in = r.body()) {
            assertEquals(200, r.statusCode());
            return new Audio(in.readAllBytes(), r.headers().values("Content-Type").get(0));
        }
    }

    @Test
    void everyFormatIsAValidFileOfTheSameDuration() throws Exception {
        Audio wav = speak(speakerId, ResponseFormat.WAV);
        assertEquals("audio/wav", wav.contentType());
        assertEquals("RIFF", new String(wav.bytes(), 0, 4, StandardCharsets.US_ASCII));
        ByteBuffer h = ByteBuffer.wrap(wav.bytes()).order(ByteOrder.LITTLE_ENDIAN);
        assertEquals(24000, h.getInt(24));
        int samples = (wav.bytes().length - 44) / 2;
        assertTrue(samples >= 480 * 6 && samples % 480 == 0, "plausible length: " + samples);
        double seconds = samples / 24000.0;

        Audio pcm = speak("narrator", ResponseFormat.PCM);   // by name; same seed, same audio
        assertEquals("audio/pcm", pcm.contentType());
        assertArrayEquals(Arrays.copyOfRange(wav.bytes(), 44, wav.bytes().length), pcm.bytes(),
                "pcm is the WAV's samples, 16-bit little-endian at 24 kHz");

        Audio mp3 = speak(speakerId, null);   // OpenAI's default format
        assertEquals("audio/mpeg", mp3.contentType());
        byte[] m = mp3.bytes();
        assertTrue(new String(m, 0, 3, StandardCharsets.US_ASCII).equals("ID3")
                || ((m[0] & 0xFF) == 0xFF && (m[1] & 0xE0) == 0xE0), "ID3 tag or MPEG frame sync");
        assertDuration(m, "mp3", seconds);

        Audio opus = speak(speakerId, ResponseFormat.OPUS);
        assertEquals("audio/ogg", opus.contentType());
        assertEquals("OggS", new String(opus.bytes(), 0, 4, StandardCharsets.US_ASCII));
        assertEquals("OpusHead", new String(opus.bytes(), 28, 8, StandardCharsets.US_ASCII));
        assertDuration(opus.bytes(), "opus", seconds);

        Audio flac = speak(speakerId, ResponseFormat.FLAC);
        assertEquals("audio/flac", flac.contentType());
        assertEquals("fLaC", new String(flac.bytes(), 0, 4, StandardCharsets.US_ASCII));
        assertDuration(flac.bytes(), "flac", seconds);

        Audio aac = speak(speakerId, ResponseFormat.AAC);
        assertEquals("audio/aac", aac.contentType());
        assertEquals(0xFFF, ((aac.bytes()[0] & 0xFF) << 4) | ((aac.bytes()[1] & 0xF0) >> 4), "ADTS sync word");
        assertDuration(aac.bytes(), "aac", seconds);
    }

    @Test
    void errorsAreProblems() {
        OpenAIServiceException unknown = assertThrows(OpenAIServiceException.class, () -> speak("nobody", ResponseFormat.WAV));
        assertEquals(404, unknown.statusCode());
        assertProblem(unknown);
        OpenAIServiceException alloy = assertThrows(OpenAIServiceException.class, () -> speak("alloy", ResponseFormat.WAV));
        assertEquals(404, alloy.statusCode());
        assertTrue(alloy.body().toString().contains("Register a speaker"), alloy.body().toString());
        assertEquals(404, assertThrows(OpenAIServiceException.class,
                () -> speak("00000000-0000-0000-0000-000000000000", ResponseFormat.WAV)).statusCode());

        OpenAIServiceException tooLong = assertThrows(OpenAIServiceException.class, () -> client.audio().speech().create(
                SpeechCreateParams.builder().model("tts-1").input("a".repeat(4097)).voice(speakerId).build()).close());
        assertEquals(400, tooLong.statusCode());
        assertProblem(tooLong);

        OpenAIServiceException format = assertThrows(OpenAIServiceException.class, () -> speak(speakerId, ResponseFormat.of("ogg")));
        assertEquals(400, format.statusCode());
        assertProblem(format);

        given().auth().oauth2(key).contentType(ContentType.JSON)
                .body("{\"model\":\"tts-1\",\"input\":\"Hi.\",\"voice\":\"narrator\",\"speed\":5}")
                .post("/v1/audio/speech").then().statusCode(400).contentType("application/problem+json")
                .body("detail", containsString("0.25 to 4.0"));
        given().auth().oauth2(key).contentType(ContentType.JSON)
                .body("{\"model\":\"tts-1\",\"input\":\"Hi.\",\"voice\":\"narrator\",\"stream_format\":\"json\"}")
                .post("/v1/audio/speech").then().statusCode(400).contentType("application/problem+json")
                .body("detail", containsString("sse"));
        given().contentType(ContentType.JSON).body("{\"model\":\"tts-1\",\"input\":\"Hi.\",\"voice\":\"narrator\"}")
                .post("/v1/audio/speech").then().statusCode(401).contentType("application/problem+json");
    }

    static void assertProblem(OpenAIServiceException e) {
        List<String> type = e.headers().values("Content-Type");
        assertTrue(!type.isEmpty() && type.get(0).startsWith("application/problem+json"), type.toString());
    }

    /** Decodes the file with FFmpeg and checks its length against the WAV's (codec padding allowed). */
    static void assertDuration(byte[] file, String ext, double expected) throws Exception {
        NativeFfmpeg.ensureLoaded();
        Path tmp = Files.createTempFile("speech", "." + ext);
        AVFormatContext fmt = new AVFormatContext(null);
        AVCodecContext dec = null;
        AVPacket pkt = avcodec.av_packet_alloc();
        AVFrame frame = avutil.av_frame_alloc();
        try {
            Files.write(tmp, file);
            assertEquals(0, avformat.avformat_open_input(fmt, tmp.toString(), null, (AVDictionary) null), "open " + ext);
            assertTrue(avformat.avformat_find_stream_info(fmt, (AVDictionary) null) >= 0);
            int stream = avformat.av_find_best_stream(fmt, avutil.AVMEDIA_TYPE_AUDIO, -1, -1, (org.bytedeco.ffmpeg.avcodec.AVCodec) null, 0);
            assertTrue(stream >= 0, "an audio stream");
            var par = fmt.streams(stream).codecpar();
            var codec = avcodec.avcodec_find_decoder(par.codec_id());
            dec = avcodec.avcodec_alloc_context3(codec);
            avcodec.avcodec_parameters_to_context(dec, par);
            assertEquals(0, avcodec.avcodec_open2(dec, codec, (AVDictionary) null));
            assertEquals(1, dec.ch_layout().nb_channels(), "mono");
            long decoded = 0;
            while (avformat.av_read_frame(fmt, pkt) >= 0) {
                if (pkt.stream_index() == stream) {
                    assertTrue(avcodec.avcodec_send_packet(dec, pkt) >= 0, "decodable " + ext);
                    while (avcodec.avcodec_receive_frame(dec, frame) >= 0) {
                        decoded += frame.nb_samples();
                    }
                }
                avcodec.av_packet_unref(pkt);
            }
            avcodec.avcodec_send_packet(dec, null);
            while (avcodec.avcodec_receive_frame(dec, frame) >= 0) {
                decoded += frame.nb_samples();
            }
            double seconds = decoded / (double) dec.sample_rate();
            assertTrue(Math.abs(seconds - expected) < 0.1, ext + ": " + seconds + " s decoded, " + expected + " s synthesised");
        } finally {
            avutil.av_frame_free(frame);
            avcodec.av_packet_free(pkt);
            if (dec != null) {
                avcodec.avcodec_free_context(dec);
            }
            if (!fmt.isNull()) {
                avformat.avformat_close_input(fmt);
            }
            Files.deleteIfExists(tmp);
        }
    }
}
