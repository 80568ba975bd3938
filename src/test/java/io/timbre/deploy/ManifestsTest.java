package io.timbre.deploy;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.lang.reflect.ParameterizedType;
import java.math.BigDecimal;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import java.util.stream.Stream;

import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import io.fabric8.kubernetes.api.model.ConfigMap;
import io.fabric8.kubernetes.api.model.Container;
import io.fabric8.kubernetes.api.model.ContainerPort;
import io.fabric8.kubernetes.api.model.EnvFromSource;
import io.fabric8.kubernetes.api.model.EnvVar;
import io.fabric8.kubernetes.api.model.HTTPGetAction;
import io.fabric8.kubernetes.api.model.HasMetadata;
import io.fabric8.kubernetes.api.model.IntOrString;
import io.fabric8.kubernetes.api.model.PersistentVolumeClaim;
import io.fabric8.kubernetes.api.model.PodSpec;
import io.fabric8.kubernetes.api.model.Probe;
import io.fabric8.kubernetes.api.model.Quantity;
import io.fabric8.kubernetes.api.model.ResourceRequirements;
import io.fabric8.kubernetes.api.model.Secret;
import io.fabric8.kubernetes.api.model.Service;
import io.fabric8.kubernetes.api.model.ServicePort;
import io.fabric8.kubernetes.api.model.Volume;
import io.fabric8.kubernetes.api.model.VolumeMount;
import io.fabric8.kubernetes.api.model.apps.Deployment;
import io.fabric8.kubernetes.api.model.autoscaling.v2.ExternalMetricSource;
import io.fabric8.kubernetes.api.model.autoscaling.v2.HorizontalPodAutoscaler;
import io.fabric8.kubernetes.api.model.autoscaling.v2.MetricSpec;
import io.fabric8.kubernetes.api.model.networking.v1.NetworkPolicy;
import io.fabric8.kubernetes.api.model.networking.v1.NetworkPolicyPort;
import io.fabric8.kubernetes.api.model.policy.v1.PodDisruptionBudget;
import io.timbre.config.TimbreConfig;
import io.smallrye.config.WithName;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.MappingIterator;
import tools.jackson.databind.node.ArrayNode;
import tools.jackson.databind.node.ObjectNode;
import tools.jackson.dataformat.yaml.YAMLMapper;

/**
 * Renders k8s/ (the base and each overlay), parses every resource with the Kubernetes model (fabric8 8.0.0) and
 * checks the manifests against the application: probe paths and ports, that every environment variable is a
 * setting the application reads, the writable volumes a read-only root filesystem needs, graceful shutdown,
 * and the GPU request of the gpu overlay.
 *
 * <p>Rendering uses {@code kubectl kustomize} where kubectl is installed, else {@link MiniKustomize}, which
 * implements the part of kustomize these manifests use; where kubectl exists, a test also proves that both
 * render the same resources.
 */
class ManifestsTest {
    static final Path ROOT = Path.of("").toAbsolutePath();
    static final Path K8S = ROOT.resolve("k8s");
    static final List<String> TARGETS = List.of("base", "overlays/cpu", "overlays/gpu");
    static final YAMLMapper YAML = YAMLMapper.builder().build();

    /** The resource kinds the manifests hold, with the model class each one is read into. */
    static final Map<String, Class<? extends HasMetadata>> KINDS = Map.of(
            "v1/ConfigMap", ConfigMap.class,
            "v1/Secret", Secret.class,
            "v1/Service", Service.class,
            "v1/PersistentVolumeClaim", PersistentVolumeClaim.class,
            "apps/v1/Deployment", Deployment.class,
            "autoscaling/v2/HorizontalPodAutoscaler", HorizontalPodAutoscaler.class,
            "policy/v1/PodDisruptionBudget", PodDisruptionBudget.class,
            "networking.k8s.io/v1/NetworkPolicy", NetworkPolicy.class);

    /**
     * Quarkus settings the manifests may set through the environment: the database connection (the prod profile
     * has no default and refuses to start without the URL) and the run-time shutdown durations.
     */
    static final Set<String> QUARKUS_KEYS = Set.of("quarkus.datasource.jdbc.url", "quarkus.datasource.username",
            "quarkus.datasource.password", "quarkus.shutdown.delay", "quarkus.shutdown.timeout", "quarkus.http.host");

    /**
     * Variables that are no MicroProfile configuration: JAVA_TOOL_OPTIONS is read by the JVM itself, whatever the
     * image's entrypoint, and carries the -D system properties below.
     */
    /** Read by the runtime rather than the application's config: the JVM's options, and cuBLAS's workspace setting
     * (deterministic cuBLAS kernels, see NativeTorch.deterministicKernels). */
    static final Set<String> JVM_VARIABLES = Set.of("JAVA_TOOL_OPTIONS", "CUBLAS_WORKSPACE_CONFIG");

    /**
     * System properties JAVA_TOOL_OPTIONS may set, each read by a library the application uses: the JDK's temporary
     * directory (multipart uploads go to ${java.io.tmpdir}/uploads), JavaCPP's native cache and physical-memory
     * ceiling, and DJL's cache, where the HuggingFace tokenizers library extracts its native code.
     */
    static final Set<String> WRITABLE_DIR_PROPERTIES = Set.of("java.io.tmpdir", "org.bytedeco.javacpp.cachedir",
            "DJL_CACHE_DIR");
    static final Set<String> SYSTEM_PROPERTIES = Stream.concat(WRITABLE_DIR_PROPERTIES.stream(),
            Stream.of("org.bytedeco.javacpp.maxPhysicalBytes")).collect(Collectors.toUnmodifiableSet());

