package dev.strata.flink;

import java.nio.charset.StandardCharsets;
import java.time.LocalDateTime;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.apache.flink.api.common.state.MapState;
import org.apache.flink.api.common.state.MapStateDescriptor;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.functions.KeySelector;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.datastream.SingleOutputStreamOperator;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.types.Row;
import org.apache.flink.util.Collector;

/**
 * The ingest job's log metrics step in the JVM: a port of {@code core.metrics.ServiceAccumulator}
 * (the reference, whose module docstring says why the counts are kept as contributions, why their
 * ids hold the Kafka position that opened them, and why the sink sends only at checkpoints).
 *
 * <p>Input rows, by position: tenant, service, level, pattern_id (or null), host, timestamp_us,
 * message, kafka_partition, kafka_offset ({@code jobs.ingest.metrics.rows_sql}). Output rows:
 * (contribution id, index, document JSON) for {@code OpensearchIndexSink}.
 *
 * <p>Why Java: the same counting in a PyFlink function made about ten keyed-state calls a record
 * from Python to the JVM, which cost far more than the counting itself. Here every state access is
 * a heap-map lookup in the task's own thread.
 *
 * <p>The keyed state (per tenant and service) has the reference's meaning: open contributions by
 * {@code res|level|pattern|host|bucket} as {partition, offset, count, bytes, last_ms}, the keys
 * changed since the last flush, the host labels in use (at most {@link #MAX_HOSTS_PER_SERVICE}),
 * and when the pending flush timer is due.
 */
public final class LogMetricsAggregate extends KeyedProcessFunction<String, Row, Row> {
  private static final long serialVersionUID = 1L;

  static final String SEP = "\u001f";
  static final String[] RESOLUTIONS = {"1m", "1h", "1d"};
  static final long[] RESOLUTION_S = {60L, 3600L, 86400L};
  public static final int MAX_HOSTS_PER_SERVICE = 200;
  public static final String OTHER_HOST = "_other";
  public static final String NO_PATTERN = "_none";

  // Far in the future: an event-time timer there fires only when a bounded input ends (the source
  // then sends the final watermark), so a bounded run flushes what it counted before it finishes.
  static final long END_OF_INPUT_MS = 1L << 62;

  private final String indexPrefix;
  private final long flushMs;
  private final long idleS;

  private transient ValueState<Long> flushAt;
  private transient Accumulator acc;

  public LogMetricsAggregate(String indexPrefix, long flushS, long idleS) {
    this.indexPrefix = indexPrefix;
    this.flushMs = flushS * 1000L;
    this.idleS = idleS;
  }

  /**
   * Key {@code rows} by (tenant, service) and count them; the stream of (id, index, JSON) rows.
   * Called from Python through the gateway, so no record crosses into Python for metrics.
   */
  public static SingleOutputStreamOperator<Row> attach(
      DataStream<Row> rows, String indexPrefix, int flushS, int idleS, String name, String uid) {
    return rows.keyBy(new ServiceKey(), Types.STRING)
        .process(new LogMetricsAggregate(indexPrefix, flushS, idleS))
        .returns(Types.ROW(Types.STRING, Types.STRING, Types.STRING))
        .name(name)
        .uid(uid);
  }

  /** An accumulator over in-memory maps, to check against the reference without a job. */
  public static Accumulator inMemoryAccumulator() {
    return Accumulator.inMemory();
  }

  /** The key of a row: tenant and service, joined as the reference's operator joined them. */
  public static final class ServiceKey implements KeySelector<Row, String> {
    private static final long serialVersionUID = 1L;

    @Override
    public String getKey(Row row) {
      return row.getField(0) + SEP + row.getField(1);
    }
  }

