"""Built-in named-group patterns for well-known log shapes, usable by name like any configured one.

The Loghub systems are here because they are real formats people run (HDFS, Hadoop, Spark,
Zookeeper, OpenStack, Android, BGL, Windows CBS, Linux and OpenSSH syslog, Apache error logs), and
because the accuracy test measures the header fields they produce against Loghub's ground truth.
Select one with ``--format hdfs`` or per service in the config (``services: {namenode: {patterns:
[hdfs]}}``); copy one into your config's ``patterns`` to adapt it.

Group names: timestamp, level, service, host, message (alias content), trace_id, span_id; any
other named group becomes an attribute (``component`` holds logger or class names).
"""

from __future__ import annotations

from typing import Any

BUILTIN_PATTERNS: dict[str, dict[str, Any]] = {
    "android": {
        "regex": r"(?P<timestamp>\d\d-\d\d \d\d:\d\d:\d\d\.\d{3})\s+(?P<pid>\d+)\s+(?P<tid>\d+)\s+"
        r"(?P<level>[VDIWEFA])\s+(?P<component>.*?)\s*:\s(?P<message>.*)$",
        "time_format": "%m-%d %H:%M:%S.%f",
    },
    "apache_error_2": {
        "regex": r"\[(?P<timestamp>[A-Za-z]{3} [A-Za-z]{3} [ \d]\d \d\d:\d\d:\d\d \d{4})\] "
        r"\[(?P<level>[a-z]+)\] (?P<message>.*)$",
    },
    "bgl": {
        "regex": r"(?P<label>\S+) (?P<epoch>\d+) (?P<date>\d{4}\.\d\d\.\d\d) (?P<host>\S+) "
        r"(?P<timestamp>\d{4}-\d\d-\d\d-\d\d\.\d\d\.\d\d\.\d+) (?P<node_repeat>\S+) (?P<type>\S+) "
        r"(?P<component>\S+) (?P<level>\S+) (?P<message>.*)$",
    },
    "hdfs": {
        "regex": r"(?P<timestamp>\d{6} \d{6}) (?P<pid>\d+) (?P<level>[A-Z]+) (?P<component>[^\s:]+): "
        r"(?P<message>.*)$",
        "time_format": "%y%m%d %H%M%S",
    },
    "hadoop": {
        "regex": r"(?P<timestamp>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) (?P<level>[A-Z]+) "
        r"\[(?P<process>.*?)\] (?P<component>[^\s:]+): (?P<message>.*)$",
    },
    "linux": {
        # The program may hold spaces ("syslogd 1.4.1", "-- root"), so it runs to the first '[' or ':'.
        "regex": r"(?P<timestamp>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) (?P<host>\S+) +"
        r"(?P<service>[^\[:]+?)(?:\[(?P<pid>\d+)\])?: (?P<message>.*?)\s*$",
    },
    "openssh": {
        "regex": r"(?P<timestamp>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) (?P<host>\S+) "
        r"(?P<service>[^\s\[:]+)\[(?P<pid>\d+)\]: (?P<message>.*?)\s*$",
    },
    "openstack": {
        "regex": r"(?P<logrecord>\S+) (?P<timestamp>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) (?P<pid>\d+) "
        r"(?P<level>[A-Z]+) (?P<component>\S+) \[(?P<addr>[^\]]*)\] (?P<message>.*)$",
    },
    "spark": {
        "regex": r"(?P<timestamp>\d\d/\d\d/\d\d \d\d:\d\d:\d\d) (?P<level>[A-Z]+) (?P<component>[^\s:]+): "
        r"(?P<message>.*)$",
    },
    "windows_cbs": {
        "regex": r"(?P<timestamp>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d), (?P<level>\w+)\s+(?P<component>\S+)\s+"
        r"(?P<message>.*)$",
    },
    "zookeeper": {
        "regex": r"(?P<timestamp>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) - (?P<level>[A-Z]+)\s+"
        r"\[(?P<node>.*?):(?P<component>[^:\]]*?)@(?P<line>\d+)\] - (?P<message>.*)$",
    },
}
