package dev.strata.flink;

import java.io.IOException;
import java.security.GeneralSecurityException;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashSet;
import java.util.Set;
import javax.net.ssl.SSLContext;
import org.apache.flink.api.connector.sink2.SinkWriter;
import org.apache.flink.connector.base.DeliveryGuarantee;
import org.apache.flink.connector.opensearch.sink.BulkResponseInspector;
import org.apache.flink.connector.opensearch.sink.FlushBackoffType;
import org.apache.flink.connector.opensearch.sink.Opensearch2Sink;
import org.apache.flink.connector.opensearch.sink.Opensearch2SinkBuilder;
import org.apache.flink.connector.opensearch.sink.OpensearchEmitter;
import org.apache.flink.connector.opensearch.sink.RequestIndexer;
import org.apache.flink.connector.opensearch.sink.RestClientFactory;
import org.apache.flink.metrics.Counter;
import org.apache.flink.types.Row;
import org.apache.flink.util.FlinkRuntimeException;
import org.apache.http.Header;
import org.apache.http.HttpHost;
import org.apache.http.auth.AuthScope;
import org.apache.http.auth.UsernamePasswordCredentials;
import org.apache.http.impl.client.BasicCredentialsProvider;
import org.apache.http.message.BasicHeader;
import org.opensearch.action.bulk.BulkItemResponse;
import org.opensearch.action.bulk.BulkRequest;
import org.opensearch.action.bulk.BulkResponse;
import org.opensearch.action.index.IndexRequest;
import org.opensearch.client.RestClientBuilder;
import org.opensearch.common.xcontent.XContentType;
import org.opensearch.core.rest.RestStatus;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The hot tier's Flink sink: every row {@code (id, index, source JSON)} becomes a plain index
 * request with that {@code _id}.
 *
 * <p>The connector's Table sink turns a table with a primary key into update requests with
 * {@code doc_as_upsert}: OpenSearch then fetches the stored document, merges and re-indexes it,
 * and the document travels twice in the request. An index request with {@code _id = log_id} is
 * as idempotent (a replay or a restart overwrites the same document) and is the cheapest write
 * OpenSearch has.
 *
 * <p>Delivery: the connector's writer (at-least-once) sends a bulk request when {@code
 * maxActions} requests or {@code maxSizeMb} are buffered, every {@code intervalMillis}, and on
 * every checkpoint, which waits for the requests in flight; items OpenSearch pushes back (429)
 * are retried with backoff. Any other failed item fails the job (it restarts from its last
 * checkpoint and writes again), except a document the index's mapping refuses: sending it again
 * would fail the same way forever, so it is logged with its id and reason and counted in the
 * {@code documentsRejected} metric; the warm and cold tiers still hold the record.
 */
public final class OpensearchIndexSink {
  private static final Logger LOG = LoggerFactory.getLogger(OpensearchIndexSink.class);

  /** Error types OpenSearch gives a document its mapping cannot take (HTTP 400). */
  static final Set<String> MAPPING_REJECTIONS =
      Collections.unmodifiableSet(
          new HashSet<>(
              Arrays.asList(
                  "mapper_parsing_exception",
                  "strict_dynamic_mapping_exception",
                  "document_parsing_exception")));

  private OpensearchIndexSink() {}

  /**
   * @param hosts OpenSearch endpoints, e.g. {@code http://127.0.0.1:9200} or {@code https://…}
   * @param backoff {@code EXPONENTIAL}, {@code CONSTANT} or {@code NONE}, for items pushed back
   * @param username basic auth user, or empty
   * @param token a bearer token, or empty
   * @param caPem the PEM text of the CAs an {@code https} endpoint's certificate is checked
   *     against, or empty for the JVM's trusted CAs
   */
  public static Opensearch2Sink<Row> build(
      String[] hosts,
      int maxActions,
      int maxSizeMb,
      long intervalMillis,
      String backoff,
      int maxRetries,
      long backoffDelayMillis,
      String username,
      String password,
      String token,
      String caPem) {
    HttpHost[] httpHosts = new HttpHost[hosts.length];
    for (int i = 0; i < hosts.length; i++) {
      httpHosts[i] = HttpHost.create(hosts[i]);
    }
    return new Opensearch2SinkBuilder<Row>()
        .setHosts(httpHosts)
        .setEmitter(new IndexRequestEmitter())
        .setDeliveryGuarantee(DeliveryGuarantee.AT_LEAST_ONCE)
        .setBulkFlushMaxActions(maxActions)
        .setBulkFlushMaxSizeMb(maxSizeMb)
        .setBulkFlushInterval(intervalMillis)
        .setBulkFlushBackoffStrategy(
            FlushBackoffType.valueOf(backoff), maxRetries, backoffDelayMillis)
        .setBulkResponseInspectorFactory(
            context -> new Inspector(context.metricGroup().counter("documentsRejected")))
        .setRestClientFactory(new SecureRestClientFactory(username, password, token, caPem))
        .build();
  }

