package dev.strata.flink;

import com.datastax.driver.core.BatchStatement;
import com.datastax.driver.core.BoundStatement;
import com.datastax.driver.core.Cluster;
import com.datastax.driver.core.CodecRegistry;
import com.datastax.driver.core.ColumnDefinitions;
import com.datastax.driver.core.PreparedStatement;
import com.datastax.driver.core.RemoteEndpointAwareJdkSSLOptions;
import com.datastax.driver.core.ResultSetFuture;
import com.datastax.driver.core.Session;
import com.datastax.driver.core.Statement;
import com.datastax.driver.core.TypeCodec;
import java.io.IOException;
import java.security.GeneralSecurityException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.runtime.state.FunctionInitializationContext;
import org.apache.flink.runtime.state.FunctionSnapshotContext;
import org.apache.flink.streaming.api.checkpoint.CheckpointedFunction;
import org.apache.flink.streaming.api.functions.sink.RichSinkFunction;
import org.apache.flink.types.Row;

/**
 * Writes rows to Cassandra with one prepared statement, grouped into UNLOGGED batches per
 * partition key.
 *
 * <p>Flink's own Cassandra sink sends one request per row. Cassandra applies a batch whose rows
 * share a partition as a single mutation, which costs it well under half the CPU per row of
 * single inserts (docs/benchmarks.md), and the rows of a log stream mostly share a handful of
 * partitions (tenant, service, day).
 *
 * <p>Delivery: rows are buffered per partition and sent when a partition's group reaches {@code
 * batchRows} rows or about {@code batchBytes} bytes (one batch is one mutation, and Cassandra
 * refuses a mutation of more than half a commit-log segment), when {@code maxBufferedRows} are
 * buffered in all, or {@code maxDelayMillis} after
 * the oldest buffered row arrived (checked as rows arrive). On every checkpoint the buffer is
 * sent and the sink waits for every request in flight, so a completed checkpoint means every row
 * before it is in Cassandra. A failed request fails the job (it restarts from its last checkpoint
 * and writes again; the statement must be idempotent, like an INSERT on the full primary key).
 */
public class BatchedCassandraSink extends RichSinkFunction<Row> implements CheckpointedFunction {
  private static final long serialVersionUID = 1L;

  private final String host;
  private final int port;
  private final String query;
  private final int[] partitionKey;
  private final int batchRows;
  private final long batchBytes;
  private final int maxBufferedRows;
  private final long maxDelayMillis;
  private final int maxConcurrentRequests;
  private final String username;
  private final String password;
  private final boolean ssl;
  private final String caPem;

  private transient Cluster cluster;
  private transient Session session;
  private transient PreparedStatement prepared;
  private transient CodecRegistry codecRegistry;
  private transient TypeCodec<Object>[] codecs;
  private transient Semaphore permits;
  private transient AtomicReference<Throwable> failure;
  private transient Map<List<Object>, Group> buffer;
  private transient int buffered;
  private transient long oldestMillis;

  /**
   * @param query the statement every row is bound to, its bind markers in the row's field order
   * @param partitionKey the row positions that make up the table's partition key
   */
  public BatchedCassandraSink(
      String host,
      int port,
      String query,
      int[] partitionKey,
      int batchRows,
      long batchBytes,
      int maxBufferedRows,
      long maxDelayMillis,
      int maxConcurrentRequests,
      String username,
      String password,
      boolean ssl,
      String caPem) {
    this.host = host;
    this.port = port;
    this.query = query;
    this.partitionKey = partitionKey.clone();
    this.batchRows = Math.max(1, batchRows);
    this.batchBytes = Math.max(1, batchBytes);
    this.maxBufferedRows = Math.max(this.batchRows, maxBufferedRows);
    this.maxDelayMillis = maxDelayMillis;
    this.maxConcurrentRequests = Math.max(1, maxConcurrentRequests);
    this.username = username == null ? "" : username;
    this.password = password == null ? "" : password;
    this.ssl = ssl;
    this.caPem = caPem == null ? "" : caPem;
  }

  @Override
  public void open(Configuration parameters) throws GeneralSecurityException, IOException {
    Cluster.Builder builder = Cluster.builder().addContactPoint(host).withPort(port);
    if (!username.isEmpty()) {
      builder = builder.withCredentials(username, password);
    }
    if (ssl) {
      builder =
          builder.withSSL(
              RemoteEndpointAwareJdkSSLOptions.builder()
                  .withSSLContext(TrustedCa.sslContext(caPem))
                  .build());
    }
    cluster = builder.build();
    session = cluster.connect();
    prepared = session.prepare(query);
    codecRegistry = cluster.getConfiguration().getCodecRegistry();
    @SuppressWarnings("unchecked")
    TypeCodec<Object>[] perColumn = new TypeCodec[prepared.getVariables().size()];
    codecs = perColumn;
    permits = new Semaphore(maxConcurrentRequests);
    failure = new AtomicReference<>();
    buffer = new HashMap<>();
    buffered = 0;
  }

