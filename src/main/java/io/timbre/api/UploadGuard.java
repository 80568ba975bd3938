package io.timbre.api;

import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

import org.jboss.logging.Logger;

import com.fasterxml.jackson.databind.ObjectMapper;

import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.timbre.config.TimbreConfig;
import io.vertx.core.http.HttpHeaders;
import io.vertx.core.http.HttpServerRequest;
import io.vertx.ext.web.Router;
import io.vertx.ext.web.RoutingContext;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;

/**
 * Keeps slow clients from starving the others. Every request body must arrive within
 * {@code timbre.http.body-timeout} (else 408 and the connection is closed), and at most
 * {@code timbre.http.max-concurrent-uploads} uploads (multipart, chunked or large bodies) are received at once
 * (one more gets 503 with Retry-After before its body is read). A slot is freed when the answer is sent, the
 * connection closes, or the body deadline passes, whichever comes first, so no slot outlives the deadline.
 */
@ApplicationScoped
public class UploadGuard {

    private static final Logger LOG = Logger.getLogger(UploadGuard.class);
    /** Before the oversized-body check of {@link HttpProblemRoutes} (-3) and Quarkus' own (-2). */
    private static final int ORDER = -4;
    /** A body over this size counts as an upload even when it is not multipart. */
    static final long LARGE_BODY_BYTES = 1 << 20;
    private static final int RETRY_AFTER_SECONDS = 5;
    /** Deadlines a body nobody has started to read gets before its client is cut off anyway. */
    private static final int MAX_ROUNDS = 3;

    private final ObjectMapper json;
    private final long bodyTimeoutMillis;
    private final int maxUploads;
    private final AtomicInteger uploads = new AtomicInteger();

    /** quarkus.http.limits.max-body-size, enforced here for chunked bodies (else Quarkus answers an empty 413). */
    private final long maxBodyBytes;
    /** How often a chunked body's size is checked against the limit while it arrives. */
    private static final long CHUNKED_CHECK_MILLIS = 20;

    UploadGuard(ObjectMapper json, TimbreConfig config, MeterRegistry registry,
            @org.eclipse.microprofile.config.inject.ConfigProperty(name = "quarkus.http.limits.max-body-size")
            java.util.Optional<io.quarkus.runtime.configuration.MemorySize> maxBodySize) {
        this.json = json;
        this.maxBodyBytes = maxBodySize.map(io.quarkus.runtime.configuration.MemorySize::asLongValue).orElse(0L);
        this.bodyTimeoutMillis = Math.max(1, config.http().bodyTimeout().toMillis());
        this.maxUploads = config.http().maxConcurrentUploads();
        Gauge.builder("timbre.http.uploads", uploads, AtomicInteger::get)
                .description("request uploads being received now").register(registry);
    }

    void install(@Observes Router router) {
        router.route().order(ORDER).handler(this::guard);
        if (maxBodyBytes > 0) {
            // After Quarkus' own limit route (order -2), which makes its body reader answer an empty 413 for a
            // chunked body over the limit: that limit is lifted for chunked bodies, which are checked here instead.
            router.route().order(-1).handler(ctx -> {
                if (ctx.request().getHeader(HttpHeaders.CONTENT_LENGTH) == null) {
                    ctx.put(io.quarkus.vertx.http.runtime.VertxHttpRecorder.MAX_REQUEST_SIZE_KEY, Long.MAX_VALUE);
                }
                ctx.next();
            });
        }
    }

    /** A body that went past quarkus.http.limits.max-body-size (a fast chunked body can end before the watch sees it). */
    boolean overBodyLimit(HttpServerRequest request) {
        return maxBodyBytes > 0 && request != null && request.bytesRead() > maxBodyBytes;
    }

    String bodyLimitDetail() {
        return "The request body is over the limit of " + maxBodyBytes + " bytes (quarkus.http.limits.max-body-size).";
    }

    /** The Netty handler {@link #limitWhileReading} adds to an HTTP/1.x connection's pipeline. */
    static final String BODY_LIMIT_HANDLER = "timbre-body-limit";

    /**
     * Counts a chunked body's bytes as Netty decodes them, before Vert.x or Quarkus see them: once the count passes
     * the limit, the rest of the body is dropped (released unread, so nothing buffers it) and the request is
     * answered 413 problem+json and its connection closed. Returns false where this cannot be done (not HTTP/1.x);
     * {@link #watchChunkedSize} serves there.
     */
    private boolean limitWhileReading(RoutingContext ctx) {
        HttpServerRequest request = ctx.request();
        if (request.version() == io.vertx.core.http.HttpVersion.HTTP_2
                || !(request.connection() instanceof io.vertx.core.net.impl.ConnectionBase connection)) {
            return false;
        }
        io.netty.channel.ChannelPipeline pipeline = connection.channel().pipeline();
        if (pipeline.get("handler") == null || !connection.channel().eventLoop().inEventLoop()) {
            return false;
        }
        io.vertx.core.Context context = ctx.vertx().getOrCreateContext();
        if (pipeline.get(BODY_LIMIT_HANDLER) != null) {
            pipeline.remove(BODY_LIMIT_HANDLER);
        }
        pipeline.addBefore("handler", BODY_LIMIT_HANDLER, new io.netty.channel.ChannelInboundHandlerAdapter() {
            private long seen = request.bytesRead();
            private boolean refused;

            @Override
            public void channelRead(io.netty.channel.ChannelHandlerContext nctx, Object msg) {
                if (msg instanceof io.netty.handler.codec.http.HttpContent content) {
                    if (refused) {
                        io.netty.util.ReferenceCountUtil.release(msg);   // past the limit: dropped, never buffered
                        return;
                    }
                    seen += content.content().readableBytes();
                    if (seen > maxBodyBytes) {
                        // This chunk still goes on, so the request's bytesRead shows the overrun to the body's
                        // reader (ProblemMappers answers its failure as this 413); every later one is dropped.
                        refused = true;
                        context.runOnContext(v -> {
                            LOG.debugf("chunked body to %s passed the limit of %d bytes while arriving: 413",
                                    ctx.normalizedPath(), maxBodyBytes);
                            HttpProblemRoutes.sendAndClose(json, ctx, "about:blank", 413, "Content too large", bodyLimitDetail());
                        });
                    }
                }
                nctx.fireChannelRead(msg);
            }
        });
        ctx.addEndHandler(ignored -> {
            if (connection.channel().isOpen() && pipeline.get(BODY_LIMIT_HANDLER) != null) {
                pipeline.remove(BODY_LIMIT_HANDLER);   // the connection may carry another request
            }
        });
        return true;
    }

