package huatuo.it;

import java.io.IOException;
import java.io.InputStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.opensearch.common.logging.LogConfigurator;
import org.opensearch.common.settings.Settings;
import org.opensearch.env.Environment;
import org.opensearch.http.HttpServerTransport;
import org.opensearch.node.InternalSettingsPreparer;
import org.opensearch.node.Node;
import org.opensearch.plugins.Plugin;
import org.opensearch.transport.Netty4Plugin;

/**
 * Runs one real OpenSearch node (the server jars from Maven Central) for the integration tests.
 *
 * <p>Usage: {@code OpenSearchNode HOME HTTP_PORT [--exit-on-stdin-eof] [--warm-up-and-exit] [key=value ...]}.
 * HOME holds everything the node writes (config/, data/, logs/), so starting again with the same HOME finds the
 * same indices. Extra key=value arguments are node settings. --warm-up-and-exit indexes and searches a few
 * documents over HTTP and exits: build.sh runs it under -XX:ArchiveClassesAtExit to make the class-data-sharing
 * archive that halves the node's start time.
 *
 * <p>Why not bin/opensearch: the distribution's Bootstrap refuses to run as root ("can not run opensearch as
 * root") and the tests and CI run as root. Building the {@link Node} here keeps the real server (cluster state,
 * Lucene, translog, REST and bulk) while skipping the launcher's root check, security manager and production
 * bootstrap checks, which only make sense for a node exposed beyond loopback. The Netty4 module, which a
 * distribution loads from modules/, is given as a classpath plugin.
 */
public final class OpenSearchNode {
  private OpenSearchNode() {}

  /**
   * Console only. The deprecation logger also feeds HeaderWarningAppender, which is what puts deprecation
   * warnings into HTTP "Warning" response headers in a real distribution.
   */
  private static final String LOG4J2_PROPERTIES = String.join("\n",
      "status = error",
      "appender.console.type = Console",
      "appender.console.name = console",
      "appender.console.layout.type = PatternLayout",
      "appender.console.layout.pattern = [%d{ISO8601}][%-5p][%-25c{1.}] [%node_name]%marker %m%n",
      "appender.header_warning.type = HeaderWarningAppender",
      "appender.header_warning.name = header_warning",
      "rootLogger.level = info",
      "rootLogger.appenderRef.console.ref = console",
      "logger.deprecation.name = org.opensearch.deprecation",
      "logger.deprecation.level = deprecation",
      "logger.deprecation.appenderRef.console.ref = console",
      "logger.deprecation.appenderRef.header_warning.ref = header_warning",
      "logger.deprecation.additivity = false",
      "");

  /** Node's classpath-plugin constructor is protected: the same door the test framework's MockNode uses. */
  private static final class ClasspathPluginsNode extends Node {
    ClasspathPluginsNode(Environment env, Collection<Class<? extends Plugin>> plugins) {
      super(env, plugins, true);
    }
  }

