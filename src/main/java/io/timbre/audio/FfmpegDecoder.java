package io.timbre.audio;

import org.bytedeco.ffmpeg.avcodec.AVCodec;
import org.bytedeco.ffmpeg.avcodec.AVCodecContext;
import org.bytedeco.ffmpeg.avcodec.AVCodecParameters;
import org.bytedeco.ffmpeg.avcodec.AVPacket;
import org.bytedeco.ffmpeg.avformat.AVFormatContext;
import org.bytedeco.ffmpeg.avformat.AVIOContext;
import org.bytedeco.ffmpeg.avformat.AVInputFormat;
import org.bytedeco.ffmpeg.avformat.Read_packet_Pointer_BytePointer_int;
import org.bytedeco.ffmpeg.avformat.Seek_Pointer_long_int;
import org.bytedeco.ffmpeg.avutil.AVDictionary;
import org.bytedeco.ffmpeg.avutil.AVFrame;
import org.bytedeco.ffmpeg.global.avcodec;
import org.bytedeco.ffmpeg.global.avformat;
import org.bytedeco.ffmpeg.global.avutil;
import org.bytedeco.ffmpeg.global.swresample;
import org.bytedeco.ffmpeg.swresample.SwrContext;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.Pointer;
import org.bytedeco.javacpp.PointerPointer;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Decodes an allow-listed compressed upload ({@link AudioContainer}) to mono floats at its own sample rate with the
 * bundled FFmpeg, hardened because FFmpeg is an attack surface: the bytes are read from memory through a custom
 * AVIOContext (no file or network protocol is reachable: {@code protocol_whitelist} names none), the demuxer is the
 * one the magic bytes named (no probing; {@code format_whitelist} and {@code codec_whitelist} hold only the
 * allow-listed ones), probe size and analysis are bounded, one decoder thread, and decoding stops once the audio is
 * longer than the caller's limit. Every FFmpeg object is freed in {@link #close()}; use one instance per upload.
 */
final class FfmpegDecoder implements AutoCloseable {
    private final java.util.concurrent.atomic.AtomicBoolean closed = new java.util.concurrent.atomic.AtomicBoolean();
    private static final int EAGAIN = -11;
    private static final int AVFMT_FLAG_CUSTOM_IO = 0x0080;
    private static final int AVSEEK_SIZE = 0x10000;
    private static final int AVSEEK_FORCE = 0x20000;
    private static final int IO_BUFFER = 32 * 1024;
    /** Bytes and time FFmpeg may read to find the stream's parameters. */
    private static final String PROBE_BYTES = Integer.toString(256 * 1024);
    private static final String ANALYZE_MICROS = Integer.toString(3_000_000);

    /** Upload bytes by the address of their AVFormatContext: one native callback pair serves every decoder. */
    private static final Map<Long, Source> SOURCES = new ConcurrentHashMap<>();
    private static volatile ReadCallback reader;
    private static volatile SeekCallback seeker;

    private static final class Source {
        final byte[] data;
        int position;

        Source(byte[] data) {
            this.data = data;
        }
    }

    private static final class ReadCallback extends Read_packet_Pointer_BytePointer_int {
        @Override
        public int call(Pointer opaque, BytePointer buf, int size) {
            Source s = SOURCES.get(opaque.address());
            if (s == null) {
                return avutil.AVERROR_EXTERNAL;
            }
            int n = Math.min(size, s.data.length - s.position);
            if (n <= 0) {
                return avutil.AVERROR_EOF;
            }
            buf.position(0).put(s.data, s.position, n);
            s.position += n;
            return n;
        }
    }

    private static final class SeekCallback extends Seek_Pointer_long_int {
        @Override
        public long call(Pointer opaque, long offset, int whence) {
            Source s = SOURCES.get(opaque.address());
            if (s == null) {
                return avutil.AVERROR_EXTERNAL;
            }
            int w = whence & ~AVSEEK_FORCE;
            if (w == AVSEEK_SIZE) {
                return s.data.length;
            }
            long target = switch (w) {
                case 0 -> offset;                       // SEEK_SET
                case 1 -> s.position + offset;          // SEEK_CUR
                case 2 -> s.data.length + offset;       // SEEK_END
                default -> -1;
            };
            if (target < 0 || target > s.data.length) {
                return avutil.AVERROR_EOF;
            }
            s.position = (int) target;
            return target;
        }
    }

    private static synchronized void callbacks() {
        if (reader == null) {
            reader = new ReadCallback().retainReference();
            seeker = new SeekCallback().retainReference();
        }
    }

    private final AudioContainer container;
    private AVFormatContext fmt;
    private AVIOContext io;
    private AVCodecContext codec;
    private SwrContext swr;
    private AVPacket packet;
    private AVFrame frame;
    private FloatPointer converted;
    private PointerPointer<FloatPointer> out;
    private long key;

    private FfmpegDecoder(AudioContainer container) {
        this.container = container;
    }