    /**
     * Bytes the natives take once extracted (pytorch 2.10.0-1.5.13, measured): the JavaCPP cache holds 493 MB for
     * linux-x86_64 and 929 MB for linux-x86_64-gpu (LibTorch and OpenBLAS), plus up to 68 MB of FFmpeg; the
     * tokenizers library adds 15 MB.
     */
    static final long CPU_NATIVE_BYTES = (493L + 68 + 15) << 20;
    static final long GPU_NATIVE_BYTES = (929L + 68 + 15) << 20;

    static Properties appProperties;
    static Map<String, List<HasMetadata>> rendered = new LinkedHashMap<>();
    static Secret secretTemplate;

    @BeforeAll
    static void render() throws IOException {
        appProperties = new Properties();
        try (InputStream in = Files.newInputStream(ROOT.resolve("src/main/resources/application.properties"))) {
            appProperties.load(in);
        }
        boolean kubectl = kubectlAvailable();
        for (String target : TARGETS) {
            Path dir = K8S.resolve(target);
            List<JsonNode> docs = kubectl ? parseYaml(kubectlKustomize(dir)) : MiniKustomize.render(dir);
            rendered.put(target, docs.stream().map(ManifestsTest::toModel).collect(Collectors.toList()));
        }
        List<JsonNode> template = parseYaml(Files.readString(K8S.resolve("base/secret.template.yaml")));
        assertEquals(1, template.size(), "secret.template.yaml holds one Secret");
        secretTemplate = (Secret) toModel(template.get(0));
    }

    // ------------------------------------------------------------------------------------------- the resources

    @ParameterizedTest
    @ValueSource(strings = {"base", "overlays/cpu", "overlays/gpu"})
    void everyResourceKindIsThereOnceAndNoSecretIsApplied(String target) {
        Map<String, Long> kinds = resources(target).stream()
                .collect(Collectors.groupingBy(HasMetadata::getKind, TreeMap::new, Collectors.counting()));
        assertEquals(new TreeMap<>(Map.of("ConfigMap", 1L, "Deployment", 1L, "HorizontalPodAutoscaler", 1L,
                "NetworkPolicy", 1L, "PersistentVolumeClaim", 1L, "PodDisruptionBudget", 1L, "Service", 1L)), kinds,
                target + ": the Secret is a template applied by hand, never by kustomize (it would overwrite the real one)");
    }

    @ParameterizedTest
    @ValueSource(strings = {"base", "overlays/cpu", "overlays/gpu"})
    void everyFieldIsKnownToTheKubernetesModel(String target) {
        for (HasMetadata r : resources(target)) {
            List<String> unknown = new ArrayList<>();
            unknownFields(r, r.getKind() + "/" + r.getMetadata().getName(), unknown, new IdentityHashMap<>());
            assertEquals(List.of(), unknown, target + ": fields the Kubernetes API does not have (typos?)");
        }
    }

    @Test
    void secretTemplateHoldsPlaceholdersForEverySettingTheProdProfileNeeds() {
        assertEquals("timbre-secrets", secretTemplate.getMetadata().getName());
        Map<String, String> data = secretTemplate.getStringData();
        assertEquals(Set.of("QUARKUS_DATASOURCE_JDBC_URL", "QUARKUS_DATASOURCE_USERNAME", "QUARKUS_DATASOURCE_PASSWORD",
                "TIMBRE_ADMIN_KEY", "TIMBRE_HTTP_METRICS_KEY"), data.keySet());
        assertTrue(secretTemplate.getData() == null || secretTemplate.getData().isEmpty(), "no base64 data in the template");
        data.forEach((k, v) -> assertTrue(v.contains("REPLACE_ME"), k + " must be a placeholder, not a real value: " + v));
        assertTrue(data.get("QUARKUS_DATASOURCE_JDBC_URL").startsWith("jdbc:postgresql://"));
    }

    // ----------------------------------------------------------------------------------------------- probes

    @ParameterizedTest
    @ValueSource(strings = {"base", "overlays/cpu", "overlays/gpu"})
    void probesUseTheApplicationsHealthPathsAndHttpPort(String target) {
        Container app = appContainer(target);
        int port = httpPort();
        assertProbe(app, app.getStartupProbe(), healthPath("startup-path", "started"), port);
        assertProbe(app, app.getReadinessProbe(), healthPath("readiness-path", "ready"), port);
        assertProbe(app, app.getLivenessProbe(), healthPath("liveness-path", "live"), port);
        assertEquals(List.of(port), app.getPorts().stream().map(ContainerPort::getContainerPort).collect(Collectors.toList()));

        Service service = one(target, Service.class);
        for (ServicePort p : service.getSpec().getPorts()) {
            assertEquals(port, resolvePort(app, p.getTargetPort()), "Service targetPort");
        }
        assertSelects(service.getSpec().getSelector(), target);
    }

    @ParameterizedTest
    @ValueSource(strings = {"base", "overlays/cpu", "overlays/gpu"})
    void prometheusScrapesTheMetricsEndpoint(String target) {
        Map<String, String> annotations = deployment(target).getSpec().getTemplate().getMetadata().getAnnotations();
        assertEquals("true", annotations.get("prometheus.io/scrape"));
        assertEquals(nonApplicationPath(prop("quarkus.micrometer.export.prometheus.path").orElse("metrics")),
                annotations.get("prometheus.io/path"));
        assertEquals(String.valueOf(httpPort()), annotations.get("prometheus.io/port"));
    }

    @Test
    void readinessReportsDownBeforeTheShutdownDelayEnds() {
        // Otherwise the kubelet may still see the pod ready when the delay is over and new requests are refused.
        Probe readiness = appContainer("base").getReadinessProbe();
        long notice = (long) readiness.getPeriodSeconds() * readiness.getFailureThreshold();
        assertTrue(notice <= shutdownDelay("base").toSeconds(),
                "readiness period × failureThreshold (" + notice + " s) must fit in quarkus.shutdown.delay");
    }

