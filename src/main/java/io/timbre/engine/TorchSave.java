package io.timbre.engine;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Deque;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;
import java.util.zip.CRC32;
import java.util.zip.ZipEntry;
import java.util.zip.ZipInputStream;
import java.util.zip.ZipOutputStream;

/**
 * The {@code torch.save} zip format, read and written in Java so that LibTorch never parses uploaded bytes.
 * The reader is a restricted unpickler: it knows the opcodes that torch.save (pickle protocol 2) emits for
 * dicts of tensors, resolves only an allow-list of globals ({@code torch._utils._rebuild_tensor_v2},
 * {@code collections.OrderedDict}, {@code torch.FloatStorage/IntStorage/LongStorage}), never calls anything,
 * and checks every length against the bytes that are there. Tensors come back as {@link TensorRef}s: a
 * description (storage, offset, shape, strides) that the caller validates before it copies any element.
 * Storages tagged {@code cuda:N} are read like CPU ones (the bytes are the same).
 */
public final class TorchSave {
    private TorchSave() {
    }

    /** Bounds on one file; exceeding one is a {@link FeatureFileException} with {@code tooLarge} set. */
    public record Limits(long maxBytes, int maxZipEntries, int maxPickleOps) {
        public static Limits of(long maxBytes) {
            return new Limits(maxBytes, 100_000, 2_000_000);
        }
    }

    /** Element types the allow-list admits. */
    public enum DType {
        FLOAT("FloatStorage", 4), INT("IntStorage", 4), LONG("LongStorage", 8);

        final String storageClass;
        final int size;

        DType(String storageClass, int size) {
            this.storageClass = storageClass;
            this.size = size;
        }

        static DType ofStorageClass(String name) {
            for (DType d : values()) {
                if (d.storageClass.equals(name)) {
                    return d;
                }
            }
            return null;
        }
    }

    /** A storage named by a persistent id; {@code data} is its zip record (length already checked). */
    public record Storage(String key, DType dtype, String location, long numel, ByteBuffer data) {
    }

    /** A tensor as {@code _rebuild_tensor_v2} describes it; nothing is copied until {@link #ints()}/{@link #floats()}. */
    public static final class TensorRef {
        public final Storage storage;
        public final long offset;
        public final long[] shape;
        public final long[] stride;

        TensorRef(Storage storage, long offset, long[] shape, long[] stride) {
            this.storage = storage;
            this.offset = offset;
            this.shape = shape;
            this.stride = stride;
        }

        /** Elements, or -1 when the shape's product overflows. */
        public long numel() {
            long n = 1;
            for (long d : shape) {
                if (d != 0 && n > Long.MAX_VALUE / d) {
                    return -1;
                }
                n *= d;
            }
            return n;
        }

        /**
         * Null if the tensor is a dense row-major view that lies inside its storage; otherwise why not. Strides
         * of size-1 dimensions are free (torch writes sliced views so); every other stride must be the dense
         * one, so a zero or overlapping stride cannot make a few bytes look like many elements.
         */
        public String layoutProblem() {
            long held = storage.data().capacity() / storage.dtype().size;
            if (storage.numel() < 0 || storage.numel() != held || storage.data().capacity() % storage.dtype().size != 0) {
                return "has a storage that claims " + storage.numel() + " " + storage.dtype().name().toLowerCase()
                        + " elements but holds " + storage.data().capacity() + " bytes";
            }
            long n = numel();
            if (n < 0) {
                return "shape " + Arrays.toString(shape) + " overflows";
            }
            if (stride.length != shape.length) {
                return "has " + stride.length + " strides for " + shape.length + " dimensions";
            }
            long dense = 1;
            for (int i = shape.length - 1; i >= 0; i--) {
                if (shape[i] < 0) {
                    return "has a negative size";
                }
                if (shape[i] > 1 && stride[i] != dense) {
                    return "has strides " + Arrays.toString(stride) + " for shape " + Arrays.toString(shape)
                            + " (only dense row-major tensors are accepted)";
                }
                dense *= Math.max(1, shape[i]);
            }
            if (offset < 0 || offset > storage.numel() || n > storage.numel() - offset) {
                return "needs elements " + offset + ".." + (offset + n) + " of a storage of " + storage.numel();
            }
            return null;
        }

        public String shapeText() {
            return Arrays.toString(shape);
        }

