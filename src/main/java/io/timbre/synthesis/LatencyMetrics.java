package io.timbre.synthesis;

import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;

import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.lang.reflect.RecordComponent;
import java.time.Duration;
import java.util.Arrays;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * Latency as the service sees it, in {@code /q/metrics} as Prometheus histograms ({@link Metrics}):
 * <ul>
 *   <li>{@value #FIRST_AUDIO}: from the moment a synthesis is requested from the service (text read, speaker
 *   known; before features and the queue) to its first audio byte going out, tagged {@code endpoint}
 *   ({@code tts}, {@code speech}) and {@code stream} ({@code none}: the whole clip in one answer, else the
 *   streaming unit, e.g. {@code segment} or {@code hop});</li>
 *   <li>{@value #STAGE}: each request's time per stage, tagged {@code stage}: {@code features}, then every
 *   duration the engine reports in its per-request timings (today {@code queue}, {@code llm}, {@code flow},
 *   {@code vocoder}), read generically so that a stage the engine adds appears without a change here.</li>
 * </ul>
 */
public final class LatencyMetrics {
    public static final String FIRST_AUDIO = "timbre.tts.first.audio";
    public static final String STAGE = "timbre.engine.stage";
    /** The engine's sum of its stages: recorded by the {@code timbre.tts} timer, not as a stage. */
    static final String TOTAL = "total";

    private LatencyMetrics() {
    }

    /** Records one request's time to first audio. */
    public static void firstAudio(MeterRegistry registry, String endpoint, String stream, long nanos) {
        Timer.builder(FIRST_AUDIO)
                .description("time from a synthesis being requested to its first audio byte going out")
                .tag("endpoint", endpoint).tag("stream", stream)
                .register(registry).record(nanos, TimeUnit.NANOSECONDS);
    }

    /** Records one request's feature time and every stage of the engine's {@code timings}. */
    public static void stages(MeterRegistry registry, long featureNanos, Object timings) {
        stage(registry, "features", featureNanos);
        stageNanos(timings).forEach((name, nanos) -> stage(registry, name, nanos));
    }

    private static void stage(MeterRegistry registry, String name, long nanos) {
        Timer.builder(STAGE).description("time a request spent in (or waiting for) each stage").tag("stage", name)
                .register(registry).record(Math.max(0, nanos), TimeUnit.NANOSECONDS);
    }

    /**
     * The durations of an engine timings object by stage name (camelCase becomes snake_case: {@code waitingForFlow}
     * is {@code waiting_for_flow}), in declaration order, without the total: a record's {@code long} or
     * {@link Duration} components, or else the public no-argument methods returning one.
     */
    public static Map<String, Long> stageNanos(Object timings) {
        Map<String, Long> out = new LinkedHashMap<>();
        if (timings == null) {
            return out;
        }
        Class<?> type = timings.getClass();
        Method[] accessors;
        if (type.isRecord()) {
            accessors = Arrays.stream(type.getRecordComponents()).map(RecordComponent::getAccessor).toArray(Method[]::new);
        } else {
            accessors = Arrays.stream(type.getMethods())
                    .filter(m -> m.getDeclaringClass() != Object.class && m.getParameterCount() == 0
                            && !Modifier.isStatic(m.getModifiers()))
                    .sorted(Comparator.comparing(Method::getName)).toArray(Method[]::new);
        }
        for (Method m : accessors) {
            Class<?> r = m.getReturnType();
            if (r != long.class && r != Long.class && r != Duration.class) {
                continue;
            }
            String name = snake(m.getName().startsWith("get") && m.getName().length() > 3 && !type.isRecord()
                    ? Character.toLowerCase(m.getName().charAt(3)) + m.getName().substring(4) : m.getName());
            if (name.equals(TOTAL)) {
                continue;
            }
            Object v;
            try {
                m.setAccessible(true);
                v = m.invoke(timings);
            } catch (IllegalAccessException | InvocationTargetException | RuntimeException e) {
                continue;   // not a duration this class can read; the others are still recorded
            }
            if (v instanceof Duration d) {
                out.put(name, d.toNanos());
            } else if (v instanceof Long l) {
                out.put(name, l);
            }
        }
        return out;
    }

    static String snake(String camel) {
        return camel.replaceAll("([a-z0-9])([A-Z])", "$1_$2").toLowerCase(Locale.ROOT);
    }
}