    // ---------------------------------------------------------------------------------- environment variables

    @ParameterizedTest
    @ValueSource(strings = {"base", "overlays/cpu", "overlays/gpu"})
    void everyEnvironmentVariableIsASettingTheApplicationReads(String target) {
        Map<String, String> known = new TreeMap<>();
        timbreConfigProperties().forEach(p -> known.put(envName(p), p));
        QUARKUS_KEYS.forEach(p -> known.put(envName(p), p));
        Map<String, String> env = environment(target);
        assertFalse(env.isEmpty());
        for (String name : env.keySet()) {
            assertTrue(known.containsKey(name) || JVM_VARIABLES.contains(name),
                    target + ": " + name + " is no setting the application reads; known: " + known.keySet());
        }
        assertTrue(env.containsKey("QUARKUS_DATASOURCE_JDBC_URL") && env.containsKey("TIMBRE_ADMIN_KEY"),
                "the prod profile refuses to start without them");
    }

    @Test
    void theSettingsListIsReadFromTimbreConfig() {
        Set<String> props = timbreConfigProperties();
        for (String p : List.of("timbre.admin-key", "timbre.model-pack", "timbre.device", "timbre.feature-dir",
                "timbre.engine.segment-workers", "timbre.engine.memory-policy", "timbre.embedded-postgres.enabled")) {
            assertTrue(props.contains(p), p + " in " + props);
        }
        assertEquals("TIMBRE_ENGINE_SEGMENT_WORKERS", envName("timbre.engine.segment-workers"));
        assertEquals("QUARKUS_DATASOURCE_JDBC_URL", envName("quarkus.datasource.jdbc.url"));
    }

    @ParameterizedTest
    @ValueSource(strings = {"base", "overlays/cpu", "overlays/gpu"})
    void javaToolOptionsSetOnlyKnownPropertiesAndPointThemAtWritableVolumes(String target) {
        Map<String, String> sys = systemProperties(target);
        assertEquals(SYSTEM_PROPERTIES, sys.keySet(), "-D properties in JAVA_TOOL_OPTIONS");
        for (String p : WRITABLE_DIR_PROPERTIES) {
            VolumeMount m = mountHolding(target, sys.get(p));
            assertFalse(Boolean.TRUE.equals(m.getReadOnly()), p + " must be writable");
            assertNotNull(volume(target, m.getName()).getEmptyDir(), p + " is per-pod scratch: an emptyDir");
        }
        long memoryLimit = bytes(appContainer(target).getResources().getLimits().get("memory"));
        assertTrue(parseJavaCppBytes(sys.get("org.bytedeco.javacpp.maxPhysicalBytes")) < memoryLimit,
                "JavaCPP must collect tensors before the container hits its memory limit");
    }

    /** Freed host memory goes back to the OS (malloc_trim) before JavaCPP's ceiling, which is below the limit. */
    @ParameterizedTest
    @ValueSource(strings = {"base", "overlays/cpu", "overlays/gpu"})
    void hostMemoryIsTrimmedBelowJavaCppsCeiling(String target) {
        Map<String, String> env = environment(target);
        assertEquals("idle", env.get("TIMBRE_ENGINE_HOST_MEMORY_POLICY"));
        long watermark = io.timbre.engine.MemoryPolicy.parseBytes(env.get("TIMBRE_ENGINE_HOST_MEMORY_WATERMARK"));
        long ceiling = parseJavaCppBytes(systemProperties(target).get("org.bytedeco.javacpp.maxPhysicalBytes"));
        assertTrue(watermark > 0 && watermark < ceiling, "host memory watermark " + watermark + " below maxPhysicalBytes " + ceiling);
    }

    // ------------------------------------------------------------------------------------- volumes and security

    @ParameterizedTest
    @ValueSource(strings = {"base", "overlays/cpu", "overlays/gpu"})
    void readOnlyRootNonRootAndAVolumeForEveryPathTheApplicationWrites(String target) {
        PodSpec pod = deployment(target).getSpec().getTemplate().getSpec();
        assertEquals(Boolean.TRUE, pod.getSecurityContext().getRunAsNonRoot());
        assertTrue(pod.getSecurityContext().getRunAsUser() > 0, "a fixed, non-zero uid");
        for (Container c : allContainers(target)) {
            assertEquals(Boolean.TRUE, c.getSecurityContext().getReadOnlyRootFilesystem(), c.getName());
            assertEquals(Boolean.FALSE, c.getSecurityContext().getAllowPrivilegeEscalation(), c.getName());
        }
        Map<String, String> env = environment(target);
        // the model pack: read-only for the application, filled by the init container
        VolumeMount pack = mountHolding(target, env.get("TIMBRE_MODEL_PACK"));
        assertEquals(Boolean.TRUE, pack.getReadOnly());
        Container init = pod.getInitContainers().stream().filter(c -> c.getName().equals("model-pack")).findFirst()
                .orElseThrow();
        assertTrue(init.getVolumeMounts().stream().anyMatch(m -> m.getName().equals(pack.getName())
                && !Boolean.TRUE.equals(m.getReadOnly())), "the init container writes the pack volume");
        assertTrue(String.join(" ", init.getCommand()).contains(pack.getMountPath()));
        // feature files: the shared ReadWriteMany claim
        VolumeMount features = mountHolding(target, env.get("TIMBRE_FEATURE_DIR"));
        assertFalse(Boolean.TRUE.equals(features.getReadOnly()));
        String claim = volume(target, features.getName()).getPersistentVolumeClaim().getClaimName();
        PersistentVolumeClaim pvc = resources(target).stream().filter(r -> r instanceof PersistentVolumeClaim
                && r.getMetadata().getName().equals(claim)).map(r -> (PersistentVolumeClaim) r).findFirst().orElseThrow();
        assertEquals(List.of("ReadWriteMany"), pvc.getSpec().getAccessModes(), "shared by all replicas");
        // every mount has a volume, every emptyDir a size limit, and they fit the ephemeral-storage limits
        long scratch = 0;
        for (Container c : allContainers(target)) {
            for (VolumeMount m : c.getVolumeMounts()) {
                assertNotNull(volume(target, m.getName()), m.getName());
            }
        }
        for (Volume v : pod.getVolumes()) {
            if (v.getEmptyDir() != null) {
                assertNotNull(v.getEmptyDir().getSizeLimit(), v.getName() + " needs a sizeLimit");
                scratch += bytes(v.getEmptyDir().getSizeLimit());
            }
        }
        long ephemeral = bytes(appContainer(target).getResources().getLimits().get("ephemeral-storage"));
        assertTrue(scratch <= ephemeral, "emptyDir size limits (" + scratch + ") within the ephemeral-storage limit ("
                + ephemeral + ")");
    }