        /** The elements as ints (int32 or int64 storages; int64 values must fit). Call after {@link #layoutProblem()}. */
        public int[] ints() {
            int n = Math.toIntExact(numel());
            int[] out = new int[n];
            ByteBuffer b = storage.data();
            for (int i = 0; i < n; i++) {
                long at = offset + i;
                if (storage.dtype() == DType.LONG) {
                    long v = b.getLong(Math.toIntExact(at * 8));
                    if (v < Integer.MIN_VALUE || v > Integer.MAX_VALUE) {
                        throw new FeatureFileException("value " + v + " does not fit an int32");
                    }
                    out[i] = (int) v;
                } else {
                    out[i] = b.getInt(Math.toIntExact(at * 4));
                }
            }
            return out;
        }

        /** The elements of a float32 storage. Call after {@link #layoutProblem()}. */
        public float[] floats() {
            int n = Math.toIntExact(numel());
            float[] out = new float[n];
            ByteBuffer b = storage.data();
            for (int i = 0; i < n; i++) {
                out[i] = b.getFloat(Math.toIntExact((offset + i) * 4));
            }
            return out;
        }
    }

    /** A global the allow-list admits. */
    private enum Global {
        REBUILD_TENSOR, ORDERED_DICT, STORAGE_CLASS
    }

    private record GlobalRef(Global kind, DType dtype, String name) {
    }

    private static final Object NULL = new Object();   // None on the stack and in the memo
    private static final Pattern LOCATION = Pattern.compile("cpu|cuda(:[0-9]{1,2})?");
    private static final Pattern STORAGE_KEY = Pattern.compile("[0-9]{1,9}");

    /**
     * Reads a torch.save file: the unpickled root object (String, Long, Boolean, null, List for tuples and
     * lists, LinkedHashMap with String keys for dicts, TensorRef for tensors). Shared references stay shared
     * objects, so the caller can see (and refuse) one tensor or dict under several names.
     */
    public static Object read(byte[] file, Limits limits) {
        if (file.length > limits.maxBytes()) {
            throw tooLarge("the file has " + file.length + " bytes; at most " + limits.maxBytes() + " are accepted");
        }
        Map<String, byte[]> records = unzip(file, limits);
        String pkl = null;
        for (String name : records.keySet()) {
            if (name.endsWith("/data.pkl") && name.indexOf('/') == name.length() - "/data.pkl".length()) {
                if (pkl != null) {
                    throw new FeatureFileException("the archive holds more than one data.pkl");
                }
                pkl = name;
            }
        }
        if (pkl == null) {
            throw new FeatureFileException("the archive has no <name>/data.pkl record (is it a torch.save file of PyTorch 1.6 or later?)");
        }
        String prefix = pkl.substring(0, pkl.length() - "data.pkl".length());
        byte[] order = records.get(prefix + "byteorder");
        if (order != null && !new String(order, StandardCharsets.US_ASCII).equals("little")) {
            throw new FeatureFileException("the file's byte order is not little-endian");
        }
        return new Unpickler(records.get(pkl), records, prefix, limits).load();
    }

    private static FeatureFileException tooLarge(String message) {
        return new FeatureFileException(message, true);
    }

    /** Every record of the zip, inflated under a cap on the total, names unique. */
    private static Map<String, byte[]> unzip(byte[] file, Limits limits) {
        Map<String, byte[]> out = new LinkedHashMap<>();
        long total = 0;
        byte[] buf = new byte[64 * 1024];
        try (ZipInputStream zip = new ZipInputStream(new ByteArrayInputStream(file))) {
            ZipEntry e;
            while ((e = zip.getNextEntry()) != null) {
                if (out.size() >= limits.maxZipEntries()) {
                    throw tooLarge("the archive has more than " + limits.maxZipEntries() + " records");
                }
                String name = e.getName();
                if (out.containsKey(name)) {
                    throw new FeatureFileException("the archive repeats the record " + name);
                }
                ByteArrayOutputStream data = new ByteArrayOutputStream();
                int n;
                while ((n = zip.read(buf)) > 0) {
                    total += n;
                    if (total > limits.maxBytes()) {
                        throw tooLarge("the archive inflates to more than " + limits.maxBytes() + " bytes");
                    }
                    data.write(buf, 0, n);
                }
                out.put(name, data.toByteArray());
            }
        } catch (IOException | IllegalArgumentException e) {   // in memory: every I/O error is the file's
            throw new FeatureFileException("not a readable torch.save file (zip): " + e.getMessage());
        }
        if (out.isEmpty()) {
            throw new FeatureFileException("not a readable torch.save file: no zip records");
        }
        return out;
    }