  @Override
  public void open(Configuration parameters) {
    // State names differ from the Python operator's, whose values were pickled: a job restored
    // from its checkpoint starts these empty, which is exact as a replay is (core.metrics).
    TypeInformation<long[]> contribution = PrimitiveArrayTypeInfo.LONG_PRIMITIVE_ARRAY_TYPE_INFO;
    MapState<String, long[]> open =
        getRuntimeContext()
            .getMapState(new MapStateDescriptor<>("contributions", Types.STRING, contribution));
    MapState<String, Boolean> dirty =
        getRuntimeContext()
            .getMapState(new MapStateDescriptor<>("changed", Types.STRING, Types.BOOLEAN));
    MapState<String, Boolean> hosts =
        getRuntimeContext()
            .getMapState(new MapStateDescriptor<>("host-labels", Types.STRING, Types.BOOLEAN));
    flushAt = getRuntimeContext().getState(new ValueStateDescriptor<>("flush-at", Types.LONG));
    acc = new Accumulator(new StateStore<>(open), new StateStore<>(dirty), new StateStore<>(hosts));
  }

  @Override
  public void processElement(Row row, Context ctx, Collector<Row> out) throws Exception {
    long nowMs = ctx.timerService().currentProcessingTime();
    long tsUs = ((Number) row.getField(5)).longValue();
    acc.add(
        (String) row.getField(2),
        (String) row.getField(3),
        (String) row.getField(4),
        Math.floorDiv(tsUs, 1_000_000L),
        utf8Length((String) row.getField(6)),
        ((Number) row.getField(7)).longValue(),
        ((Number) row.getField(8)).longValue(),
        nowMs);
    Long due = flushAt.value();
    // null: no flush pending. Overdue: the pending timer did not fire (guards a timer lost across
    // a restore, which would leave this key's counts unwritten for good).
    if (due == null || due < nowMs - 2 * flushMs) {
      ctx.timerService().registerProcessingTimeTimer(nowMs + flushMs);
      ctx.timerService().registerEventTimeTimer(END_OF_INPUT_MS);
      flushAt.update(nowMs + flushMs);
    }
  }

  @Override
  public void onTimer(long timestamp, OnTimerContext ctx, Collector<Row> out) throws Exception {
    String key = ctx.getCurrentKey();
    int cut = key.indexOf(SEP);
    for (String[] doc : acc.flush(key.substring(0, cut), key.substring(cut + 1), indexPrefix)) {
      out.collect(Row.of(doc[0], doc[1], doc[2]));
    }
    Long due = flushAt.value();
    if (timestamp >= END_OF_INPUT_MS || due == null || timestamp != due) {
      return; // the end of the input, or a timer another one has taken over from
    }
    long nowMs = ctx.timerService().currentProcessingTime();
    if (acc.closeIdle(nowMs, idleS) > 0) {
      ctx.timerService().registerProcessingTimeTimer(nowMs + flushMs);
      flushAt.update(nowMs + flushMs);
    } else {
      ctx.timerService().deleteEventTimeTimer(END_OF_INPUT_MS);
      flushAt.clear();
    }
  }

  /** Bytes of {@code text} in UTF-8, a lone surrogate counted as Python's "surrogatepass" does. */
  static int utf8Length(String text) {
    if (text == null) {
      return 0;
    }
    int n = 0;
    for (int i = 0; i < text.length(); i++) {
      char c = text.charAt(i);
      if (c < 0x80) {
        n += 1;
      } else if (c < 0x800) {
        n += 2;
      } else if (Character.isHighSurrogate(c)
          && i + 1 < text.length()
          && Character.isLowSurrogate(text.charAt(i + 1))) {
        n += 4;
        i++;
      } else {
        n += 3;
      }
    }
    return n;
  }

  /** The slice of a map the accumulator needs: Flink's {@code MapState} in the job. */
  public interface Store<V> {
    V get(String key) throws Exception;

    void put(String key, V value) throws Exception;

    void remove(String key) throws Exception;

    Iterable<Map.Entry<String, V>> entries() throws Exception;
  }