    /**
     * @param maxSeconds decoding stops once more than this much audio came out (the result is then longer than it,
     *                   and the caller refuses it as too long)
     */
    static DecodedAudio decode(byte[] data, AudioContainer container, double maxSeconds) {
        NativeFfmpeg.ensureLoaded();
        callbacks();
        try (FfmpegDecoder d = new FfmpegDecoder(container)) {
            return d.run(data, maxSeconds);
        }
    }

    private DecodedAudio run(byte[] data, double maxSeconds) {
        AVInputFormat demuxer = avformat.av_find_input_format(container.demuxer);
        if (demuxer == null) {
            throw new IllegalStateException("FFmpeg has no " + container.demuxer + " demuxer");
        }
        fmt = avformat.avformat_alloc_context();
        key = fmt.address();
        SOURCES.put(key, new Source(data));
        BytePointer buffer = new BytePointer(avutil.av_malloc(IO_BUFFER));
        io = avformat.avio_alloc_context(buffer, IO_BUFFER, 0, fmt, reader, null, seeker);
        if (io == null) {
            avutil.av_free(buffer);
            throw new IllegalStateException("FFmpeg could not allocate an AVIOContext");
        }
        fmt.pb(io);
        fmt.flags(fmt.flags() | AVFMT_FLAG_CUSTOM_IO);

        AVDictionary options = new AVDictionary(null);
        try {
            avutil.av_dict_set(options, "protocol_whitelist", "none", 0);
            avutil.av_dict_set(options, "format_whitelist", AudioContainer.DEMUXERS, 0);
            avutil.av_dict_set(options, "codec_whitelist", String.join(",", AudioContainer.DECODERS), 0);
            avutil.av_dict_set(options, "probesize", PROBE_BYTES, 0);
            avutil.av_dict_set(options, "analyzeduration", ANALYZE_MICROS, 0);
            avutil.av_dict_set(options, "max_streams", "4", 0);
            avutil.av_dict_set(options, "max_probe_packets", "64", 0);
            int r = avformat.avformat_open_input(fmt, (String) null, demuxer, options);
            if (r < 0) {
                fmt = null;   // avformat_open_input freed the context
                throw corrupt("its " + container.label + " header could not be read", r);
            }
        } finally {
            avutil.av_dict_free(options);
        }
        AVDictionary none = null;
        int r = avformat.avformat_find_stream_info(fmt, none);
        if (r < 0) {
            throw corrupt("its streams could not be read", r);
        }
        int index = avformat.av_find_best_stream(fmt, avutil.AVMEDIA_TYPE_AUDIO, -1, -1, (AVCodec) null, 0);
        if (index < 0) {
            throw new UnsupportedAudioException("The " + container.label + " file holds no audio stream; send a recording as "
                    + AudioContainer.ACCEPTED + ".");
        }
        AVCodecParameters params = fmt.streams(index).codecpar();
        AVCodec decoder = avcodec.avcodec_find_decoder(params.codec_id());
        String codecName = decoder == null ? "unknown" : decoder.name().getString(StandardCharsets.US_ASCII);
        if (!container.codecs.contains(params.codec_id()) || !AudioContainer.DECODERS.contains(codecName)) {
            BytePointer name = avcodec.avcodec_get_name(params.codec_id());
            throw new UnsupportedAudioException("The " + container.label + " file holds " + name.getString(StandardCharsets.US_ASCII)
                    + " audio, which is not accepted; send " + AudioContainer.ACCEPTED + ".");
        }
        AudioChecks.requirePlausibleRate(params.sample_rate());
        int channels = params.ch_layout().nb_channels();
        if (channels < 1 || channels > AudioChecks.MAX_CHANNELS) {
            throw new ImplausibleAudioException("audio-channels", "Implausible channel count", "The recording has " + channels
                    + " channels; send mono or stereo.");
        }

        codec = avcodec.avcodec_alloc_context3(decoder);
        check(avcodec.avcodec_parameters_to_context(codec, params), "could not set up its decoder");
        codec.thread_count(1);
        codec.max_samples(1 << 20);
        AVDictionary codecOptions = new AVDictionary(null);
        try {
            avutil.av_dict_set(codecOptions, "codec_whitelist", String.join(",", AudioContainer.DECODERS), 0);
            check(avcodec.avcodec_open2(codec, decoder, codecOptions), "its decoder could not start");
        } finally {
            avutil.av_dict_free(codecOptions);
        }

        packet = avcodec.av_packet_alloc();
        frame = avutil.av_frame_alloc();
        Samples samples = new Samples(maxSeconds);
        while (!samples.full()) {
            r = avformat.av_read_frame(fmt, packet);
            if (r == avutil.AVERROR_EOF) {
                break;
            }
            if (r < 0) {
                throw corrupt("it is truncated or corrupt", r);
            }
            try {
                if (packet.stream_index() == index) {
                    check(avcodec.avcodec_send_packet(codec, packet), "it holds audio that does not decode");
                    receive(samples);
                }
            } finally {
                avcodec.av_packet_unref(packet);
            }
        }
        if (!samples.full()) {
            check(avcodec.avcodec_send_packet(codec, null), "its last audio does not decode");
            receive(samples);
        }
        if (samples.count == 0) {
            throw new InvalidAudioException("The " + container.label + " file contains no audio samples.");
        }
        return new DecodedAudio(Arrays.copyOf(samples.data, samples.count), samples.rate);
    }

