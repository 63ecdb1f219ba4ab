import dev.strata.flink.LogMetricsAggregate;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.util.Random;

/**
 * The JVM side of {@code bench_metrics cpu}: the same workload through the job's Java accumulator
 * (in-memory maps; the job's heap MapState adds its own cost, which this leaves out). A first pass
 * warms the JIT; the second is measured, in thread CPU time.
 */
public final class BenchLogMetrics {
  public static void main(String[] args) throws Exception {
    ThreadMXBean cpu = ManagementFactory.getThreadMXBean();
    long now = 1_764_000_000L;
    String[] levels = {"INFO", "WARN", "ERROR"};
    int n = 200_000;
    int[][] shapes = {{10, 8}, {40, 30}};
    for (int pass = 0; pass < 2; pass++) {
      for (int[] shape : shapes) {
        Random rnd = new Random(1);
        String[][] rows = new String[n][];
        int[] sizes = new int[n];
        for (int i = 0; i < n; i++) {
          rows[i] =
              new String[] {
                levels[rnd.nextInt(3)], "p" + (1 + rnd.nextInt(shape[0])), "h" + (1 + rnd.nextInt(shape[1]))
              };
          sizes[i] = 80 + rnd.nextInt(221);
        }
        LogMetricsAggregate.Accumulator[] accs = new LogMetricsAggregate.Accumulator[10];
        for (int s = 0; s < accs.length; s++) {
          accs[s] = LogMetricsAggregate.Accumulator.inMemory();
        }
        long added = 0;
        long flushed = 0;
        long docs = 0;
        for (int start = 0; start < n; start += 5000) {
          long began = cpu.getCurrentThreadCpuTime();
          for (int i = start; i < start + 5000; i++) {
            String[] r = rows[i];
            accs[i % 10].add(r[0], r[1], r[2], now + i / 100, sizes[i], 0, i, i);
          }
          added += cpu.getCurrentThreadCpuTime() - began;
          began = cpu.getCurrentThreadCpuTime();
          for (int s = 0; s < accs.length; s++) {
            docs += accs[s].flush("bench-metrics", "svc-" + s, "strata-bench-metrics").size();
            accs[s].closeIdle(start + 4999, 600);
          }
          flushed += cpu.getCurrentThreadCpuTime() - began;
        }
        if (pass == 1) {
          System.out.printf(
              "JVM: %d patterns x %d hosts x 3 levels per service: add %.2f µs, flush %.2f µs CPU per record"
                  + " (%.2f documents per record)%n",
              shape[0], shape[1], added / 1e3 / n, flushed / 1e3 / n, (double) docs / n);
        }
      }
    }
  }
}
