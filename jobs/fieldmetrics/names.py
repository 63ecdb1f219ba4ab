"""Stable operator names and uids of the field metrics job: savepoints map state by uid, so never
rename one."""

SOURCE = "fieldmetrics-logs-source"
MEASURE = "fieldmetrics-measure"
AGGREGATE = "fieldmetrics-aggregate"
SINK = "fieldmetrics-opensearch-sink"