  public static void main(String[] args) throws Exception {
    if (args.length < 2) {
      System.err.println(
          "usage: OpenSearchNode HOME HTTP_PORT [--exit-on-stdin-eof] [--warm-up-and-exit] [key=value ...]");
      System.exit(2);
    }
    Path home = Path.of(args[0]).toAbsolutePath();
    int httpPort = Integer.parseInt(args[1]);
    boolean exitOnStdinEof = false;
    boolean warmUpAndExit = false;
    Settings.Builder builder = Settings.builder()
        .put("path.home", home.toString())
        .put("path.data", home.resolve("data").toString())
        .put("path.logs", home.resolve("logs").toString())
        .put("cluster.name", "huatuo-it")
        .put("node.name", "huatuo-it")
        .put("network.host", "127.0.0.1")
        .put("http.port", httpPort)
        // The transport layer still binds even on a single node: any free port.
        .put("transport.port", 0)
        .put("discovery.type", "single-node")
        // A busy CI disk must not turn the indices read-only (flood-stage watermark) mid-test.
        .put("cluster.routing.allocation.disk.threshold_enabled", false);
    for (int i = 2; i < args.length; i++) {
      if (args[i].equals("--exit-on-stdin-eof")) {
        exitOnStdinEof = true;
        continue;
      }
      if (args[i].equals("--warm-up-and-exit")) {
        warmUpAndExit = true;
        continue;
      }
      int eq = args[i].indexOf('=');
      if (eq <= 0) throw new IllegalArgumentException("not a key=value setting: " + args[i]);
      builder.put(args[i].substring(0, eq), args[i].substring(eq + 1));
    }
    Settings settings = builder.build();
    Files.createDirectories(home.resolve("data"));
    Files.createDirectories(home.resolve("logs"));

    if (exitOnStdinEof) {
      // The harness holds our stdin open; EOF means it died without stopping us, so do not linger.
      Thread watcher = new Thread(() -> {
        try (InputStream in = System.in) {
          byte[] buf = new byte[256];
          while (in.read(buf) >= 0) {
            // Drain: nothing is sent on purpose.
          }
        } catch (IOException ignored) {
          // A broken pipe is EOF too.
        }
        System.err.println("stdin closed: stopping the node");
        System.exit(0);
      }, "huatuo-it-stdin-watch");
      watcher.setDaemon(true);
      watcher.start();
    }

    // Logging as a distribution does it (LogConfigurator reads config/log4j2.properties), but to stdout only:
    // the harness keeps the output and shows it when the node fails.
    Path config = home.resolve("config");
    Files.createDirectories(config);
    Files.writeString(config.resolve("log4j2.properties"), LOG4J2_PROPERTIES);
    Environment env = InternalSettingsPreparer.prepareEnvironment(
        settings, Map.of(), config, () -> settings.get("node.name"));
    LogConfigurator.registerErrorListener();
    LogConfigurator.setNodeName(settings.get("node.name"));
    LogConfigurator.configure(env);
    Node node = new ClasspathPluginsNode(env, List.of(Netty4Plugin.class));

    CountDownLatch closed = new CountDownLatch(1);
    // SIGTERM/SIGINT: close the node (flushes shards, writes the cluster state) before the JVM exits.
    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
      try {
        node.close();
        if (!node.awaitClose(30, TimeUnit.SECONDS)) System.err.println("node did not close within 30 s");
      } catch (IOException | InterruptedException | RuntimeException e) {
        e.printStackTrace();
      } finally {
        closed.countDown();
      }
    }, "huatuo-it-node-close"));

    try {
      node.start();
      if (warmUpAndExit) {
        int port =
            node.injector().getInstance(HttpServerTransport.class).boundAddress().publishAddress().getPort();
        warmUp("http://127.0.0.1:" + port);
        System.exit(0);
      }
    } catch (Exception e) {
      // E.g. the HTTP port is taken: say why and exit (the close hook runs), not linger half-started.
      e.printStackTrace();
      System.exit(1);
    }

    // OpenSearch's threads are daemons: keep the JVM alive until a signal or EOF ends it.
    closed.await();
  }

  /** What the tests and the agent do: create an index, bulk with _id, refresh, search, count, get. */
  private static void warmUp(String url) throws IOException, InterruptedException {
    HttpClient http = HttpClient.newHttpClient();
    StringBuilder bulk = new StringBuilder();
    for (int i = 0; i < 200; i++) {
      bulk.append("{\"index\":{\"_index\":\"warm-up\",\"_id\":\"").append(i).append("\"}}\n");
      bulk.append("{\"tracer_name\":\"oom\",\"tracer_time\":\"2024-01-01T00:00:00.000Z\",")
          .append("\"tracer_data\":{\"seq\":").append(i).append("}}\n");
    }
    String[][] calls = {
      {"PUT", "/warm-up", "{\"settings\":{\"number_of_shards\":1,\"number_of_replicas\":0}}"},
      {"GET", "/_cluster/health?wait_for_status=green&timeout=30s", null},
      {"POST", "/_bulk?refresh=wait_for", bulk.toString()},
      {"POST", "/_bulk?refresh=true", bulk.toString()},
      {"POST", "/warm-up/_search", "{\"query\":{\"term\":{\"tracer_data.seq\":7}}}"},
      {"GET", "/warm-up/_count", null},
      {"GET", "/warm-up/_doc/7", null},
      {"GET", "/_cat/indices?format=json", null},
      {"DELETE", "/warm-up", null},
    };
    for (String[] c : calls) {
      HttpRequest.BodyPublisher body = c[2] == null
          ? HttpRequest.BodyPublishers.noBody()
          : HttpRequest.BodyPublishers.ofString(c[2]);
      HttpRequest req = HttpRequest.newBuilder(URI.create(url + c[1]))
          .method(c[0], body)
          .header("content-type", c[1].startsWith("/_bulk") ? "application/x-ndjson" : "application/json")
          .build();
      HttpResponse<String> res = http.send(req, HttpResponse.BodyHandlers.ofString());
      if (res.statusCode() >= 300) throw new IOException(c[0] + " " + c[1] + ": HTTP " + res.statusCode());
    }
  }
}