    /** Pickle protocol 2 (and the few protocol 4 framing opcodes), restricted to what torch.save writes. */
    private static final class Unpickler {
        private final ByteBuffer in;
        private final Map<String, byte[]> records;
        private final String prefix;
        private final Limits limits;
        private final ArrayList<Object> stack = new ArrayList<>();
        private final Deque<Integer> marks = new ArrayDeque<>();   // stack sizes at each MARK
        private final Map<Integer, Object> memo = new HashMap<>();
        private final Map<String, Storage> storages = new HashMap<>();
        private int ops;

        Unpickler(byte[] pkl, Map<String, byte[]> records, String prefix, Limits limits) {
            this.in = ByteBuffer.wrap(pkl).order(ByteOrder.LITTLE_ENDIAN);
            this.records = records;
            this.prefix = prefix;
            this.limits = limits;
        }

        Object load() {
            try {
                while (true) {
                    if (++ops > limits.maxPickleOps()) {
                        throw tooLarge("the pickle has more than " + limits.maxPickleOps() + " operations");
                    }
                    int op = in.get() & 0xff;
                    switch (op) {
                        case 0x80 -> { // PROTO
                            int v = in.get() & 0xff;
                            if (v > 5) {
                                throw bad("pickle protocol " + v + " is not supported");
                            }
                        }
                        case 0x95 -> in.getLong(); // FRAME: the length is only a hint
                        case '.' -> { // STOP
                            if (stack.size() != 1 || !marks.isEmpty()) {
                                throw bad("the pickle ends with " + stack.size() + " values on its stack");
                            }
                            return pop();
                        }
                        case '(' -> { // MARK
                            marks.push(stack.size());
                        }
                        case '}' -> push(new LinkedHashMap<String, Object>());
                        case ']', ')' -> push(op == ']' ? new ArrayList<>() : List.of());
                        case 't' -> push(List.copyOf(popMark()));
                        case 0x85 -> push(List.of(pop()));
                        case 0x86 -> {
                            Object b = pop();
                            push(List.of(pop(), b));
                        }
                        case 0x87 -> {
                            Object c = pop();
                            Object b = pop();
                            push(List.of(pop(), b, c));
                        }
                        case 'q' -> memoPut(in.get() & 0xff);
                        case 'r' -> memoPut(in.getInt());
                        case 0x94 -> memoPut(memo.size());
                        case 'h' -> memoGet(in.get() & 0xff);
                        case 'j' -> memoGet(in.getInt());
                        case 'X' -> push(text(in.getInt()));
                        case 0x8c -> push(text(in.get() & 0xff));
                        case 'J' -> push((long) in.getInt());
                        case 'K' -> push((long) (in.get() & 0xff));
                        case 'M' -> push((long) (in.getShort() & 0xffff));
                        case 0x8a -> push(long1(in.get() & 0xff));
                        case 0x88 -> push(Boolean.TRUE);
                        case 0x89 -> push(Boolean.FALSE);
                        case 'N' -> push(null);
                        case 'c' -> push(global(line(), line()));
                        case 0x93 -> {
                            Object name = pop();
                            Object module = pop();
                            if (!(module instanceof String m) || !(name instanceof String n)) {
                                throw bad("STACK_GLOBAL needs two strings");
                            }
                            push(global(m, n));
                        }
                        case 'Q' -> push(persistent(pop()));
                        case 'R' -> {
                            Object args = pop();
                            push(reduce(pop(), args));
                        }
                        case 's' -> {
                            Object v = pop();
                            Object k = pop();
                            setItem(peek(), k, v);
                        }
                        case 'u' -> {
                            List<Object> items = popMark();
                            Object dict = peek();
                            if (items.size() % 2 != 0) {
                                throw bad("SETITEMS with an odd number of values");
                            }
                            for (int i = 0; i < items.size(); i += 2) {
                                setItem(dict, items.get(i), items.get(i + 1));
                            }
                        }
                        case 'a' -> {
                            Object v = pop();
                            list(peek()).add(v);
                        }
                        case 'e' -> {
                            List<Object> items = popMark();
                            list(peek()).addAll(items);
                        }
                        default -> throw bad(String.format("pickle opcode 0x%02x is not allowed in a feature file", op));
                    }
                }
            } catch (java.nio.BufferUnderflowException e) {
                throw new FeatureFileException("the pickle data.pkl is truncated");
            }
        }