  @Override
  public void invoke(Row row, Context context) throws IOException, InterruptedException {
    checkFailure();
    Object[] values = new Object[row.getArity()];
    for (int i = 0; i < values.length; i++) {
      Object value = row.getField(i);
      // SQL arrays arrive as Java arrays; the driver binds CQL lists from java.util.List only.
      values[i] = value instanceof Object[] ? Arrays.asList((Object[]) value) : value;
    }
    List<Object> key = new ArrayList<>(partitionKey.length);
    for (int position : partitionKey) {
      key.add(values[position]);
    }
    if (buffered == 0) {
      oldestMillis = System.currentTimeMillis();
    }
    Group group = buffer.computeIfAbsent(key, k -> new Group());
    group.rows.add(values);
    group.bytes += estimatedBytes(values);
    buffered++;
    if (group.rows.size() >= batchRows || group.bytes >= batchBytes) {
      buffer.remove(key);
      buffered -= group.rows.size();
      send(group.rows);
    }
    if (buffered >= maxBufferedRows || System.currentTimeMillis() - oldestMillis >= maxDelayMillis) {
      sendBuffered();
    }
  }

  private void sendBuffered() throws IOException, InterruptedException {
    for (Group group : buffer.values()) {
      send(group.rows);
    }
    buffer.clear();
    buffered = 0;
    oldestMillis = System.currentTimeMillis();
  }

  /** The rows of one partition waiting to be sent, and roughly how many bytes they bind. */
  private static final class Group {
    final List<Object[]> rows = new ArrayList<>();
    long bytes;
  }

  /** A rough size of a row's values: characters of text, 8 bytes for anything else. */
  static long estimatedBytes(Object value) {
    if (value == null) {
      return 1;
    }
    if (value instanceof CharSequence) {
      return ((CharSequence) value).length();
    }
    if (value instanceof Object[]) {
      long n = 0;
      for (Object item : (Object[]) value) {
        n += estimatedBytes(item);
      }
      return n;
    }
    if (value instanceof Iterable) {
      long n = 0;
      for (Object item : (Iterable<?>) value) {
        n += estimatedBytes(item);
      }
      return n;
    }
    if (value instanceof Map) {
      long n = 0;
      for (Map.Entry<?, ?> e : ((Map<?, ?>) value).entrySet()) {
        n += estimatedBytes(e.getKey()) + estimatedBytes(e.getValue());
      }
      return n;
    }
    return 8;
  }

  /**
   * The statement bound to {@code values}. {@code PreparedStatement.bind(Object...)} looks up a
   * codec for every value from its Java class, which cost more than the rest of this sink; the
   * codec found for a column is kept while its values keep fitting it.
   */
  private BoundStatement bind(Object[] values) {
    BoundStatement bound = prepared.bind();
    ColumnDefinitions variables = prepared.getVariables();
    for (int i = 0; i < values.length; i++) {
      Object value = values[i];
      if (value == null) {
        bound.setToNull(i);
        continue;
      }
      TypeCodec<Object> codec = codecs[i];
      if (codec == null || !codec.accepts(value)) {
        codec = codecRegistry.codecFor(variables.getType(i), value);
        codecs[i] = codec;
      }
      bound.set(i, value, codec);
    }
    return bound;
  }

  private void send(List<Object[]> group) throws IOException, InterruptedException {
    Statement statement;
    if (group.size() == 1) {
      statement = bind(group.get(0));
    } else {
      BatchStatement batch = new BatchStatement(BatchStatement.Type.UNLOGGED);
      for (Object[] values : group) {
        batch.add(bind(values));
      }
      statement = batch;
    }
    permits.acquire();
    checkFailure();
    ResultSetFuture future = session.executeAsync(statement);
    future.addListener(
        () -> {
          try {
            future.getUninterruptibly();
          } catch (Throwable t) {
            failure.compareAndSet(null, t);
          } finally {
            permits.release();
          }
        },
        Runnable::run);
  }

  /** Send what is buffered and wait until every request has been answered. */
  private void flush() throws IOException, InterruptedException {
    sendBuffered();
    if (!permits.tryAcquire(maxConcurrentRequests, 10, TimeUnit.MINUTES)) {
      throw new IOException("Cassandra requests still pending after 10 minutes");
    }
    permits.release(maxConcurrentRequests);
    checkFailure();
  }

  private void checkFailure() throws IOException {
    Throwable t = failure.get();
    if (t != null) {
      throw new IOException("Cassandra write failed: " + t.getMessage(), t);
    }
  }

  @Override
  public void snapshotState(FunctionSnapshotContext context) throws Exception {
    flush();
  }

  @Override
  public void initializeState(FunctionInitializationContext context) {
    // Nothing to restore: every row before a completed checkpoint was written by then.
  }

  @Override
  public void finish() throws Exception {
    flush();
  }

  @Override
  public void close() throws Exception {
    try {
      if (session != null && failure != null && failure.get() == null) {
        // A graceful end (bounded input) already flushed in finish(); this only waits for stragglers.
        permits.tryAcquire(maxConcurrentRequests, 1, TimeUnit.MINUTES);
      }
    } finally {
      if (session != null) {
        session.close();
      }
      if (cluster != null) {
        cluster.close();
      }
    }
  }
}