    /** Mono samples so far, at the first frame's rate, at most maxSeconds plus one frame. */
    private static final class Samples {
        final double maxSeconds;
        float[] data = new float[1 << 16];
        int count;
        int rate;
        int channels;
        int format = -1;

        Samples(double maxSeconds) {
            this.maxSeconds = maxSeconds;
        }

        boolean full() {
            return rate > 0 && count > maxSeconds * rate;
        }
    }

    private void receive(Samples samples) {
        while (!samples.full()) {
            int r = avcodec.avcodec_receive_frame(codec, frame);
            if (r == EAGAIN || r == avutil.AVERROR_EOF) {
                return;
            }
            check(r, "it holds audio that does not decode");
            try {
                append(samples);
            } finally {
                avutil.av_frame_unref(frame);
            }
        }
    }

    /** Converts the frame to interleaved float with swresample (any sample format), then mixes channels by their mean. */
    private void append(Samples samples) {
        int n = frame.nb_samples();
        int channels = frame.ch_layout().nb_channels();
        if (samples.format < 0) {
            AudioChecks.requirePlausibleRate(frame.sample_rate());
            if (channels < 1 || channels > AudioChecks.MAX_CHANNELS) {
                throw new ImplausibleAudioException("audio-channels", "Implausible channel count", "The recording has "
                        + channels + " channels; send mono or stereo.");
            }
            samples.rate = frame.sample_rate();
            samples.channels = channels;
            samples.format = frame.format();
            swr = new SwrContext(null);
            check(swresample.swr_alloc_set_opts2(swr, frame.ch_layout(), avutil.AV_SAMPLE_FMT_FLT, samples.rate,
                    frame.ch_layout(), samples.format, samples.rate, 0, null), "its samples could not be converted");
            check(swresample.swr_init(swr), "its samples could not be converted");
        } else if (frame.sample_rate() != samples.rate || channels != samples.channels || frame.format() != samples.format) {
            throw new InvalidAudioException("The " + container.label + " file changes its sample rate or channels midway; "
                    + "send one continuous recording.");
        }
        if (n <= 0) {
            return;
        }
        long needed = (long) n * channels;
        if (converted == null || converted.capacity() < needed) {
            if (converted != null) {
                converted.close();
            }
            converted = new FloatPointer(needed);
            if (out == null) {
                out = new PointerPointer<>(1);
            }
            out.put(0, converted);
        }
        int got = swresample.swr_convert(swr, out, n, frame.extended_data(), n);
        check(got, "its samples could not be converted");
        float[] interleaved = new float[got * channels];
        converted.position(0).get(interleaved);
        if (samples.count + got > samples.data.length) {
            samples.data = Arrays.copyOf(samples.data, Math.max(samples.count + got, samples.data.length * 2));
        }
        for (int i = 0; i < got; i++) {
            double sum = 0;
            for (int c = 0; c < channels; c++) {
                sum += interleaved[i * channels + c];
            }
            samples.data[samples.count++] = (float) (sum / channels);
        }
    }

    private void check(int result, String what) {
        if (result < 0) {
            throw corrupt(what, result);
        }
    }

    private InvalidAudioException corrupt(String what, int code) {
        return new InvalidAudioException("The " + container.label + " file could not be decoded: " + what + " ("
                + describe(code) + "). Send the recording as it was made, as " + AudioContainer.ACCEPTED + ".");
    }

    private static String describe(int code) {
        byte[] msg = new byte[128];
        avutil.av_strerror(code, msg, msg.length);
        int len = 0;
        while (len < msg.length && msg[len] != 0) {
            len++;
        }
        return new String(msg, 0, len, StandardCharsets.US_ASCII);
    }

    @Override
    public void close() {
        if (!closed.compareAndSet(false, true)) {
            return;
        }
        if (out != null) {
            out.close();
            out = null;
        }
        if (converted != null) {
            converted.close();
            converted = null;
        }
        if (swr != null) {
            swresample.swr_free(swr);
            swr = null;
        }
        if (frame != null) {
            avutil.av_frame_free(frame);
            frame = null;
        }
        if (packet != null) {
            avcodec.av_packet_free(packet);
            packet = null;
        }
        if (codec != null) {
            avcodec.avcodec_free_context(codec);
            codec = null;
        }
        if (fmt != null) {
            avformat.avformat_close_input(fmt);   // keeps our AVIOContext (custom IO)
            fmt = null;
        }
        if (io != null) {
            avutil.av_free(io.buffer());   // FFmpeg may have replaced the buffer we gave it
            io.buffer(null);
            avformat.avio_context_free(io);
            io = null;
        }
        if (key != 0) {
            SOURCES.remove(key);
            key = 0;
        }
    }
}