  static final class StateStore<V> implements Store<V> {
    private final MapState<String, V> state;

    StateStore(MapState<String, V> state) {
      this.state = state;
    }

    @Override
    public V get(String key) throws Exception {
      return state.get(key);
    }

    @Override
    public void put(String key, V value) throws Exception {
      state.put(key, value);
    }

    @Override
    public void remove(String key) throws Exception {
      state.remove(key);
    }

    @Override
    public Iterable<Map.Entry<String, V>> entries() throws Exception {
      return state.entries();
    }
  }

  /** A plain in-memory store, so the accumulator can be checked against the reference directly. */
  public static final class MemoryStore<V> implements Store<V> {
    private final Map<String, V> map = new HashMap<>();

    @Override
    public V get(String key) {
      return map.get(key);
    }

    @Override
    public void put(String key, V value) {
      map.put(key, value);
    }

    @Override
    public void remove(String key) {
      map.remove(key);
    }

    @Override
    public Iterable<Map.Entry<String, V>> entries() {
      return map.entrySet();
    }
  }

  /** {@code core.metrics.ServiceAccumulator}, method for method. */
  public static final class Accumulator {
    private final Store<long[]> open;
    private final Store<Boolean> dirty;
    private final Store<Boolean> hosts;

    public Accumulator(Store<long[]> open, Store<Boolean> dirty, Store<Boolean> hosts) {
      this.open = open;
      this.dirty = dirty;
      this.hosts = hosts;
    }

    /** An accumulator over in-memory maps. */
    public static Accumulator inMemory() {
      return new Accumulator(new MemoryStore<>(), new MemoryStore<>(), new MemoryStore<>());
    }

    String hostLabel(String host) throws Exception {
      if (hosts.get(host) != null) {
        return host;
      }
      int n = 0;
      for (Map.Entry<String, Boolean> ignored : hosts.entries()) {
        n++;
      }
      if (n >= MAX_HOSTS_PER_SERVICE) {
        return OTHER_HOST;
      }
      hosts.put(host, Boolean.TRUE);
      return host;
    }

    /** Count one record ({@code tsS} its event time, {@code size} its message's bytes). */
    public void add(
        String level,
        String pattern,
        String host,
        long tsS,
        long size,
        long partition,
        long offset,
        long nowMs)
        throws Exception {
      String label = hostLabel(host);
      String prefix =
          level + SEP + (pattern == null || pattern.isEmpty() ? NO_PATTERN : pattern) + SEP + label;
      for (int r = 0; r < RESOLUTIONS.length; r++) {
        long bucket = tsS - Math.floorMod(tsS, RESOLUTION_S[r]);
        String key = RESOLUTIONS[r] + SEP + prefix + SEP + bucket;
        long[] c = open.get(key);
        if (c == null) {
          c = new long[] {partition, offset, 0L, 0L, 0L};
        }
        c[2] += 1;
        c[3] += size;
        c[4] = nowMs;
        open.put(key, c);
        dirty.put(key, Boolean.TRUE);
      }
    }