        private FeatureFileException bad(String message) {
            return new FeatureFileException(message);
        }

        private void push(Object o) {
            stack.add(o == null ? NULL : o);
        }

        private int floor() {
            return marks.isEmpty() ? 0 : marks.peek();
        }

        private Object pop() {
            if (stack.size() <= floor()) {
                throw bad("the pickle pops an empty stack");
            }
            Object o = stack.remove(stack.size() - 1);
            return o == NULL ? null : o;
        }

        private Object peek() {
            if (stack.size() <= floor()) {
                throw bad("the pickle reads an empty stack");
            }
            Object o = stack.get(stack.size() - 1);
            return o == NULL ? null : o;
        }

        /** The values pushed since the last MARK, oldest first; the stack is cut back to the mark. */
        private List<Object> popMark() {
            if (marks.isEmpty()) {
                throw bad("the pickle has no MARK to pop to");
            }
            List<Object> tail = stack.subList(marks.pop(), stack.size());
            List<Object> items = new ArrayList<>(tail.size());
            for (Object o : tail) {
                items.add(o == NULL ? null : o);
            }
            tail.clear();
            return items;
        }

        private void memoPut(int index) {
            if (index < 0 || index > limits.maxPickleOps()) {
                throw bad("memo index " + index + " out of range");
            }
            Object top = peek();
            memo.put(index, top == null ? NULL : top);
        }

        private void memoGet(int index) {
            Object o = memo.get(index);
            if (o == null) {
                throw bad("the pickle refers to memo " + index + " before it is stored");
            }
            stack.add(o);
        }

        private String text(int length) {
            if (length < 0 || length > in.remaining() || length > 1 << 20) {
                throw bad("a string claims " + Integer.toUnsignedString(length) + " bytes; " + in.remaining() + " remain");
            }
            byte[] b = new byte[length];
            in.get(b);
            try {
                return StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                        .decode(ByteBuffer.wrap(b)).toString();
            } catch (CharacterCodingException e) {
                throw bad("a string is not UTF-8");
            }
        }

        private String line() {
            StringBuilder sb = new StringBuilder();
            while (true) {
                byte b = in.get();
                if (b == '\n') {
                    return sb.toString();
                }
                if (sb.length() > 200 || b < 0x20 || b > 0x7e) {
                    throw bad("a GLOBAL name is not a short printable name");
                }
                sb.append((char) b);
            }
        }

        private long long1(int n) {
            if (n > 8) {
                throw bad("an integer of " + n + " bytes is too large");
            }
            long v = 0;
            for (int i = 0; i < n; i++) {
                v |= (in.get() & 0xffL) << (8 * i);
            }
            if (n > 0 && n < 8 && (v & (1L << (8 * n - 1))) != 0) {
                v -= 1L << (8 * n);   // sign-extend
            }
            return v;
        }

        private GlobalRef global(String module, String name) {
            String full = module + "." + name;
            if (full.equals("torch._utils._rebuild_tensor_v2")) {
                return new GlobalRef(Global.REBUILD_TENSOR, null, full);
            }
            if (full.equals("collections.OrderedDict")) {
                return new GlobalRef(Global.ORDERED_DICT, null, full);
            }
            DType d = module.equals("torch") ? DType.ofStorageClass(name) : null;
            if (d != null) {
                return new GlobalRef(Global.STORAGE_CLASS, d, full);
            }
            throw bad("the pickle names '" + full + "', which a feature file may not use (allowed: "
                    + "torch._utils._rebuild_tensor_v2, collections.OrderedDict, torch.FloatStorage, torch.IntStorage, torch.LongStorage)");
        }