    /** Answers 413 problem+json as soon as a chunked body passes the size limit (checked every 20 ms). */
    private long watchChunkedSize(RoutingContext ctx) {
        HttpServerRequest request = ctx.request();
        return ctx.vertx().setPeriodic(CHUNKED_CHECK_MILLIS, id -> {
            if (request.isEnded() || ctx.response().ended() || ctx.response().headWritten()) {
                ctx.vertx().cancelTimer(id);
            } else if (request.bytesRead() > maxBodyBytes) {
                ctx.vertx().cancelTimer(id);
                HttpProblemRoutes.sendAndClose(json, ctx, "about:blank", 413, "Content too large", bodyLimitDetail());
            }
        });
    }

    private void guard(RoutingContext ctx) {
        HttpServerRequest request = ctx.request();
        String length = request.getHeader(HttpHeaders.CONTENT_LENGTH);
        boolean chunked = request.getHeader(HttpHeaders.TRANSFER_ENCODING) != null;
        long declared = parseOrZero(length);
        if (!chunked && declared <= 0) {
            ctx.next();   // no body: nothing to wait for
            return;
        }
        String type = request.getHeader(HttpHeaders.CONTENT_TYPE);
        boolean upload = chunked || declared > LARGE_BODY_BYTES
                || (type != null && type.regionMatches(true, 0, "multipart/", 0, "multipart/".length()));
        if (upload && uploads.incrementAndGet() > maxUploads) {
            uploads.decrementAndGet();
            ctx.response().putHeader("Retry-After", Integer.toString(RETRY_AFTER_SECONDS));
            HttpProblemRoutes.sendAndClose(json, ctx, ApiProblem.TYPE_PREFIX + "uploads-busy", 503,
                    "Too many uploads", "The server is receiving " + maxUploads
                            + " uploads already (timbre.http.max-concurrent-uploads); retry in a few seconds.");
            return;
        }
        long sizeWatch = chunked && length == null && maxBodyBytes > 0 && !limitWhileReading(ctx) ? watchChunkedSize(ctx) : -1;
        AtomicBoolean done = new AtomicBoolean();
        Runnable release = () -> {
            if (done.compareAndSet(false, true) && upload) {
                uploads.decrementAndGet();
            }
        };
        AtomicLong timer = new AtomicLong();
        timer.set(ctx.vertx().setTimer(bodyTimeoutMillis, id -> atDeadline(ctx, declared, 1, release, timer)));
        ctx.addEndHandler(ignored -> {
            ctx.vertx().cancelTimer(timer.get());
            if (sizeWatch >= 0) {
                ctx.vertx().cancelTimer(sizeWatch);
            }
            release.run();
        });
        ctx.next();
    }

    /**
     * The body deadline passed. A client is cut off only if the server has been reading its body: a body that
     * arrived whole, or one nobody has started to read yet (the request waits for the server, not the other way
     * round), is given more time, the latter for at most {@link #MAX_ROUNDS} deadlines.
     */
    private void atDeadline(RoutingContext ctx, long declared, int round, Runnable release, AtomicLong timer) {
        HttpServerRequest request = ctx.request();
        if (request.isEnded() || ctx.response().ended()) {
            release.run();
            return;
        }
        long read = request.bytesRead();
        if (declared > 0 && read >= declared) {
            release.run();   // the client sent everything; the server is the slow one
            return;
        }
        if (read == 0 && round < MAX_ROUNDS) {
            timer.set(ctx.vertx().setTimer(bodyTimeoutMillis, id -> atDeadline(ctx, declared, round + 1, release, timer)));
            return;
        }
        release.run();
        LOG.debugf("request body to %s not received within %d ms (%d bytes read): 408", ctx.normalizedPath(),
                bodyTimeoutMillis * round, read);
        HttpProblemRoutes.sendAndClose(json, ctx, ApiProblem.TYPE_PREFIX + "body-timeout", 408,
                "Request body too slow", "The request body did not arrive within " + bodyTimeoutMillis / 1000.0
                        + " s (timbre.http.body-timeout); send it faster or in smaller parts.");
    }

    /** Uploads being received now (for tests and the gauge). */
    public int uploadsInProgress() {
        return uploads.get();
    }

    private static long parseOrZero(String number) {
        if (number == null) {
            return 0;
        }
        try {
            return Long.parseLong(number.trim());
        } catch (NumberFormatException e) {
            return 0;
        }
    }
}