    @ParameterizedTest
    @ValueSource(strings = {"base", "overlays/cpu", "overlays/gpu"})
    void everyContainerHasRequestsAndLimits(String target) {
        for (Container c : allContainers(target)) {
            ResourceRequirements r = c.getResources();
            for (String res : List.of("cpu", "memory")) {
                Quantity request = r.getRequests().get(res);
                Quantity limit = r.getLimits().get(res);
                assertNotNull(request, c.getName() + " requests " + res);
                assertNotNull(limit, c.getName() + " limits " + res);
                assertTrue(bytes(request) <= bytes(limit), c.getName() + " " + res + " request <= limit");
            }
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"base", "overlays/cpu", "overlays/gpu"})
    void nativeCacheHoldsTheExtractedNatives(String target) {
        String cacheDir = systemProperties(target).get("org.bytedeco.javacpp.cachedir");
        Volume v = volume(target, mountHolding(target, cacheDir).getName());
        long needed = target.endsWith("gpu") ? GPU_NATIVE_BYTES : CPU_NATIVE_BYTES;
        assertTrue(bytes(v.getEmptyDir().getSizeLimit()) >= needed + needed / 2,
                target + ": the native cache needs " + needed + " bytes plus headroom");
    }

    // ------------------------------------------------------------------------------------------ shutdown

    @ParameterizedTest
    @ValueSource(strings = {"base", "overlays/cpu", "overlays/gpu"})
    void terminationGracePeriodExceedsShutdownDelayPlusTimeout(String target) {
        assertEquals("true", prop("quarkus.shutdown.delay-enabled").orElse("false"), "build-time switch");
        Duration delay = shutdownDelay(target);
        Duration timeout = setting(target, "quarkus.shutdown.timeout").map(ManifestsTest::duration).orElseThrow();
        assertTrue(delay.toSeconds() > 0 && timeout.toSeconds() > 0);
        long grace = deployment(target).getSpec().getTemplate().getSpec().getTerminationGracePeriodSeconds();
        assertTrue(grace > delay.plus(timeout).toSeconds(), "terminationGracePeriodSeconds " + grace + " > " + delay
                + " + " + timeout);
    }

    // --------------------------------------------------------------------------------- scaling and network

    @ParameterizedTest
    @ValueSource(strings = {"base", "overlays/cpu", "overlays/gpu"})
    void autoscalerDisruptionBudgetAndNetworkPolicyTargetThePods(String target) {
        Deployment d = deployment(target);
        assertEquals(null, d.getSpec().getReplicas(), "the HorizontalPodAutoscaler owns the replica count");
        HorizontalPodAutoscaler hpa = one(target, HorizontalPodAutoscaler.class);
        assertEquals("Deployment", hpa.getSpec().getScaleTargetRef().getKind());
        assertEquals(d.getMetadata().getName(), hpa.getSpec().getScaleTargetRef().getName());
        assertTrue(hpa.getSpec().getMinReplicas() >= 2 && hpa.getSpec().getMaxReplicas() >= hpa.getSpec().getMinReplicas());

        PodDisruptionBudget pdb = one(target, PodDisruptionBudget.class);
        assertSelects(pdb.getSpec().getSelector().getMatchLabels(), target);
        assertTrue(pdb.getSpec().getMinAvailable().getIntVal() < hpa.getSpec().getMinReplicas(), "a node drain can proceed");

        NetworkPolicy np = one(target, NetworkPolicy.class);
        assertSelects(np.getSpec().getPodSelector().getMatchLabels(), target);
        assertTrue(np.getSpec().getIngress().stream().flatMap(r -> r.getPorts().stream()).map(NetworkPolicyPort::getPort)
                .anyMatch(p -> resolvePort(appContainer(target), p) == httpPort()), "HTTP ingress allowed");
        Set<Integer> egress = np.getSpec().getEgress().stream().flatMap(r -> r.getPorts().stream())
                .map(p -> p.getPort().getIntVal()).collect(Collectors.toSet());
        assertTrue(egress.containsAll(Set.of(53, 5432)), "DNS and PostgreSQL egress: " + egress);
    }

    // ------------------------------------------------------------------------------------------- overlays

    @Test
    void cpuOverlayRunsOnTheCpuWithoutAGpu() {
        assertEquals("cpu", environment("overlays/cpu").get("TIMBRE_DEVICE"));
        assertFalse(appContainer("overlays/cpu").getResources().getLimits().containsKey("nvidia.com/gpu"));
        assertOverlayImages("overlays/cpu");
    }