    /** (id, index, document JSON) of every contribution changed since the last flush. */
    public List<String[]> flush(String tenant, String service, String indexPrefix)
        throws Exception {
      List<String> keys = new ArrayList<>();
      for (Map.Entry<String, Boolean> e : dirty.entries()) {
        keys.add(e.getKey());
      }
      List<String[]> out = new ArrayList<>(keys.size());
      for (String key : keys) {
        long[] c = open.get(key);
        dirty.remove(key);
        if (c == null) {
          continue;
        }
        // res, level and pattern never hold the separator and the bucket is last; the host is
        // what lies between, whatever it holds.
        int a = key.indexOf(SEP);
        int b = key.indexOf(SEP, a + 1);
        int d = key.indexOf(SEP, b + 1);
        int z = key.lastIndexOf(SEP);
        String res = key.substring(0, a);
        String level = key.substring(a + 1, b);
        String pattern = key.substring(b + 1, d);
        String host = key.substring(d + 1, z);
        long bucket = Long.parseLong(key.substring(z + 1));
        String id =
            contributionId(tenant, service, level, pattern, host, res, bucket, c[0], c[1]);
        String index = indexPrefix + ".metrics-" + indexSuffix(res, bucket);
        StringBuilder doc = new StringBuilder(160);
        doc.append("{\"tenant\":");
        json(doc, tenant);
        doc.append(",\"service\":");
        json(doc, service);
        doc.append(",\"level\":");
        json(doc, level);
        doc.append(",\"pattern\":");
        json(doc, pattern);
        doc.append(",\"host\":");
        json(doc, host);
        doc.append(",\"bucket\":").append(bucket);
        doc.append(",\"count\":").append(c[2]);
        doc.append(",\"bytes\":").append(c[3]).append('}');
        out.add(new String[] {id, index, doc.toString()});
      }
      return out;
    }

    /**
     * Close contributions idle for {@code idleS} (call after {@link #flush}), forget hosts no open
     * contribution uses; returns how many contributions stay open.
     */
    public int closeIdle(long nowMs, long idleS) throws Exception {
      long limit = nowMs - idleS * 1000L;
      int left = 0;
      Set<String> inUse = new HashSet<>();
      List<String> closed = new ArrayList<>();
      for (Map.Entry<String, long[]> e : open.entries()) {
        if (e.getValue()[4] < limit) {
          closed.add(e.getKey());
        } else {
          left++;
          String key = e.getKey();
          int a = key.indexOf(SEP);
          int b = key.indexOf(SEP, a + 1);
          int d = key.indexOf(SEP, b + 1);
          inUse.add(key.substring(d + 1, key.lastIndexOf(SEP)));
        }
      }
      for (String key : closed) {
        open.remove(key);
      }
      List<String> forgotten = new ArrayList<>();
      for (Map.Entry<String, Boolean> e : hosts.entries()) {
        if (!inUse.contains(e.getKey())) {
          forgotten.add(e.getKey());
        }
      }
      for (String host : forgotten) {
        hosts.remove(host);
      }
      return left;
    }
  }

  /** {@code core.metrics.index_suffix}: minutes in monthly indices, hours and days in yearly. */
  public static String indexSuffix(String res, long bucket) {
    LocalDateTime day = LocalDateTime.ofEpochSecond(bucket, 0, ZoneOffset.UTC);
    if (res.equals("1m")) {
      int month = day.getMonthValue();
      return res + "-" + day.getYear() + (month < 10 ? ".0" : ".") + month;
    }
    return res + "-" + day.getYear();
  }

  /** {@code core.metrics.contribution_id}: BLAKE2b-128 of the series, bucket and position. */
  public static String contributionId(
      String tenant,
      String service,
      String level,
      String pattern,
      String host,
      String res,
      long bucket,
      long partition,
      long offset) {
    String text =
        String.join(
            SEP,
            tenant,
            service,
            level,
            pattern,
            host,
            res,
            Long.toString(bucket),
            Long.toString(partition),
            Long.toString(offset));
    byte[] digest = Blake2b.digest(text.getBytes(StandardCharsets.UTF_8), 16);
    StringBuilder hex = new StringBuilder(32);
    for (byte x : digest) {
      hex.append(Character.forDigit((x >> 4) & 0xf, 16)).append(Character.forDigit(x & 0xf, 16));
    }
    return hex.toString();
  }

