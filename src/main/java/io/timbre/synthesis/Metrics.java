package io.timbre.synthesis;

import io.micrometer.core.instrument.Meter;
import io.micrometer.core.instrument.config.MeterFilter;
import io.micrometer.core.instrument.distribution.DistributionStatisticConfig;
import jakarta.enterprise.inject.Produces;
import jakarta.inject.Singleton;

import java.util.concurrent.TimeUnit;

/** Latency histograms (Prometheus buckets) for HTTP endpoints, synthesis per speaker source, time to first audio and engine stages. */
public class Metrics {

    @Produces
    @Singleton
    MeterFilter latencyHistograms() {
        return new MeterFilter() {
            @Override
            public DistributionStatisticConfig configure(Meter.Id id, DistributionStatisticConfig config) {
                String name = id.getName();
                if (name.equals("http.server.requests") || name.equals("timbre.tts") || name.equals(LatencyMetrics.STAGE)
                        || name.equals(LatencyMetrics.FIRST_AUDIO)) {
                    // 1 ms to 5 min: on CPU a long text under load waits minutes (Micrometer's default stops at 30 s)
                    return DistributionStatisticConfig.builder().percentilesHistogram(true)
                            .minimumExpectedValue((double) TimeUnit.MILLISECONDS.toNanos(1))
                            .maximumExpectedValue((double) TimeUnit.MINUTES.toNanos(5)).build().merge(config);
                }
                return config;
            }
        };
    }
}