    @Test
    void gpuOverlayRequestsOneGpuAndUsesIt() {
        Container app = appContainer("overlays/gpu");
        assertEquals(new Quantity("1"), app.getResources().getLimits().get("nvidia.com/gpu"));
        assertEquals("cuda:0", environment("overlays/gpu").get("TIMBRE_DEVICE"));
        assertEquals(":4096:8", environment("overlays/gpu").get("CUBLAS_WORKSPACE_CONFIG"), "deterministic cuBLAS");
        PodSpec pod = deployment("overlays/gpu").getSpec().getTemplate().getSpec();
        assertTrue(pod.getTolerations().stream().anyMatch(t -> "nvidia.com/gpu".equals(t.getKey())), "GPU taint tolerated");
        assertFalse(pod.getNodeSelector().isEmpty(), "GPU nodes selected");
        assertOverlayImages("overlays/gpu");
        assertTrue(app.getImage().contains("gpu"), "the CUDA image: " + app.getImage());
        assertFalse(app.getImage().equals(appContainer("overlays/cpu").getImage()));
    }

    /**
     * The gpu overlay scales on the engine's queue depth through the external metrics API: its HPA's only metric is
     * an External one, per replica, that the prometheus-adapter rule next to it serves from the Prometheus series of a
     * gauge the application registers; the base and the cpu overlay scale on CPU utilisation.
     */
    @Test
    void gpuOverlayScalesOnTheEnginesQueueDepth() throws IOException {
        HorizontalPodAutoscaler hpa = one("overlays/gpu", HorizontalPodAutoscaler.class);
        assertEquals(List.of("External"), hpa.getSpec().getMetrics().stream().map(MetricSpec::getType).collect(Collectors.toList()),
                "CPU utilisation is a weak signal on GPU pods");
        ExternalMetricSource external = hpa.getSpec().getMetrics().get(0).getExternal();
        String name = external.getMetric().getName();
        assertEquals("AverageValue", external.getTarget().getType(), "queue depth per replica");
        assertTrue(bytes(external.getTarget().getAverageValue()) > 0, "a positive target");

        List<JsonNode> values = parseYaml(Files.readString(K8S.resolve("overlays/gpu/prometheus-adapter-rules.yaml")));
        assertEquals(1, values.size());
        JsonNode rule = null;
        for (JsonNode r : values.get(0).path("rules").path("external")) {
            if (name.equals(r.path("name").path("as").asString())) {
                rule = r;
            }
        }
        assertNotNull(rule, "prometheus-adapter-rules.yaml serves " + name + " as an external metric");
        String series = rule.path("seriesQuery").asString().replaceAll("\\{.*", "").trim();
        assertTrue(Pattern.compile(rule.path("name").path("matches").asString()).matcher(series).find(),
                "the rule's name pattern matches its series " + series);
        assertTrue(rule.path("metricsQuery").asString().contains("<<.Series>>{<<.LabelMatchers>>}"),
                "the HPA's namespace reaches the query as a label matcher");
        assertEquals("namespace", rule.path("resources").path("overrides").path("namespace").path("resource").asString());

        // the series is the Prometheus name of a gauge the application registers (Micrometer: dots become _)
        String meter = "\"" + series.replace('_', '.') + "\"";
        try (Stream<Path> files = Files.walk(ROOT.resolve("src/main/java"))) {
            assertTrue(files.filter(f -> f.toString().endsWith(".java")).anyMatch(f -> {
                try {
                    String src = Files.readString(f);
                    return src.contains("Gauge.builder(" + meter);
                } catch (IOException e) {
                    throw new UncheckedIOException(e);
                }
            }), "a gauge named " + meter + " in src/main/java (renamed? then update hpa-gpu.yaml and the adapter rule)");
        }

        for (String target : List.of("base", "overlays/cpu")) {
            List<MetricSpec> metrics = one(target, HorizontalPodAutoscaler.class).getSpec().getMetrics();
            assertEquals(List.of("cpu"), metrics.stream().map(m -> m.getResource().getName()).collect(Collectors.toList()), target);
        }
    }

    @Test
    void dockerfilesRunAsThePodsUserAndExposeTheHttpPort() throws IOException {
        long uid = deployment("base").getSpec().getTemplate().getSpec().getSecurityContext().getRunAsUser();
        for (String f : List.of("Dockerfile.jvm", "Dockerfile.gpu")) {
            String text = Files.readString(ROOT.resolve("src/main/docker").resolve(f));
            assertTrue(Pattern.compile("(?m)^USER " + uid + "(:\\d+)?$").matcher(text).find(), f + " USER " + uid);
            assertTrue(Pattern.compile("(?m)^EXPOSE " + httpPort() + "$").matcher(text).find(), f + " EXPOSE");
        }
        String pack = Files.readString(ROOT.resolve("src/main/docker/Dockerfile.pack"));
        assertTrue(pack.contains(" /pack"), "the init container copies /pack");
    }

    @Test
    void fallbackRendererMatchesKubectlKustomize() throws IOException {
        Assumptions.assumeTrue(kubectlAvailable(), "kubectl is not installed");
        for (String target : TARGETS) {
            Path dir = K8S.resolve(target);
            assertEquals(byKindAndName(parseYaml(kubectlKustomize(dir))), byKindAndName(MiniKustomize.render(dir)), target);
        }
    }

    // ===================================================================================== helpers: the app

    /** The value the prod profile sees: %prod.key, else key. */
    static Optional<String> prop(String key) {
        String v = appProperties.getProperty("%prod." + key, appProperties.getProperty(key));
        return Optional.ofNullable(v).map(String::trim);
    }

    /** A setting as the pod sees it: the environment of the manifests overrides application.properties. */
    static Optional<String> setting(String target, String key) {
        String env = environment(target).get(envName(key));
        return env != null ? Optional.of(env) : prop(key);
    }

    static Duration shutdownDelay(String target) {
        return setting(target, "quarkus.shutdown.delay").map(ManifestsTest::duration).orElse(Duration.ZERO);
    }

    static int httpPort() {
        return Integer.parseInt(prop("quarkus.http.port").orElse("8080"));
    }

