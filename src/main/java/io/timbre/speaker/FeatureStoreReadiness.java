package io.timbre.speaker;

import org.eclipse.microprofile.health.HealthCheck;
import org.eclipse.microprofile.health.HealthCheckResponse;
import org.eclipse.microprofile.health.Readiness;

import jakarta.enterprise.context.ApplicationScoped;

/** Ready while new feature files can be written (registrations and repairs need it); DOWN says why not. */
@Readiness
@ApplicationScoped
public class FeatureStoreReadiness implements HealthCheck {
    private final FeatureStore store;

    FeatureStoreReadiness(FeatureStore store) {
        this.store = store;
    }

    @Override
    public HealthCheckResponse call() {
        var b = HealthCheckResponse.named("feature-store");
        return store.unwritable().map(reason -> b.down().withData("error", reason).build()).orElseGet(() -> b.up().build());
    }
}
