package io.timbre.synthesis;

import io.timbre.engine.Engine;
import jakarta.enterprise.context.ApplicationScoped;
import org.eclipse.microprofile.health.HealthCheck;
import org.eclipse.microprofile.health.HealthCheckResponse;
import org.eclipse.microprofile.health.Readiness;

/** Ready once the model pack is loaded. */
@Readiness
@ApplicationScoped
public class EngineReadiness implements HealthCheck {
    private final Engine engine;

    EngineReadiness(Engine engine) {
        this.engine = engine;
    }

    @Override
    public HealthCheckResponse call() {
        var b = HealthCheckResponse.named("model-pack");
        if (engine.ready()) {
            var m = engine.pack().manifest;
            return b.up().withData("pack", m.name()).withData("version", m.version())
                    .withData("device", engine.device()).build();
        }
        return b.down().withData("error", engine.failure() == null ? "loading" : engine.failure()).build();
    }
}