    static String nonApplicationPath(String sub) {
        String root = prop("quarkus.http.non-application-root-path").orElse("q");
        return "/" + strip(root) + "/" + strip(sub);
    }

    static String healthPath(String subKey, String subDefault) {
        String health = prop("quarkus.smallrye-health.root-path").orElse("health");
        return nonApplicationPath(strip(health) + "/" + strip(prop("quarkus.smallrye-health." + subKey).orElse(subDefault)));
    }

    static String strip(String p) {
        return p.replaceAll("^/+|/+$", "");
    }

    /** MicroProfile Config's environment name of a property: non-alphanumerics become _, then upper case. */
    static String envName(String property) {
        return property.replaceAll("[^A-Za-z0-9]", "_").toUpperCase(Locale.ROOT);
    }

    /** Every property of {@link TimbreConfig}, named as SmallRye Config names them (kebab-case, nested groups). */
    static Set<String> timbreConfigProperties() {
        Set<String> out = new TreeSet<>();
        String prefix = TimbreConfig.class.getAnnotation(io.smallrye.config.ConfigMapping.class).prefix();
        collect(TimbreConfig.class, prefix, out);
        return out;
    }

    static void collect(Class<?> mapping, String prefix, Set<String> out) {
        for (Method m : mapping.getMethods()) {
            if (m.isDefault() || Modifier.isStatic(m.getModifiers()) || m.getParameterCount() > 0) {
                continue;
            }
            WithName withName = m.getAnnotation(WithName.class);
            String name = prefix + "." + (withName != null ? withName.value() : kebab(m.getName()));
            Class<?> type = m.getReturnType();
            if (type == Optional.class && m.getGenericReturnType() instanceof ParameterizedType pt
                    && pt.getActualTypeArguments()[0] instanceof Class<?> c) {
                type = c;
            }
            if (type.isInterface() && type.getDeclaringClass() != null && type.getName().startsWith("io.timbre.")) {
                collect(type, name, out);
            } else {
                out.add(name);
            }
        }
    }

    static String kebab(String camel) {
        return camel.replaceAll("([a-z0-9])([A-Z])", "$1-$2").toLowerCase(Locale.ROOT);
    }

    static Duration duration(String v) {
        String s = v.trim();
        if (s.startsWith("P") || s.startsWith("p")) {
            return Duration.parse(s);
        }
        Matcher m = Pattern.compile("(\\d+)(ms|s|m|h|d)?").matcher(s);
        assertTrue(m.matches(), "duration " + v);
        long n = Long.parseLong(m.group(1));
        String unit = m.group(2) == null ? "s" : m.group(2);
        return switch (unit) {
            case "ms" -> Duration.ofMillis(n);
            case "m" -> Duration.ofMinutes(n);
            case "h" -> Duration.ofHours(n);
            case "d" -> Duration.ofDays(n);
            default -> Duration.ofSeconds(n);
        };
    }

    /** JavaCPP's size syntax: a number with an optional binary suffix (k, m, g, t). */
    static long parseJavaCppBytes(String v) {
        Matcher m = Pattern.compile("(\\d+)([kKmMgGtT]?)").matcher(v.trim());
        assertTrue(m.matches(), "bytes " + v);
        int shift = switch (m.group(2).toLowerCase(Locale.ROOT)) {
            case "k" -> 10;
            case "m" -> 20;
            case "g" -> 30;
            case "t" -> 40;
            default -> 0;
        };
        return Long.parseLong(m.group(1)) << shift;
    }

    // =============================================================================== helpers: the manifests

    static List<HasMetadata> resources(String target) {
        return rendered.get(target);
    }

    static <T extends HasMetadata> T one(String target, Class<T> type) {
        List<T> found = resources(target).stream().filter(type::isInstance).map(type::cast).collect(Collectors.toList());
        assertEquals(1, found.size(), target + ": one " + type.getSimpleName());
        return found.get(0);
    }

    static Deployment deployment(String target) {
        return one(target, Deployment.class);
    }

    static Container appContainer(String target) {
        List<Container> cs = deployment(target).getSpec().getTemplate().getSpec().getContainers();
        assertEquals(1, cs.size(), "one application container");
        return cs.get(0);
    }

    static List<Container> allContainers(String target) {
        PodSpec pod = deployment(target).getSpec().getTemplate().getSpec();
        List<Container> all = new ArrayList<>(pod.getContainers());
        all.addAll(pod.getInitContainers());
        return all;
    }

    static Volume volume(String target, String name) {
        return deployment(target).getSpec().getTemplate().getSpec().getVolumes().stream()
                .filter(v -> v.getName().equals(name)).findFirst().orElse(null);
    }

    /** The application container's mount whose path holds {@code path}. */
    static VolumeMount mountHolding(String target, String path) {
        assertNotNull(path);
        return appContainer(target).getVolumeMounts().stream()
                .filter(m -> path.equals(m.getMountPath()) || path.startsWith(m.getMountPath() + "/"))
                .findFirst().orElseThrow(() -> new AssertionError(target + ": no volume mounted at " + path
                        + " (the root filesystem is read-only)"));
    }