  /** A JSON string as orjson writes it: UTF-8 as is, quote, backslash and controls escaped. */
  static void json(StringBuilder out, String s) {
    out.append('"');
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      switch (c) {
        case '"':
          out.append("\\\"");
          break;
        case '\\':
          out.append("\\\\");
          break;
        case '\n':
          out.append("\\n");
          break;
        case '\r':
          out.append("\\r");
          break;
        case '\t':
          out.append("\\t");
          break;
        case '\b':
          out.append("\\b");
          break;
        case '\f':
          out.append("\\f");
          break;
        default:
          if (c < 0x20) {
            out.append(String.format("\\u%04x", (int) c));
          } else {
            out.append(c);
          }
      }
    }
    out.append('"');
  }

  /** BLAKE2b (RFC 7693), unkeyed, as Python's {@code hashlib.blake2b(data, digest_size=n)}. */
  static final class Blake2b {
    private static final long[] IV = {
      0x6a09e667f3bcc908L, 0xbb67ae8584caa73bL, 0x3c6ef372fe94f82bL, 0xa54ff53a5f1d36f1L,
      0x510e527fade682d1L, 0x9b05688c2b3e6c1fL, 0x1f83d9abfb41bd6bL, 0x5be0cd19137e2179L
    };
    private static final int[][] SIGMA = {
      {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
      {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
      {11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4},
      {7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8},
      {9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13},
      {2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9},
      {12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11},
      {13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10},
      {6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5},
      {10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0},
      {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
      {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3}
    };

    private Blake2b() {}

    static byte[] digest(byte[] data, int outLen) {
      long[] h = IV.clone();
      h[0] ^= 0x01010000L ^ outLen;
      long[] m = new long[16];
      long[] v = new long[16];
      int blocks = Math.max(1, (data.length + 127) / 128);
      for (int b = 0; b < blocks; b++) {
        boolean last = b == blocks - 1;
        int start = b * 128;
        int len = Math.min(128, data.length - start);
        byte[] block = new byte[128];
        if (len > 0) {
          System.arraycopy(data, start, block, 0, len);
        }
        for (int i = 0; i < 16; i++) {
          long w = 0;
          for (int j = 7; j >= 0; j--) {
            w = (w << 8) | (block[i * 8 + j] & 0xffL);
          }
          m[i] = w;
        }
        long counter = last ? data.length : (long) (b + 1) * 128;
        System.arraycopy(h, 0, v, 0, 8);
        System.arraycopy(IV, 0, v, 8, 8);
        v[12] ^= counter;
        if (last) {
          v[14] = ~v[14];
        }
        for (int r = 0; r < 12; r++) {
          int[] s = SIGMA[r];
          mix(v, 0, 4, 8, 12, m[s[0]], m[s[1]]);
          mix(v, 1, 5, 9, 13, m[s[2]], m[s[3]]);
          mix(v, 2, 6, 10, 14, m[s[4]], m[s[5]]);
          mix(v, 3, 7, 11, 15, m[s[6]], m[s[7]]);
          mix(v, 0, 5, 10, 15, m[s[8]], m[s[9]]);
          mix(v, 1, 6, 11, 12, m[s[10]], m[s[11]]);
          mix(v, 2, 7, 8, 13, m[s[12]], m[s[13]]);
          mix(v, 3, 4, 9, 14, m[s[14]], m[s[15]]);
        }
        for (int i = 0; i < 8; i++) {
          h[i] ^= v[i] ^ v[i + 8];
        }
      }
      byte[] out = new byte[outLen];
      for (int i = 0; i < outLen; i++) {
        out[i] = (byte) (h[i / 8] >>> (8 * (i % 8)));
      }
      return out;
    }

    private static void mix(long[] v, int a, int b, int c, int d, long x, long y) {
      v[a] = v[a] + v[b] + x;
      v[d] = Long.rotateRight(v[d] ^ v[a], 32);
      v[c] = v[c] + v[d];
      v[b] = Long.rotateRight(v[b] ^ v[c], 24);
      v[a] = v[a] + v[b] + y;
      v[d] = Long.rotateRight(v[d] ^ v[a], 16);
      v[c] = v[c] + v[d];
      v[b] = Long.rotateRight(v[b] ^ v[c], 63);
    }
  }
}
