package dev.strata.flink;

import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.apache.flink.api.common.serialization.BulkWriter;
import org.apache.flink.connector.file.sink.FileSink;
import org.apache.flink.core.fs.FSDataOutputStream;
import org.apache.flink.core.fs.Path;
import org.apache.flink.core.io.SimpleVersionedSerializer;
import org.apache.flink.formats.parquet.row.ParquetRowDataBuilder;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.datastream.DataStreamSink;
import org.apache.flink.streaming.api.functions.sink.filesystem.BucketAssigner;
import org.apache.flink.streaming.api.functions.sink.filesystem.OutputFileConfig;
import org.apache.flink.streaming.api.functions.sink.filesystem.bucketassigners.SimpleVersionedStringSerializer;
import org.apache.flink.streaming.api.functions.sink.filesystem.rollingpolicies.OnCheckpointRollingPolicy;
import org.apache.flink.table.api.Table;
import org.apache.flink.table.api.bridge.java.StreamTableEnvironment;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.data.utils.ProjectedRowData;
import org.apache.flink.table.types.DataType;
import org.apache.flink.table.types.logical.LogicalType;
import org.apache.flink.table.types.logical.RowType;

/**
 * The archive's sink: Parquet files named {@code part-<uuid>-<subtask>-<n>.parquet} under Hive
 * partition folders {@code <partition>=<value>/…}, committed on checkpoints.
 *
 * <p>Flink's filesystem SQL connector writes the same layout but names its files without a
 * suffix and has no option for one; engines that pick files by their {@code .parquet} name then
 * find none. This is the DataStream {@link FileSink} with the same Parquet writer, the partition
 * columns taken out of the files (they are in the path) and a suffix on every part file.
 */
public final class ArchiveParquetSink {
    private ArchiveParquetSink() {}

    /**
     * Sink {@code table} (whose last columns are {@code partitions}) into {@code basePath}.
     *
     * @param hadoopConf Parquet writer settings as the SQL format takes them, e.g. {@code
     *     parquet.compression=ZSTD}, {@code parquet.write.int64.timestamp=true}
     */
    public static DataStreamSink<RowData> attach(
            StreamTableEnvironment tEnv,
            Table table,
            String basePath,
            String[] partitions,
            String[] hadoopConf,
            boolean utcTimestamp,
            String uid) {
        DataType rowDataType =
                table.getResolvedSchema().toPhysicalRowDataType().bridgedTo(RowData.class);
        RowType rowType = (RowType) rowDataType.getLogicalType();
        List<String> names = rowType.getFieldNames();
        int[] partitionIndexes = new int[partitions.length];
        for (int i = 0; i < partitions.length; i++) {
            partitionIndexes[i] = names.indexOf(partitions[i]);
            if (partitionIndexes[i] < 0) {
                throw new IllegalArgumentException("no column " + partitions[i] + " in " + names);
            }
        }
        List<Integer> dataIndexes = new ArrayList<>();
        List<LogicalType> dataTypes = new ArrayList<>();
        List<String> dataNames = new ArrayList<>();
        for (int i = 0; i < names.size(); i++) {
            if (!Arrays.asList(partitions).contains(names.get(i))) {
                dataIndexes.add(i);
                dataTypes.add(rowType.getTypeAt(i));
                dataNames.add(names.get(i));
            }
        }
        RowType dataType =
                RowType.of(
                        dataTypes.toArray(new LogicalType[0]), dataNames.toArray(new String[0]));
        org.apache.hadoop.conf.Configuration conf = new org.apache.hadoop.conf.Configuration();
        for (String pair : hadoopConf) {
            int eq = pair.indexOf('=');
            conf.set(pair.substring(0, eq), pair.substring(eq + 1));
        }
        BulkWriter.Factory<RowData> parquet =
                ParquetRowDataBuilder.createWriterFactory(dataType, conf, utcTimestamp);
        FileSink<RowData> sink =
                FileSink.forBulkFormat(
                                new Path(basePath),
                                new Projecting(
                                        parquet,
                                        dataIndexes.stream().mapToInt(Integer::intValue).toArray()))
                        .withBucketAssigner(new HivePartitions(partitions, partitionIndexes))
                        .withRollingPolicy(OnCheckpointRollingPolicy.build())
                        .withOutputFileConfig(
                                OutputFileConfig.builder()
                                        .withPartPrefix("part-" + java.util.UUID.randomUUID())
                                        .withPartSuffix(".parquet")
                                        .build())
                        .build();
        DataStream<RowData> rows = tEnv.toDataStream(table, rowDataType);
        return rows.sinkTo(sink).name(uid).uid(uid);
    }

    /** {@code name=value/…} of a row's partition columns (values are ids, dates and hours). */
    static final class HivePartitions implements BucketAssigner<RowData, String> {
        private static final long serialVersionUID = 1L;
        private final String[] names;
        private final int[] indexes;

        HivePartitions(String[] names, int[] indexes) {
            this.names = names;
            this.indexes = indexes;
        }

        @Override
        public String getBucketId(RowData row, Context context) {
            StringBuilder out = new StringBuilder();
            for (int i = 0; i < names.length; i++) {
                if (i > 0) {
                    out.append('/');
                }
                String value =
                        row.isNullAt(indexes[i]) ? null : row.getString(indexes[i]).toString();
                if (value == null || value.isEmpty() || value.contains("/") || value.startsWith(".")) {
                    throw new IllegalArgumentException(
                            "not a partition value for " + names[i] + ": " + value);
                }
                out.append(names[i]).append('=').append(value);
            }
            return out.toString();
        }

        @Override
        public SimpleVersionedSerializer<String> getSerializer() {
            return SimpleVersionedStringSerializer.INSTANCE;
        }
    }

    /** Writes only the data columns of each row: the partition values are in the path. */
    static final class Projecting implements BulkWriter.Factory<RowData> {
        private static final long serialVersionUID = 1L;
        private final BulkWriter.Factory<RowData> inner;
        private final int[] columns;

        Projecting(BulkWriter.Factory<RowData> inner, int[] columns) {
            this.inner = inner;
            this.columns = columns;
        }

        @Override
        public BulkWriter<RowData> create(FSDataOutputStream out) throws IOException {
            BulkWriter<RowData> writer = inner.create(out);
            ProjectedRowData projected = ProjectedRowData.from(columns);
            return new BulkWriter<RowData>() {
                @Override
                public void addElement(RowData row) throws IOException {
                    writer.addElement(projected.replaceRow(row));
                }

                @Override
                public void flush() throws IOException {
                    writer.flush();
                }

                @Override
                public void finish() throws IOException {
                    writer.finish();
                }
            };
        }
    }
}
