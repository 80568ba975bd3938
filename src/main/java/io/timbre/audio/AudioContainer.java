package io.timbre.audio;

import org.bytedeco.ffmpeg.global.avcodec;

import java.nio.charset.StandardCharsets;
import java.util.Set;

/**
 * The allow-list of upload containers, each recognised by its magic bytes before any parser sees it, with the one
 * FFmpeg demuxer that may read it and the codecs it may carry. Nothing else is decoded: FFmpeg never probes.
 */
public enum AudioContainer {
    /** RIFF/WAVE, read by {@link WavCodec} (the JDK's reader), never by FFmpeg. */
    WAV("WAV", null, Set.of()),
    MP3("MP3", "mp3", Set.of(avcodec.AV_CODEC_ID_MP3)),
    /** Raw AAC in ADTS frames. */
    AAC("AAC (ADTS)", "aac", Set.of(avcodec.AV_CODEC_ID_AAC)),
    /** MP4/M4A/3GP (phones, Safari's MediaRecorder). */
    MP4("M4A/MP4", "mov", Set.of(avcodec.AV_CODEC_ID_AAC, avcodec.AV_CODEC_ID_OPUS)),
    OGG("Ogg", "ogg", Set.of(avcodec.AV_CODEC_ID_OPUS, avcodec.AV_CODEC_ID_VORBIS, avcodec.AV_CODEC_ID_FLAC)),
    FLAC("FLAC", "flac", Set.of(avcodec.AV_CODEC_ID_FLAC)),
    /** WebM/Matroska (Chrome's and Firefox's MediaRecorder). */
    WEBM("WebM", "matroska", Set.of(avcodec.AV_CODEC_ID_OPUS, avcodec.AV_CODEC_ID_VORBIS));

    /** What an upload may be, for messages. */
    public static final String ACCEPTED = "WAV, MP3, M4A (AAC), Ogg (Opus, Vorbis), FLAC or WebM (Opus, Vorbis)";
    /** FFmpeg's names of the demuxers above (its format_whitelist). */
    static final String DEMUXERS = "mp3,aac,mov,ogg,flac,matroska";
    /** FFmpeg's names of the decoders of the codecs above (its codec_whitelist). */
    static final Set<String> DECODERS = Set.of("mp3float", "mp3", "aac", "aac_fixed", "opus", "libopus", "vorbis",
            "libvorbis", "flac");

    final String label;
    final String demuxer;
    final Set<Integer> codecs;

    AudioContainer(String label, String demuxer, Set<Integer> codecs) {
        this.label = label;
        this.demuxer = demuxer;
        this.codecs = codecs;
    }

    /** The container the first bytes announce; {@code null} if none on the allow-list does. */
    public static AudioContainer sniff(byte[] b) {
        if (b == null || b.length < 12) {
            return null;
        }
        if (ascii(b, 0, "RIFF") && ascii(b, 8, "WAVE")) {
            return WAV;
        }
        if (ascii(b, 0, "fLaC")) {
            return FLAC;
        }
        if (ascii(b, 0, "OggS")) {
            return OGG;
        }
        if ((b[0] & 0xFF) == 0x1A && (b[1] & 0xFF) == 0x45 && (b[2] & 0xFF) == 0xDF && (b[3] & 0xFF) == 0xA3) {
            return WEBM;   // EBML header
        }
        if (ascii(b, 4, "ftyp")) {
            return MP4;
        }
        if (ascii(b, 0, "ID3")) {
            return MP3;    // ID3v2 tag, then MPEG audio frames
        }
        int b0 = b[0] & 0xFF;
        int b1 = b[1] & 0xFF;
        if (b0 == 0xFF && (b1 & 0xF6) == 0xF0) {
            return AAC;    // ADTS sync word, layer 0
        }
        if (b0 == 0xFF && (b1 & 0xE0) == 0xE0 && (b1 & 0x06) == 0x02) {
            return MP3;    // MPEG frame sync, layer III
        }
        return null;
    }

    private static boolean ascii(byte[] data, int offset, String text) {
        byte[] t = text.getBytes(StandardCharsets.US_ASCII);
        for (int i = 0; i < t.length; i++) {
            if (data[offset + i] != t[i]) {
                return false;
            }
        }
        return true;
    }
}