        private Storage persistent(Object pid) {
            if (!(pid instanceof List<?> t) || t.size() != 5 || !"storage".equals(t.get(0))
                    || !(t.get(1) instanceof GlobalRef g) || g.kind() != Global.STORAGE_CLASS
                    || !(t.get(2) instanceof String key) || !(t.get(3) instanceof String location)
                    || !(t.get(4) instanceof Long numel)) {
                throw bad("a persistent id is not ('storage', torch.<Type>Storage, key, location, numel)");
            }
            if (!STORAGE_KEY.matcher(key).matches()) {
                throw bad("storage key '" + key + "' is not a number");
            }
            if (!LOCATION.matcher(location).matches()) {
                throw bad("storage location '" + location + "' is not cpu or cuda:N");
            }
            Storage known = storages.get(key);
            if (known != null) {
                if (known.dtype() != g.dtype() || known.numel() != numel) {
                    throw bad("storage " + key + " is declared twice with different types or sizes");
                }
                return known;
            }
            byte[] data = records.get(prefix + "data/" + key);
            if (data == null) {
                throw bad("storage " + key + " has no record " + prefix + "data/" + key);
            }
            Storage s = new Storage(key, g.dtype(), location, numel, ByteBuffer.wrap(data).order(ByteOrder.LITTLE_ENDIAN));
            storages.put(key, s);
            return s;
        }

        private Object reduce(Object callable, Object args) {
            if (!(callable instanceof GlobalRef g) || !(args instanceof List<?> a)) {
                throw bad("REDUCE of something that is not an allowed global");
            }
            switch (g.kind()) {
                case ORDERED_DICT -> {
                    if (!a.isEmpty()) {
                        throw bad("collections.OrderedDict is only accepted empty");
                    }
                    return new LinkedHashMap<String, Object>();
                }
                case REBUILD_TENSOR -> {
                    // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
                    if (a.size() < 6 || a.size() > 7 || !(a.get(0) instanceof Storage s) || !(a.get(1) instanceof Long offset)
                            || !(a.get(4) instanceof Boolean) || !(a.get(5) instanceof Map<?, ?> hooks) || !hooks.isEmpty()
                            || (a.size() == 7 && a.get(6) != null && !(a.get(6) instanceof Map<?, ?> meta && meta.isEmpty()))) {
                        throw bad("_rebuild_tensor_v2 called with unexpected arguments");
                    }
                    return new TensorRef(s, offset, longs(a.get(2), "size"), longs(a.get(3), "stride"));
                }
                default -> throw bad("'" + g.name() + "' may not be called");
            }
        }

        private long[] longs(Object o, String what) {
            if (!(o instanceof List<?> l) || l.size() > 8) {
                throw bad("a tensor's " + what + " is not a tuple of at most 8 integers");
            }
            long[] out = new long[l.size()];
            for (int i = 0; i < out.length; i++) {
                if (!(l.get(i) instanceof Long v)) {
                    throw bad("a tensor's " + what + " is not a tuple of integers");
                }
                out[i] = v;
            }
            return out;
        }

        @SuppressWarnings("unchecked")
        private void setItem(Object dict, Object key, Object value) {
            if (!(dict instanceof LinkedHashMap<?, ?> d)) {
                throw bad("SETITEM on something that is not a dict");
            }
            if (!(key instanceof String k)) {
                throw bad("a dict key is not a string");
            }
            Map<String, Object> m = (Map<String, Object>) d;
            if (m.containsKey(k)) {
                throw bad("the key '" + k + "' is repeated");
            }
            m.put(k, value);
        }

        @SuppressWarnings("unchecked")
        private List<Object> list(Object o) {
            if (!(o instanceof ArrayList<?> l)) {
                throw bad("APPEND on something that is not a list");
            }
            return (List<Object>) l;
        }
    }

    // ---------------------------------------------------------------------------------------------- writer

    /** A tensor to write: int32 or float32 elements and a shape. */
    public record Array(DType dtype, int[] ints, float[] floats, long[] shape) {
        public static Array ofInts(int[] v, long... shape) {
            return new Array(DType.INT, v, null, shape);
        }

        public static Array ofFloats(float[] v, long... shape) {
            return new Array(DType.FLOAT, null, v, shape);
        }

        int length() {
            return dtype == DType.INT ? ints.length : floats.length;
        }
    }