  /**
   * The REST client's credentials and TLS trust. Replaces the connector's default factory, which
   * knows basic auth but neither a token nor a CA of its own (only "trust everything").
   */
  static final class SecureRestClientFactory implements RestClientFactory {
    private static final long serialVersionUID = 1L;
    private final String username;
    private final String password;
    private final String token;
    private final String caPem;

    SecureRestClientFactory(String username, String password, String token, String caPem) {
      this.username = username == null ? "" : username;
      this.password = password == null ? "" : password;
      this.token = token == null ? "" : token;
      this.caPem = caPem == null ? "" : caPem;
    }

    @Override
    public void configureRestClientBuilder(
        RestClientBuilder builder, RestClientFactory.RestClientConfig config) {
      if (!token.isEmpty()) {
        builder.setDefaultHeaders(
            new Header[] {new BasicHeader("Authorization", "Bearer " + token)});
      }
      if (username.isEmpty() && caPem.isEmpty()) {
        return;
      }
      final SSLContext context;
      try {
        context = caPem.isEmpty() ? null : TrustedCa.sslContext(caPem);
      } catch (GeneralSecurityException | IOException e) {
        throw new FlinkRuntimeException("cannot read the OpenSearch CA certificates", e);
      }
      builder.setHttpClientConfigCallback(
          http -> {
            if (!username.isEmpty()) {
              BasicCredentialsProvider credentials = new BasicCredentialsProvider();
              credentials.setCredentials(
                  AuthScope.ANY, new UsernamePasswordCredentials(username, password));
              http.setDefaultCredentialsProvider(credentials);
            }
            if (context != null) {
              http.setSSLContext(context);
            }
            return http;
          });
    }
  }

  /** Row {@code (id, index, source)} → {@code index} request; the source is JSON text. */
  static final class IndexRequestEmitter implements OpensearchEmitter<Row> {
    private static final long serialVersionUID = 1L;

    @Override
    public void emit(Row row, SinkWriter.Context context, RequestIndexer indexer) {
      String id = (String) row.getField(0);
      String index = (String) row.getField(1);
      String source = (String) row.getField(2);
      indexer.add(new IndexRequest(index).id(id).source(source, XContentType.JSON));
    }
  }

  /** Fails the job on any failed item but a mapping rejection, which it logs and counts. */
  static final class Inspector implements BulkResponseInspector {
    private final Counter rejected;

    Inspector(Counter rejected) {
      this.rejected = rejected;
    }

    @Override
    public void inspect(BulkRequest request, BulkResponse response) {
      if (!response.hasFailures()) {
        return;
      }
      FlinkRuntimeException fatal = null;
      for (BulkItemResponse item : response.getItems()) {
        if (!item.isFailed()) {
          continue;
        }
        BulkItemResponse.Failure failure = item.getFailure();
        if (isMappingRejection(failure)) {
          rejected.inc();
          LOG.warn(
              "OpenSearch refused document {} in {}: {}",
              item.getId(),
              item.getIndex(),
              failure.getMessage());
          continue;
        }
        FlinkRuntimeException error =
            new FlinkRuntimeException(
                String.format(
                    "OpenSearch could not index document %s in %s (%s): %s",
                    item.getId(), item.getIndex(), failure.getStatus(), failure.getMessage()),
                failure.getCause());
        if (fatal == null) {
          fatal = error;
        } else {
          fatal.addSuppressed(error);
        }
      }
      if (fatal != null) {
        throw fatal;
      }
    }

    static boolean isMappingRejection(BulkItemResponse.Failure failure) {
      if (failure.getStatus() != RestStatus.BAD_REQUEST) {
        return false;
      }
      // Parsed from the REST answer, the cause is a generic exception whose message names the
      // server-side type: "OpenSearch exception [type=mapper_parsing_exception, reason=…]".
      String message = String.valueOf(failure.getMessage());
      for (String type : MAPPING_REJECTIONS) {
        if (message.contains("type=" + type)) {
          return true;
        }
      }
      return false;
    }
  }
}
