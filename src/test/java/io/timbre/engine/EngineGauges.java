package io.timbre.engine;

import io.micrometer.core.instrument.MeterRegistry;

/** The engine's gauges as {@code /q/metrics} shows them, read from the service's registry in tests. */
public final class EngineGauges {
    private EngineGauges() {
    }

    public static double value(MeterRegistry registry, String name) {
        return registry.get(name).gauge().value();
    }

    /** Speaker features computed so far ({@code timbre.feature.extractions}). */
    public static long extractions(MeterRegistry registry) {
        return (long) value(registry, "timbre.feature.extractions");
    }
}
