package io.timbre.speaker;

import io.timbre.engine.SpeakerFeatures;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.zip.CRC32;
import java.util.zip.ZipEntry;
import java.util.zip.ZipOutputStream;

/**
 * torch.save files built by hand, byte by byte, as an attacker would: a zip of a protocol-2 pickle and storage
 * records, where every size, stride, offset, global and shared reference is whatever the test says. Independent
 * of the service's own writer, so tests do not check the reader against itself.
 */
final class CraftedPickles {
    /** A tensor: storage class, the element count its persistent id claims, the record's bytes, the view on it. */
    static final class T {
        String storageClass;
        String location = "cpu";
        long claim;
        byte[] data;
        long offset;
        long[] shape;
        long[] stride;
        String key;   // set when written

        T(String storageClass, byte[] data, long claim, long[] shape) {
            this.storageClass = storageClass;
            this.data = data;
            this.claim = claim;
            this.shape = shape;
            this.stride = dense(shape);
        }

        static long[] dense(long[] shape) {
            long[] s = new long[shape.length];
            long d = 1;
            for (int i = shape.length - 1; i >= 0; i--) {
                s[i] = d;
                d *= shape[i];
            }
            return s;
        }
    }

    /** Pickle bytes put in as they are (e.g. a call of a forbidden global). */
    record Raw(byte[] bytes) {
    }

    static T ints(int[] v, long... shape) {
        ByteBuffer b = ByteBuffer.allocate(v.length * 4).order(ByteOrder.LITTLE_ENDIAN);
        b.asIntBuffer().put(v);
        return new T("IntStorage", b.array(), v.length, shape);
    }

    static T floats(float[] v, long... shape) {
        ByteBuffer b = ByteBuffer.allocate(v.length * 4).order(ByteOrder.LITTLE_ENDIAN);
        b.asFloatBuffer().put(v);
        return new T("FloatStorage", b.array(), v.length, shape);
    }

    /** A CosyVoice add_zero_shot_spk entry of {@code d}; the llm_/flow_ twins are one object, as CosyVoice saves them. */
    static LinkedHashMap<String, Object> entry(SpeakerFeatures.Data d) {
        LinkedHashMap<String, Object> e = new LinkedHashMap<>();
        T tokens = ints(d.speechTokens(), 1, d.speechTokens().length);
        T emb = floats(d.embedding(), 1, d.embedding().length);
        e.put("prompt_text", ints(d.promptText(), 1, d.promptText().length));
        e.put("prompt_text_len", ints(new int[]{d.promptText().length}, 1));
        e.put("llm_prompt_speech_token", tokens);
        e.put("llm_prompt_speech_token_len", ints(new int[]{d.speechTokens().length}, 1));
        e.put("flow_prompt_speech_token", tokens);
        e.put("flow_prompt_speech_token_len", ints(new int[]{d.speechTokens().length}, 1));
        e.put("prompt_speech_feat", floats(d.speechFeat(), 1, d.frames(), 80));
        e.put("prompt_speech_feat_len", ints(new int[]{d.frames()}, 1));
        e.put("llm_embedding", emb);
        e.put("flow_embedding", emb);
        return e;
    }

    private final ByteArrayOutputStream pkl = new ByteArrayOutputStream();
    private final IdentityHashMap<Object, Integer> memo = new IdentityHashMap<>();
    private final LinkedHashMap<String, byte[]> storages = new LinkedHashMap<>();
    private final IdentityHashMap<byte[], String> storageKeys = new IdentityHashMap<>();

    /** The file: root is a Map (dicts nest), T, or Raw. */
    static byte[] file(Object root) {
        return new CraftedPickles().build(root);
    }

    private byte[] build(Object root) {
        op(0x80);
        op(2);
        value(root);
        op('.');
        LinkedHashMap<String, byte[]> records = new LinkedHashMap<>();
        records.put("archive/data.pkl", pkl.toByteArray());
        records.put("archive/byteorder", "little".getBytes(StandardCharsets.US_ASCII));
        storages.forEach((k, v) -> records.put("archive/data/" + k, v));
        records.put("archive/version", "3\n".getBytes(StandardCharsets.US_ASCII));
        return zip(records, false);
    }

    private void value(Object v) {
        Integer m = memo.get(v);
        if (m != null) {
            op('j');
            int32(m);
            return;
        }
        if (v instanceof Raw r) {
            pkl.writeBytes(r.bytes());
            return;
        }
        if (v instanceof Map<?, ?> d) {
            op('}');
            put(v);
            op('(');
            for (Map.Entry<?, ?> e : d.entrySet()) {
                string((String) e.getKey());
                value(e.getValue());
            }
            op('u');
            return;
        }
        T t = (T) v;
        global("torch._utils", "_rebuild_tensor_v2");
        op('(');
        op('(');
        string("storage");
        global("torch", t.storageClass);
        String key = storageKeys.get(t.data);   // the same byte[] is the same storage record
        if (key == null) {
            key = Integer.toString(storages.size());
            storages.put(key, t.data);
            storageKeys.put(t.data, key);
        }
        t.key = key;
        string(key);
        string(t.location);
        integer(t.claim);
        op('t');
        op('Q');
        integer(t.offset);
        tuple(t.shape);
        tuple(t.stride);
        op(0x89);
        global("collections", "OrderedDict");
        op(')');
        op('R');
        op('t');
        op('R');
        put(v);
    }

    private void put(Object v) {
        int m = memo.size();
        memo.put(v, m);
        op('r');
        int32(m);
    }

    private void tuple(long[] values) {
        op('(');
        for (long x : values) {
            integer(x);
        }
        op('t');
    }

    private void op(int b) {
        pkl.write(b);
    }

    private void int32(int v) {
        pkl.write(v);
        pkl.write(v >>> 8);
        pkl.write(v >>> 16);
        pkl.write(v >>> 24);
    }

    private void integer(long v) {
        op(0x8a);
        op(8);
        for (int i = 0; i < 8; i++) {
            pkl.write((int) (v >>> (8 * i)));
        }
    }

    private void string(String s) {
        byte[] b = s.getBytes(StandardCharsets.UTF_8);
        op('X');
        int32(b.length);
        pkl.writeBytes(b);
    }

    private void global(String module, String name) {
        op('c');
        pkl.writeBytes((module + "\n" + name + "\n").getBytes(StandardCharsets.US_ASCII));
    }

    /** {@code module.name(arg)} as a pickle REDUCE: what a malicious pickle uses to run code. */
    static Raw call(String module, String name, String arg) {
        CraftedPickles p = new CraftedPickles();
        p.global(module, name);
        p.op('(');
        p.string(arg);
        p.op('t');
        p.op('R');
        return new Raw(p.pkl.toByteArray());
    }

    /** A zip of the records, stored or deflated. */
    static byte[] zip(Map<String, byte[]> records, boolean deflate) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        try (ZipOutputStream zip = new ZipOutputStream(out)) {
            for (Map.Entry<String, byte[]> r : records.entrySet()) {
                ZipEntry e = new ZipEntry(r.getKey());
                if (!deflate) {
                    e.setMethod(ZipEntry.STORED);
                    e.setSize(r.getValue().length);
                    CRC32 crc = new CRC32();
                    crc.update(r.getValue());
                    e.setCrc(crc.getValue());
                }
                zip.putNextEntry(e);
                zip.write(r.getValue());
                zip.closeEntry();
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return out.toByteArray();
    }
}