    /**
     * The application container's environment: env entries, then every key of the ConfigMaps and Secrets it
     * imports (envFrom), the Secret read from its template. Later sources do not override earlier ones here: a
     * name set twice fails, as it would be ambiguous.
     */
    static Map<String, String> environment(String target) {
        Container app = appContainer(target);
        Map<String, String> env = new TreeMap<>();
        for (EnvVar e : app.getEnv()) {
            assertNotNull(e.getValue(), e.getName() + ": value (no valueFrom expected)");
            assertTrue(env.put(e.getName(), e.getValue()) == null, "set twice: " + e.getName());
        }
        for (EnvFromSource from : app.getEnvFrom()) {
            Map<String, String> data;
            if (from.getConfigMapRef() != null) {
                String name = from.getConfigMapRef().getName();
                data = resources(target).stream().filter(r -> r instanceof ConfigMap && r.getMetadata().getName().equals(name))
                        .map(r -> ((ConfigMap) r).getData()).findFirst()
                        .orElseThrow(() -> new AssertionError("no ConfigMap " + name));
            } else {
                String name = from.getSecretRef().getName();
                assertEquals(secretTemplate.getMetadata().getName(), name, "the Secret of secret.template.yaml");
                data = secretTemplate.getStringData();
            }
            data.forEach((k, v) -> assertTrue(env.put(k, v) == null, "set twice: " + k));
        }
        return env;
    }

    static Map<String, String> systemProperties(String target) {
        String opts = environment(target).get("JAVA_TOOL_OPTIONS");
        assertNotNull(opts, "JAVA_TOOL_OPTIONS");
        Map<String, String> out = new TreeMap<>();
        for (String o : opts.trim().split("\\s+")) {
            if (o.startsWith("-D")) {
                int eq = o.indexOf('=');
                out.put(o.substring(2, eq), o.substring(eq + 1));
            } else {
                assertTrue(o.startsWith("-XX:"), "only -D and -XX options: " + o);
            }
        }
        return out;
    }

    static void assertProbe(Container app, Probe probe, String path, int port) {
        assertNotNull(probe);
        HTTPGetAction get = probe.getHttpGet();
        assertNotNull(get, "an HTTP probe");
        assertEquals(path, get.getPath());
        assertEquals(port, resolvePort(app, get.getPort()));
        assertTrue(get.getScheme() == null || get.getScheme().equals("HTTP"));
    }

    static int resolvePort(Container app, IntOrString port) {
        if (port.getIntVal() != null) {
            return port.getIntVal();
        }
        return app.getPorts().stream().filter(p -> port.getStrVal().equals(p.getName())).findFirst()
                .map(ContainerPort::getContainerPort).orElseThrow(() -> new AssertionError("no port named " + port.getStrVal()));
    }

    static void assertSelects(Map<String, String> selector, String target) {
        Map<String, String> labels = deployment(target).getSpec().getTemplate().getMetadata().getLabels();
        assertFalse(selector.isEmpty());
        selector.forEach((k, v) -> assertEquals(v, labels.get(k), "selector " + k));
        assertEquals(deployment(target).getSpec().getSelector().getMatchLabels(), selector);
    }

    static void assertOverlayImages(String target) {
        for (Container c : allContainers(target)) {
            assertTrue(c.getImage().contains("/") && c.getImage().contains(":"),
                    target + ": the overlay sets the registry and tag of " + c.getName() + ": " + c.getImage());
        }
    }

    static long bytes(Quantity q) {
        assertNotNull(q);
        BigDecimal b = Quantity.getAmountInBytes(q);
        return b.longValue();
    }

    /** Fields the model did not recognise end up in additionalProperties: walk every model object for them. */
    static void unknownFields(Object o, String path, List<String> out, Map<Object, Boolean> seen) {
        if (o == null || seen.put(o, true) != null) {
            return;
        }
        if (o instanceof Collection<?> c) {
            int i = 0;
            for (Object e : c) {
                unknownFields(e, path + "[" + i++ + "]", out, seen);
            }
            return;
        }
        if (o instanceof Map<?, ?> m) {
            m.forEach((k, v) -> unknownFields(v, path + "." + k, out, seen));
            return;
        }
        if (!o.getClass().getName().startsWith("io.fabric8.")) {
            return;
        }
        for (Method g : o.getClass().getMethods()) {
            if (g.getParameterCount() != 0 || !g.getName().startsWith("get") || g.getDeclaringClass() == Object.class) {
                continue;
            }
            Object v;
            try {
                v = g.invoke(o);
            } catch (ReflectiveOperationException e) {
                throw new IllegalStateException(e);
            }
            if (g.getName().equals("getAdditionalProperties")) {
                if (v instanceof Map<?, ?> extra && !extra.isEmpty()) {
                    out.add(path + ": " + extra.keySet());
                }
            } else {
                unknownFields(v, path + "." + g.getName().substring(3), out, seen);
            }
        }
    }

    // ================================================================================= helpers: rendering

    static List<JsonNode> parseYaml(String text) {
        List<JsonNode> docs = new ArrayList<>();
        try (MappingIterator<JsonNode> it = YAML.readerFor(JsonNode.class).readValues(text)) {
            while (it.hasNext()) {
                JsonNode n = it.next();
                if (n != null && !n.isNull() && !n.isMissingNode() && !n.isEmpty()) {
                    docs.add(n);
                }
            }
        }
        return docs;
    }

    static HasMetadata toModel(JsonNode doc) {
        String key = doc.path("apiVersion").asString() + "/" + doc.path("kind").asString();
        Class<? extends HasMetadata> type = KINDS.get(key);
        assertNotNull(type, "a resource this test knows: " + key);
        return YAML.treeToValue(doc, type);
    }

    /** Resources by kind and name, with merge-keyed lists in key order (their order means nothing to Kubernetes). */
    static Map<String, JsonNode> byKindAndName(List<JsonNode> docs) {
        Map<String, JsonNode> out = new TreeMap<>();
        for (JsonNode d : docs) {
            JsonNode copy = d.deepCopy();
            sortMergeKeyedLists(copy);
            out.put(d.path("kind").asString() + "/" + d.path("metadata").path("name").asString(), copy);
        }
        return out;
    }

