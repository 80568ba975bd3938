package io.timbre.engine;

import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.quarkus.runtime.ShutdownEvent;
import io.quarkus.runtime.StartupEvent;
import io.timbre.config.TimbreConfig;
import io.timbre.text.TextFrontend;
import io.timbre.text.TextTokenizer;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import org.bytedeco.javacpp.Pointer;
import org.bytedeco.pytorch.global.torch;
import org.jboss.logging.Logger;

import java.nio.file.Path;

/**
 * The in-process model (in the engine's package, so speaker/ and synthesis/ both depend on engine/ and not on each
 * other): the pack loaded at startup (before HTTP opens), its tokenizer and text frontend, feature extractor and
 * synthesizer. Owns all of them and frees them at shutdown. Readiness is DOWN until it is loaded. The services see
 * it through the narrow {@link SpeakerExtraction} and {@link SpeechSynthesis}.
 */
@ApplicationScoped
public class Engine implements SpeakerExtraction, SpeechSynthesis {
    private static final Logger LOG = Logger.getLogger(Engine.class);

    private final TimbreConfig config;
    private final MeterRegistry registry;
    private volatile ModelPack pack;
    private TextTokenizer tokenizer;
    private FeatureExtractor extractor;
    private Synthesizer synthesizer;
    private TextFrontend frontend;
    private volatile String failure;
    private FeatureSchema schema;
    private PromptPlan promptPlan;

    Engine(TimbreConfig config, MeterRegistry registry) {
        this.config = config;
        this.registry = registry;
    }

    void onStart(@Observes StartupEvent event) {
        Path dir = Path.of(config.modelPack());
        try {
            ModelPack p = ModelPack.load(dir, config.device(),
                    new OnnxModels.Options(config.engine().onnxIntraOpThreads(), config.engine().onnxInterOpThreads()));
            if (config.engine().threads() > 0) {
                torch.set_num_threads(config.engine().threads());
            }
            tokenizer = new TextTokenizer(dir.resolve(p.manifest.moduleFiles().get("tokenizer")));
            extractor = new FeatureExtractor(p, tokenizer);
            schema = FeatureSchema.of(p);
            promptPlan = PromptPlan.read(dir, tokenizer::encode);
            HostMemory host = HostMemory.parse(config.engine().hostMemoryPolicy(), config.engine().hostMemoryWatermark());
            DeviceMemory memory = DeviceMemory.forDevice(p.device, config.engine().memoryPolicy(), config.engine().memoryWatermark(), host);
            LOG.infof("memory policies: device %s, host %s", memory.policy().describe(), host.describe());
            TimbreConfig.Engine e = config.engine();
            PackManifest pm = p.manifest;
            frontend = new TextFrontend(tokenizer::count, pm.tokenMaxN(), pm.tokenMinN(), pm.mergeLen());
            synthesizer = new Synthesizer(p, new Synthesizer.Settings(e.batching(), Math.max(1, e.maxBatch()),
                    Math.max(0, e.queueSize()), e.queueTimeout(), e.segmentWorkers(), Math.max(1, e.flowBacklog()),
                    Math.max(1, e.flowBatch())), memory);
            Synthesizer s = synthesizer;
            Gauge.builder("timbre.scheduler.rows", s, x -> x.stats().rows()).description("sequences in the LLM batch").register(registry);
            Gauge.builder("timbre.scheduler.queued", s, x -> x.stats().queued()).description("requests waiting to join").register(registry);
            Gauge.builder("timbre.scheduler.steps", s, x -> x.stats().steps()).description("LLM decode steps run").register(registry);
            Gauge.builder("timbre.scheduler.row.steps", s, x -> x.stats().rowSteps())
                    .description("sequences summed over decode steps (divide by steps for the mean batch)").register(registry);
            Gauge.builder("timbre.scheduler.cancelled", s, x -> x.stats().cancelled()).description("requests cancelled").register(registry);
            Gauge.builder("timbre.scheduler.refused", s, x -> x.stats().refused()).description("requests refused as busy").register(registry);
            Gauge.builder("timbre.scheduler.isolated.failures", s, x -> x.stats().isolatedFailures())
                    .description("segments whose LLM prefill failed and that failed alone (their batch-mates went on)").register(registry);
            Gauge.builder("timbre.scheduler.flow.queued", s, x -> x.stats().flowQueued())
                    .description("finished segments waiting for a flow worker (at flow-backlog, no new segment joins the LLM)").register(registry);
            Gauge.builder("timbre.scheduler.flow.running", s, x -> x.stats().flowRunning())
                    .description("segments in the flow or vocoder now").register(registry);
            Gauge.builder("timbre.flow.steps", s, x -> x.stats().flowSteps()).description("flow Euler steps run").register(registry);
            Gauge.builder("timbre.flow.estimator.calls", s, x -> x.stats().estimatorCalls())
                    .description("flow estimator calls run (several flows' steps stacked into one count once; timbre.flow.steps over "
                            + "this is the mean stack)").register(registry);
            Gauge.builder("timbre.vocoder.calls", s, x -> x.stats().vocoderCalls()).description("vocoder calls run").register(registry);
            Gauge.builder("timbre.feature.extractions", extractor, FeatureExtractor::extractions)
                    .description("speaker features computed (registrations, zero-shot prompts, repairs); a synthesis with a stored speaker adds none")
                    .register(registry);
            pack = p;
            Gauge.builder("timbre.device.memory.allocated", memory, m -> m.stats().allocated()).baseUnit("bytes").register(registry);
            Gauge.builder("timbre.device.memory.reserved", memory, m -> m.stats().reserved()).baseUnit("bytes").register(registry);
            Gauge.builder("timbre.device.memory.releases", memory, DeviceMemory::releases)
                    .description("times the device-memory policy emptied the CUDA cache").register(registry);
            Gauge.builder("timbre.host.memory.trims", host, HostMemory::trims)
                    .description("times freed host memory was returned to the OS (malloc_trim)").register(registry);
            Gauge.builder("timbre.host.memory.trim.seconds", host, h -> h.trimNanos() / 1e9).baseUnit("seconds")
                    .description("time spent in malloc_trim, summed").register(registry);
            Gauge.builder("timbre.host.memory.released", host, HostMemory::releasedBytes).baseUnit("bytes")
                    .description("resident bytes malloc_trim returned, summed").register(registry);
            Gauge.builder("timbre.javacpp.tracked", Pointer::totalBytes).baseUnit("bytes")
                    .description("native bytes tracked by JavaCPP").register(registry);
            Gauge.builder("timbre.javacpp.physical", Pointer::physicalBytes).baseUnit("bytes")
                    .description("resident memory of the process as JavaCPP sees it").register(registry);
        } catch (RuntimeException e) {
            // a broken pack must stop startup with a message naming the problem
            failure = e.getMessage();
            LOG.errorf("cannot load the model pack %s: %s", dir.toAbsolutePath(), e.getMessage());
            throw e;
        }
    }

