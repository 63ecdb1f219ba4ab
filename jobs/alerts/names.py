"""Stable operator names and uids of the alerts job: savepoints map state by uid, so never rename one."""

SOURCE = "alerts-raw-logs-source"
PARSE = "alerts-parse"
EVENT_TIME = "alerts-event-time"
MATCH = "alerts-match-rules"
EVALUATE = "alerts-evaluate-windows"
SINK = "alerts-events-sink"