    static void sortMergeKeyedLists(JsonNode node) {
        if (node.isObject()) {
            for (String field : new ArrayList<>(node.propertyNames())) {
                JsonNode v = node.get(field);
                String key = MiniKustomize.MERGE_KEYS.get(field);
                if (v.isArray() && key != null) {
                    List<JsonNode> items = new ArrayList<>();
                    v.forEach(items::add);
                    items.sort((a, b) -> a.path(key).toString().compareTo(b.path(key).toString()));
                    ArrayNode sorted = ((ObjectNode) node).putArray(field);
                    items.forEach(sorted::add);
                }
                sortMergeKeyedLists(node.get(field));
            }
        } else if (node.isArray()) {
            node.forEach(ManifestsTest::sortMergeKeyedLists);
        }
    }

    static boolean kubectlAvailable() {
        try {
            Process p = new ProcessBuilder("kubectl", "version", "--client").redirectErrorStream(true).start();
            p.getInputStream().readAllBytes();
            return p.waitFor(30, TimeUnit.SECONDS) && p.exitValue() == 0;
        } catch (IOException e) {
            return false;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return false;
        }
    }

    static String kubectlKustomize(Path dir) throws IOException {
        Process p = new ProcessBuilder("kubectl", "kustomize", dir.toString()).start();
        byte[] err;
        String out;
        try (InputStream stdout = p.getInputStream(); InputStream stderr = p.getErrorStream()) {
            out = new String(stdout.readAllBytes(), StandardCharsets.UTF_8);
            err = stderr.readAllBytes();
        }
        try {
            if (!p.waitFor(60, TimeUnit.SECONDS) || p.exitValue() != 0) {
                fail("kubectl kustomize " + dir + ": " + new String(err, StandardCharsets.UTF_8));
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
        return out;
    }

    /**
     * The part of kustomize these manifests use, for machines without kubectl: {@code resources} (files and
     * kustomization directories), {@code patches} with a {@code path} (strategic merge, with the merge keys of the
     * lists the patches touch) and {@code images}. Anything else fails, so a manifest change that needs more
     * kustomize cannot pass here unnoticed.
     */
    static final class MiniKustomize {
        static final Set<String> SUPPORTED = Set.of("apiVersion", "kind", "resources", "patches", "images");
        /** Strategic-merge keys of the Kubernetes API for the lists that appear here; other lists are replaced. */
        static final Map<String, String> MERGE_KEYS = Map.of("containers", "name", "initContainers", "name",
                "volumes", "name", "env", "name", "volumeMounts", "mountPath", "ports", "containerPort",
                "imagePullSecrets", "name");

        static List<JsonNode> render(Path dir) {
            JsonNode k = read(dir.resolve("kustomization.yaml")).get(0);
            Set<String> keys = new LinkedHashSet<>(k.propertyNames());
            keys.removeAll(SUPPORTED);
            assertTrue(keys.isEmpty(), dir + ": kustomization keys this renderer does not implement " + keys
                    + " (install kubectl, or extend ManifestsTest.MiniKustomize)");
            List<JsonNode> out = new ArrayList<>();
            for (JsonNode r : k.path("resources")) {
                Path p = dir.resolve(r.asString()).normalize();
                out.addAll(Files.isDirectory(p) ? render(p) : read(p));
            }
            for (JsonNode patch : k.path("patches")) {
                assertTrue(patch.has("path") && patch.size() == 1, "only patches: - path: (strategic merge)");
                for (JsonNode pd : read(dir.resolve(patch.get("path").asString()))) {
                    JsonNode target = out.stream().filter(d -> sameResource(d, pd)).findFirst()
                            .orElseThrow(() -> new AssertionError("patch target not found: " + pd.path("kind")));
                    merge((ObjectNode) target, (ObjectNode) pd);
                }
            }
            for (JsonNode image : k.path("images")) {
                for (JsonNode d : out) {
                    setImage(d.path("spec").path("template").path("spec"), image);
                }
            }
            return out;
        }

        static List<JsonNode> read(Path file) {
            try {
                return parseYaml(Files.readString(file));
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }

        static boolean sameResource(JsonNode a, JsonNode b) {
            return a.path("kind").equals(b.path("kind")) && a.path("metadata").path("name").equals(b.path("metadata").path("name"));
        }

        static void merge(ObjectNode target, ObjectNode patch) {
            for (String field : patch.propertyNames()) {
                JsonNode p = patch.get(field);
                JsonNode t = target.get(field);
                assertFalse(field.startsWith("$"), "strategic-merge directives are not implemented: " + field);
                if (p.isObject() && t != null && t.isObject()) {
                    merge((ObjectNode) t, (ObjectNode) p);
                } else if (p.isArray() && t != null && t.isArray() && MERGE_KEYS.containsKey(field)) {
                    mergeList((ArrayNode) t, (ArrayNode) p, MERGE_KEYS.get(field));
                } else {
                    target.set(field, p.deepCopy());
                }
            }
        }

        static void mergeList(ArrayNode target, ArrayNode patch, String key) {
            for (JsonNode p : patch) {
                JsonNode match = null;
                for (JsonNode t : target) {
                    if (t.path(key).equals(p.path(key))) {
                        match = t;
                    }
                }
                if (match == null) {
                    target.add(p.deepCopy());
                } else {
                    merge((ObjectNode) match, (ObjectNode) p);
                }
            }
        }

        static void setImage(JsonNode podSpec, JsonNode image) {
            String name = image.get("name").asString();
            for (String list : List.of("initContainers", "containers")) {
                for (JsonNode c : podSpec.path(list)) {
                    String current = c.path("image").asString();
                    if (current.equals(name) || current.startsWith(name + ":") || current.startsWith(name + "@")) {
                        String tag = current.substring(name.length());
                        String newName = image.has("newName") ? image.get("newName").asString() : name;
                        if (image.has("newTag")) {
                            tag = ":" + image.get("newTag").asString();
                        }
                        ((ObjectNode) c).put("image", newName + tag);
                    }
                }
            }
        }
    }
}