    void onStop(@Observes ShutdownEvent event) {
        ModelPack p = pack;
        pack = null;
        if (p != null) {
            synthesizer.close();
            tokenizer.close();
            p.close();
        }
    }

    public String device() {
        return config.device();
    }

    public boolean ready() {
        return pack != null;
    }

    public String failure() {
        return failure;
    }

    public ModelPack pack() {
        return require();
    }

    @Override
    public SpeakerFeatures extract(float[] pcm, int sampleRate, String promptText) {
        require();
        return extractor.extract(pcm, sampleRate, promptText);
    }

    @Override
    public TextFrontend textFrontend() {
        require();
        return frontend;
    }

    @Override
    public long[] tokenize(String segment) {
        require();
        return tokenizer.encode(segment);
    }

    @Override
    public PackManifest manifest() {
        return require().manifest;
    }

    @Override
    public org.bytedeco.pytorch.Device torchDevice() {
        return require().device;
    }

    @Override
    public String packKey() {
        return require().key();
    }

    @Override
    public int sampleRate() {
        return require().manifest.outputSampleRate();
    }

    @Override
    public SynthesisJob submit(SpeechRequest request) {
        require();
        return synthesizer.submit(request);
    }

    @Override
    public SpeakerFeatures readFeatures(byte[] file) {
        return SpeakerFeatures.fromFeatureFile(file, featureSchema(), require().device);
    }

    @Override
    public PromptPlan promptPlan() {
        require();
        return promptPlan;
    }

    @Override
    public FeatureSchema featureSchema() {
        require();
        return schema;
    }

    private ModelPack require() {
        ModelPack p = pack;
        if (p == null) {
            throw new IllegalStateException("the model pack is not loaded");
        }
        return p;
    }
}
