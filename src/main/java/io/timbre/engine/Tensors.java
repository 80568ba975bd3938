package io.timbre.engine;

import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.IValue;
import org.bytedeco.pytorch.IValueVector;
import org.bytedeco.pytorch.MemoryFormatOptional;
import org.bytedeco.pytorch.Method;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptions;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * Conversions between Java arrays and tensors, and calls into TorchScript methods. Everything created here
 * attaches to the caller's current PointerScope; nothing here owns memory beyond that.
 */
public final class Tensors {
    private Tensors() {
    }

    public static Tensor floats(float[] data, long... shape) {
        Tensor t = torch.empty(shape, new TensorOptions(ScalarType.Float), new MemoryFormatOptional());
        t.data_ptr_float().put(data);
        return t;
    }

    public static Tensor longs(long[] data, long... shape) {
        Tensor t = torch.empty(shape, new TensorOptions(ScalarType.Long), new MemoryFormatOptional());
        t.data_ptr_long().put(data);
        return t;
    }

    public static Tensor ints(int[] data, long... shape) {
        Tensor t = torch.empty(shape, new TensorOptions(ScalarType.Int), new MemoryFormatOptional());
        t.data_ptr_int().put(data);
        return t;
    }

    public static Tensor on(Tensor t, Device device) {
        return device.is_cpu() ? t : t.to(device, t.scalar_type());
    }

    public static float[] toFloats(Tensor t) {
        Tensor c = cpu(t, ScalarType.Float);
        float[] out = new float[(int) c.numel()];
        c.data_ptr_float().get(out);
        return out;
    }

    public static long[] toLongs(Tensor t) {
        Tensor c = cpu(t, ScalarType.Long);
        long[] out = new long[(int) c.numel()];
        c.data_ptr_long().get(out);
        return out;
    }

    public static int[] toInts(Tensor t) {
        Tensor c = cpu(t, ScalarType.Int);
        int[] out = new int[(int) c.numel()];
        c.data_ptr_int().get(out);
        return out;
    }

    /** t as a contiguous float32 CPU tensor (t itself when it already is one). */
    public static Tensor cpuContiguous(Tensor t) {
        return cpu(t, ScalarType.Float);
    }

    /**
     * A direct buffer over the memory of a contiguous float32 CPU tensor (no copy): valid while the tensor is, so
     * only inside the scope that holds it. ONNX Runtime reads direct buffers in place.
     */
    public static java.nio.FloatBuffer floatBuffer(Tensor t) {
        // by value: under Quarkus' test class loader the enum JNI returns is not the constant this class sees
        if (!t.is_cpu() || t.scalar_type().value != ScalarType.Float.value) {
            throw new IllegalArgumentException("floatBuffer needs a float32 CPU tensor, got " + t.scalar_type() + " " + shape(t));
        }
        if (!t.is_contiguous(torch.MemoryFormat.Contiguous)) {
            throw new IllegalArgumentException("floatBuffer needs a contiguous tensor, got strides of " + shape(t));
        }
        return t.data_ptr_float().capacity(t.numel()).asBuffer();
    }

    private static Tensor cpu(Tensor t, ScalarType type) {
        Tensor c = t.device().is_cpu() ? t : t.cpu();
        if (c.scalar_type() != type) {
            c = c.to(type);
        }
        return c.contiguous();
    }

    public static Tensor cat(long dim, Tensor... parts) {
        TensorVector v = new TensorVector(parts);
        return torch.cat(v, dim);
    }

    /** Calls a TorchScript method; ints become int arguments, booleans bool arguments, tensors tensor arguments. */
    public static IValue call(Method method, Object... args) {
        IValue[] values = new IValue[args.length];
        for (int i = 0; i < args.length; i++) {
            Object a = args[i];
            if (a instanceof Tensor t) {
                values[i] = new IValue(t);
            } else if (a instanceof Long l) {
                values[i] = new IValue(l.longValue());
            } else if (a instanceof Integer n) {
                values[i] = new IValue((long) n);
            } else if (a instanceof Boolean b) {
                values[i] = new IValue(b.booleanValue());
            } else {
                throw new IllegalArgumentException("unsupported argument " + a);
            }
        }
        return method.apply(new IValueVector(values));
    }

    /** The tensor result of a call, as an owned handle (toTensor() is only a view into the IValue). */
    public static Tensor tensor(IValue value) {
        return new Tensor(value.toTensor());
    }

    /** Element i of a tuple result, as an owned handle. */
    public static Tensor element(IValue tuple, int i) {
        return new Tensor(tuple.toTuple().elements().get(i).toTensor());
    }

    public static String shape(Tensor t) {
        StringBuilder sb = new StringBuilder("[");
        for (int i = 0; i < t.dim(); i++) {
            sb.append(i > 0 ? ", " : "").append(t.size(i));
        }
        return sb.append("]").toString();
    }

    public static long bytes(Tensor t) {
        return t.numel() * t.element_size();
    }
}