    /**
     * Writes a dict of tensors as torch.save does (zip of stored records: data.pkl, data/N, version), readable by
     * Python's torch.load and by {@link #read}. Keys mapped to the same {@link Array} object share one tensor,
     * as CosyVoice's llm_ and flow_ keys do. Byte-for-byte deterministic.
     */
    public static byte[] write(String archive, LinkedHashMap<String, Array> dict) {
        Pickle p = new Pickle();
        Map<Array, Integer> memoOf = new java.util.IdentityHashMap<>();
        List<Array> storages = new ArrayList<>();
        p.op(0x80).op(2).op('}').op('(');
        for (Map.Entry<String, Array> e : dict.entrySet()) {
            p.string(e.getKey());
            Array a = e.getValue();
            Integer memo = memoOf.get(a);
            if (memo != null) {
                p.op('j').int32(memo);
                continue;
            }
            int key = storages.size();
            storages.add(a);
            p.global("torch._utils", "_rebuild_tensor_v2").op('(');
            p.op('(').string("storage").global("torch", a.dtype().storageClass).string(Integer.toString(key))
                    .string("cpu").integer(a.length()).op('t').op('Q');
            p.integer(0).op('(');
            for (long d : a.shape()) {
                p.integer(d);
            }
            p.op('t').op('(');
            long dense = 1;
            long[] stride = new long[a.shape().length];
            for (int i = stride.length - 1; i >= 0; i--) {
                stride[i] = dense;
                dense *= a.shape()[i];
            }
            for (long s : stride) {
                p.integer(s);
            }
            p.op('t').op(0x89).global("collections", "OrderedDict").op(')').op('R').op('t').op('R');
            int m = p.nextMemo++;
            p.op('r').int32(m);
            memoOf.put(a, m);
        }
        p.op('u').op('.');
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        try (ZipOutputStream zip = new ZipOutputStream(out)) {
            stored(zip, archive + "/data.pkl", p.bytes());
            stored(zip, archive + "/byteorder", "little".getBytes(StandardCharsets.US_ASCII));
            for (int i = 0; i < storages.size(); i++) {
                Array a = storages.get(i);
                ByteBuffer b = ByteBuffer.allocate(a.length() * 4).order(ByteOrder.LITTLE_ENDIAN);
                if (a.dtype() == DType.INT) {
                    b.asIntBuffer().put(a.ints());
                } else {
                    b.asFloatBuffer().put(a.floats());
                }
                stored(zip, archive + "/data/" + i, b.array());
            }
            stored(zip, archive + "/version", "3\n".getBytes(StandardCharsets.US_ASCII));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return out.toByteArray();
    }

    private static void stored(ZipOutputStream zip, String name, byte[] data) throws IOException {
        ZipEntry e = new ZipEntry(name);
        e.setMethod(ZipEntry.STORED);
        e.setSize(data.length);
        e.setCompressedSize(data.length);
        CRC32 crc = new CRC32();
        crc.update(data);
        e.setCrc(crc.getValue());
        e.setTime(315532800000L + 86_400_000L);   // fixed (1980-01-02): reproducible bytes
        zip.putNextEntry(e);
        zip.write(data);
        zip.closeEntry();
    }

    /** Pickle protocol 2 opcodes, the few the writer needs. */
    private static final class Pickle {
        private final ByteArrayOutputStream out = new ByteArrayOutputStream();
        int nextMemo;

        Pickle op(int b) {
            out.write(b);
            return this;
        }

        Pickle int32(int v) {
            out.write(v);
            out.write(v >>> 8);
            out.write(v >>> 16);
            out.write(v >>> 24);
            return this;
        }

        Pickle string(String s) {
            byte[] b = s.getBytes(StandardCharsets.UTF_8);
            op('X').int32(b.length);
            out.writeBytes(b);
            return this;
        }

        Pickle integer(long v) {
            if (v >= 0 && v < 256) {
                return op('K').op((int) v);
            }
            if (v >= Integer.MIN_VALUE && v <= Integer.MAX_VALUE) {
                return op('J').int32((int) v);
            }
            op(0x8a).op(8);
            for (int i = 0; i < 8; i++) {
                out.write((int) (v >>> (8 * i)));
            }
            return this;
        }

        Pickle global(String module, String name) {
            op('c');
            out.writeBytes((module + "\n" + name + "\n").getBytes(StandardCharsets.US_ASCII));
            return this;
        }

        byte[] bytes() {
            return out.toByteArray();
        }
    }
}
