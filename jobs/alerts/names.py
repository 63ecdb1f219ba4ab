"""Stable operator names and uids of the alerts job: savepoints map state by uid, so never rename one."""

SOURCE = "alerts-raw-logs-source"
PARSE_MATCH = "alerts-parse-match"
EVENT_TIME = "alerts-event-time"
EVALUATE = "alerts-evaluate-windows"
SINK = "alerts-events-sink"
