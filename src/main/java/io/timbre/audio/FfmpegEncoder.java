package io.timbre.audio;

import org.bytedeco.ffmpeg.avcodec.AVCodec;
import org.bytedeco.ffmpeg.avcodec.AVCodecContext;
import org.bytedeco.ffmpeg.avcodec.AVPacket;
import org.bytedeco.ffmpeg.avformat.AVFormatContext;
import org.bytedeco.ffmpeg.avformat.AVIOContext;
import org.bytedeco.ffmpeg.avformat.AVStream;
import org.bytedeco.ffmpeg.avformat.Write_packet_Pointer_BytePointer_int;
import org.bytedeco.ffmpeg.avutil.AVDictionary;
import org.bytedeco.ffmpeg.avutil.AVFrame;
import org.bytedeco.ffmpeg.avutil.AVRational;
import org.bytedeco.ffmpeg.global.avcodec;
import org.bytedeco.ffmpeg.global.avformat;
import org.bytedeco.ffmpeg.global.avutil;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.Pointer;
import org.bytedeco.javacpp.ShortPointer;

import java.io.IOException;
import java.io.OutputStream;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Encodes mono float samples into a compressed {@link SpeechFormat} with FFmpeg (libmp3lame, libopus, the native
 * FLAC and AAC encoders) and its muxers (mp3, ogg, flac, adts), writing the container bytes to an
 * {@link OutputStream} through a custom, non-seekable AVIOContext. Incremental: {@link #write(float[])} any number
 * of times (each call pushes out the bytes encoded so far, so a streamed response can reuse this), then
 * {@link #finish()} once; {@link #close()} frees every FFmpeg object. Not thread-safe: one encoder per response.
 */
public final class FfmpegEncoder implements AudioWriter {
    private final java.util.concurrent.atomic.AtomicBoolean closed = new java.util.concurrent.atomic.AtomicBoolean();
    private static final int EAGAIN = -11;
    private static final int AVFMT_FLAG_CUSTOM_IO = 0x0080;
    private static final int IO_BUFFER = 16 * 1024;

    /** Sinks by the address of their AVFormatContext: one native callback serves every encoder. */
    private static final Map<Long, Sink> SINKS = new ConcurrentHashMap<>();
    private static volatile WriteCallback callback;

    private static final class Sink {
        final OutputStream out;
        IOException failure;

        Sink(OutputStream out) {
            this.out = out;
        }
    }

    private static final class WriteCallback extends Write_packet_Pointer_BytePointer_int {
        @Override
        public int call(Pointer opaque, BytePointer buf, int size) {
            Sink sink = SINKS.get(opaque.address());
            if (sink == null) {
                return avutil.AVERROR_EXTERNAL;
            }
            try {
                byte[] bytes = new byte[size];
                buf.get(bytes, 0, size);
                sink.out.write(bytes);
                return size;
            } catch (IOException e) {
                sink.failure = e;
                return avutil.AVERROR_EXTERNAL;
            } catch (RuntimeException e) {
                sink.failure = new IOException(e);
                return avutil.AVERROR_EXTERNAL;
            }
        }
    }

    private static WriteCallback callback() {
        WriteCallback c = callback;
        if (c == null) {
            synchronized (FfmpegEncoder.class) {
                if (callback == null) {
                    callback = new WriteCallback().retainReference();
                }
                c = callback;
            }
        }
        return c;
    }

    private final SpeechFormat format;
    private final Sink sink;
    private AVFormatContext fmt;
    private AVIOContext io;
    private AVCodecContext codec;
    private AVStream stream;
    private AVFrame frame;
    private AVPacket packet;
    private final int frameSize;
    private final boolean planarFloat;
    private final float[] pending;
    private int pendingCount;
    private long pts;
    private boolean finished;

    private FfmpegEncoder(SpeechFormat format, int sampleRate, OutputStream out) {
        NativeFfmpeg.ensureLoaded();
        this.format = format;
        this.sink = new Sink(out);
        boolean ok = false;
        try {
            AVCodec encoder = avcodec.avcodec_find_encoder_by_name(format.encoder);
            if (encoder == null) {
                throw new IllegalStateException("FFmpeg has no encoder " + format.encoder);
            }
            fmt = new AVFormatContext(null);
            check(avformat.avformat_alloc_output_context2(fmt, null, format.muxer, null), "allocate the " + format.muxer + " muxer");
            SINKS.put(fmt.address(), sink);
            BytePointer buffer = new BytePointer(avutil.av_malloc(IO_BUFFER));
            io = avformat.avio_alloc_context(buffer, IO_BUFFER, 1, fmt, null, callback(), null);
            if (io == null) {
                avutil.av_free(buffer);
                throw new IllegalStateException("FFmpeg could not allocate an AVIOContext");
            }
            io.seekable(0);
            fmt.pb(io);
            fmt.flags(fmt.flags() | AVFMT_FLAG_CUSTOM_IO);

            codec = avcodec.avcodec_alloc_context3(encoder);
            planarFloat = format == SpeechFormat.AAC;
            codec.sample_fmt(switch (format) {
                case MP3 -> avutil.AV_SAMPLE_FMT_S16P;
                case AAC -> avutil.AV_SAMPLE_FMT_FLTP;
                default -> avutil.AV_SAMPLE_FMT_S16;
            });
            codec.sample_rate(sampleRate);
            avutil.av_channel_layout_default(codec.ch_layout(), 1);
            codec.time_base().num(1).den(sampleRate);
            if (format.bitRate > 0) {
                codec.bit_rate(format.bitRate);
            }
            if ((fmt.oformat().flags() & avformat.AVFMT_GLOBALHEADER) != 0) {
                codec.flags(codec.flags() | avcodec.AV_CODEC_FLAG_GLOBAL_HEADER);
            }
            check(avcodec.avcodec_open2(codec, encoder, (AVDictionary) null), "open the " + format.encoder + " encoder");
            stream = avformat.avformat_new_stream(fmt, null);
            if (stream == null) {
                throw new IllegalStateException("FFmpeg could not add a stream");
            }
            stream.time_base().num(1).den(sampleRate);
            check(avcodec.avcodec_parameters_from_context(stream.codecpar(), codec), "copy the codec parameters");
            check(avformat.avformat_write_header(fmt, (AVDictionary) null), "write the " + format.muxer + " header");

            frameSize = codec.frame_size() > 0 ? codec.frame_size() : 4096;
            pending = new float[frameSize];
            frame = avutil.av_frame_alloc();
            frame.nb_samples(frameSize);
            frame.format(codec.sample_fmt());
            frame.sample_rate(sampleRate);
            check(avutil.av_channel_layout_copy(frame.ch_layout(), codec.ch_layout()), "set the frame layout");
            check(avutil.av_frame_get_buffer(frame, 0), "allocate a frame");
            packet = avcodec.av_packet_alloc();
            ok = true;
        } finally {
            if (!ok) {
                close();
            }
        }
    }

    /** Opens an encoder that writes {@code format}'s container to {@code out}; the header is written at once. */
    public static FfmpegEncoder open(SpeechFormat format, int sampleRate, OutputStream out) throws IOException {
        if (!format.compressed()) {
            throw new IllegalArgumentException(format.apiName() + " is not encoded with FFmpeg");
        }
        FfmpegEncoder e = new FfmpegEncoder(format, sampleRate, out);
        e.failed();
        return e;
    }

    /** Encodes the samples (any count; whole codec frames go out now, the rest waits) and flushes the output. */
    @Override
    public void write(float[] samples) throws IOException {
        if (finished) {
            throw new IllegalStateException("already finished");
        }
        int i = 0;
        while (i < samples.length) {
            int n = Math.min(frameSize - pendingCount, samples.length - i);
            System.arraycopy(samples, i, pending, pendingCount, n);
            pendingCount += n;
            i += n;
            if (pendingCount == frameSize) {
                sendPending();
            }
        }
        avformat.avio_flush(io);
        failed();
    }

    /** Encodes what is left, drains the encoder and writes the trailer. */
    @Override
    public void finish() throws IOException {
        if (finished) {
            return;
        }
        finished = true;
        if (pendingCount > 0) {
            if ((codec.codec().capabilities() & avcodec.AV_CODEC_CAP_SMALL_LAST_FRAME) == 0) {
                java.util.Arrays.fill(pending, pendingCount, frameSize, 0f);   // pad with silence
                pendingCount = frameSize;
            }
            sendPending();
        }
        check(avcodec.avcodec_send_frame(codec, null), "flush the encoder");
        drain();
        check(avformat.av_write_trailer(fmt), "write the trailer");
        avformat.avio_flush(io);
        failed();
    }

    private void sendPending() throws IOException {
        check(avutil.av_frame_make_writable(frame), "make the frame writable");
        frame.nb_samples(pendingCount);
        if (planarFloat) {
            new FloatPointer(frame.data(0)).put(sanitised(pending, pendingCount), 0, pendingCount);
        } else {
            short[] s = new short[pendingCount];
            for (int k = 0; k < pendingCount; k++) {
                s[k] = WavCodec.toPcm16(pending[k]);
            }
            new ShortPointer(frame.data(0)).put(s, 0, pendingCount);
        }
        frame.pts(pts);
        pts += pendingCount;
        pendingCount = 0;
        check(avcodec.avcodec_send_frame(codec, frame), "encode a frame");
        drain();
    }

    private static float[] sanitised(float[] x, int n) {
        float[] out = new float[n];
        for (int k = 0; k < n; k++) {
            float v = x[k];
            out[k] = Float.isNaN(v) ? 0f : Math.max(-1f, Math.min(1f, v));
        }
        return out;
    }

    private void drain() throws IOException {
        while (true) {
            int r = avcodec.avcodec_receive_packet(codec, packet);
            if (r == EAGAIN || r == avutil.AVERROR_EOF) {
                return;
            }
            check(r, "receive a packet");
            avcodec.av_packet_rescale_ts(packet, codec.time_base(), stream.time_base());
            packet.stream_index(stream.index());
            int w = avformat.av_interleaved_write_frame(fmt, packet);   // takes the packet's reference
            failed();
            check(w, "write a packet");
        }
    }

    private void failed() throws IOException {
        if (sink.failure != null) {
            throw sink.failure;
        }
    }

    private void check(int result, String what) {
        if (result < 0) {
            byte[] msg = new byte[256];
            avutil.av_strerror(result, msg, msg.length);
            int len = 0;
            while (len < msg.length && msg[len] != 0) {
                len++;
            }
            throw new IllegalStateException("FFmpeg (" + format.apiName() + ") could not " + what + ": "
                    + new String(msg, 0, len, java.nio.charset.StandardCharsets.US_ASCII) + " (" + result + ")");
        }
    }

    @Override
    public void close() {
        if (!closed.compareAndSet(false, true)) {
            return;
        }
        if (packet != null) {
            avcodec.av_packet_free(packet);
            packet = null;
        }
        if (frame != null) {
            avutil.av_frame_free(frame);
            frame = null;
        }
        if (codec != null) {
            avcodec.avcodec_free_context(codec);
            codec = null;
        }
        if (io != null) {
            avutil.av_free(io.buffer());   // FFmpeg may have replaced the buffer we gave it
            io.buffer(null);
            avformat.avio_context_free(io);
            io = null;
        }
        if (fmt != null) {
            SINKS.remove(fmt.address());
            if (!fmt.isNull()) {
                fmt.pb(null);
                avformat.avformat_free_context(fmt);
            }
            fmt = null;
        }
    }
}
