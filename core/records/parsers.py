"""Line parsers: one function per format, each ``str -> Parsed | Rejected | None``.

``None`` means "not this format" (auto-detection tries the next one); a :class:`Rejected` means "this
format, but broken" (declared JSON that does not parse). Parsers only split a line into raw fields;
normalization (time, level, names) happens once, afterwards, in the pipeline.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from core.records.normalize import normalize_level
from schemas.rejection import Rejected, RejectReason


class Parsed:
    """The raw fields of one line, before normalization."""

    __slots__ = (
        "attributes",
        "environment",
        "fmt",
        "host",
        "level",
        "message",
        "region",
        "service",
        "span_id",
        "time_format",
        "timestamp",
        "timestamp_us",
        "trace_id",
    )

    def __init__(self, fmt: str, message: str) -> None:
        self.fmt = fmt
        self.message = message
        self.timestamp: Any = None
        self.time_format: str | None = None
        # The time already resolved (UTC microseconds) when the parser had to read it itself (a
        # zone, an inferred year); ``timestamp`` then keeps the text as the line wrote it.
        self.timestamp_us: int | None = None
        self.level: Any = None
        self.service: str | None = None
        self.host: str | None = None
        self.environment: str | None = None
        self.region: str | None = None
        self.trace_id: str | None = None
        self.span_id: str | None = None
        self.attributes: dict[str, str] = {}


ParseResult = Parsed | Rejected | None
Parser = Callable[[str], ParseResult]

# -- structured (JSON objects, logfmt pairs, collector entries) ------------------------------

MESSAGE_KEYS = ("message", "msg", "log", "text", "@message", "short_message", "body", "event")
TIME_KEYS = (
    "@timestamp",
    "timestamp",
    "time",
    "ts",
    "datetime",
    "date",
    "t",
    "eventTime",
    "timeUnixNano",
    "time_unix_nano",
    "observedTimestamp",
)
LEVEL_KEYS = (
    "level",
    "severity",
    "lvl",
    "log.level",
    "loglevel",
    "log_level",
    "levelname",
    "severityText",
    "severity_text",
    "level_name",
)
SERVICE_KEYS = (
    "service",
    "service.name",
    "serviceName",
    "service_name",
    "app",
    "application",
    "app_name",
    "appname",
    "resource.service.name",
)
HOST_KEYS = ("host", "hostname", "host.name", "host.hostname", "hostName")
ENV_KEYS = ("environment", "env", "deployment.environment")
REGION_KEYS = ("region", "cloud.region", "aws.region")
TRACE_KEYS = (
    "trace_id",
    "traceId",
    "trace.id",
    "dd.trace_id",
    "traceID",
    "trace-id",
    "TraceId",
    "otel.trace_id",
    "x-b3-traceid",
    "X-B3-TraceId",
)
SPAN_KEYS = (
    "span_id",
    "spanId",
    "span.id",
    "dd.span_id",
    "spanID",
    "span-id",
    "SpanId",
    "otel.span_id",
    "x-b3-spanid",
    "X-B3-SpanId",
)
TRACEPARENT_KEYS = ("traceparent", "traceParent")
ERROR_MESSAGE_KEYS = ("error.message", "error.msg", "err.message", "exception.message", "error", "err")
# Containers whose keys are attributes in their own right: flattened without their prefix.
CONTAINER_KEYS = frozenset(
    ("context", "ctx", "metadata", "meta", "fields", "extra", "attributes", "attrs", "labels")
)

_TRACEPARENT = re.compile(r"\s*[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}\s*$", re.I)


def to_str(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int | float):
        return repr(value)
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def flatten(obj: Mapping[str, Any], out: dict[str, Any], prefix: str = "", depth: int = 0) -> dict[str, Any]:
    """Nested objects to dotted keys; scalars kept raw so times and levels can still be read."""
    for key, value in obj.items():
        key = str(key)
        if isinstance(value, dict) and depth < 8:
            if not prefix and key in CONTAINER_KEYS:
                flatten(value, out, "", depth + 1)
            else:
                flatten(value, out, prefix + key + ".", depth + 1)
        elif value is not None:
            out[prefix + key] = value
    return out


# alias -> (role, rank): one pass over a line's keys finds every role, best-ranked alias first,
# instead of probing ~80 alias names against every line.
_ROLES: dict[str, tuple[str, int]] = {}
for _role, _keys in (
    ("timestamp", TIME_KEYS),
    ("level", LEVEL_KEYS),
    ("service", SERVICE_KEYS),
    ("host", HOST_KEYS),
    ("environment", ENV_KEYS),
    ("region", REGION_KEYS),
    ("trace_id", TRACE_KEYS),
    ("span_id", SPAN_KEYS),
    ("traceparent", TRACEPARENT_KEYS),
    ("severity_number", ("severityNumber",)),
):
    for _rank, _key in enumerate(_keys):
        _ROLES[_key] = (_role, _rank)
_MESSAGE_RANK = {k: i for i, k in enumerate(MESSAGE_KEYS)}

_OTLP_SEVERITY = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")


def _scalar_str(value: Any) -> str | None:
    if value is None or value == "" or isinstance(value, dict | list):
        return None
    return to_str(value)


def from_mapping(obj: Mapping[str, Any], fmt: str, flat: bool = False) -> Parsed | Rejected:
    """A JSON object, logfmt pairs or a collector entry to raw fields; the rest become attributes.
    ``flat=True`` promises ``obj`` has no nested objects (logfmt), skipping the flattening copy."""
    fields = dict(obj) if flat else flatten(obj, {})
    found: dict[str, tuple[int, str]] = {}
    msg_key: str | None = None
    msg_rank = 99
    for key, value in fields.items():
        role = _ROLES.get(key)
        if role is not None:
            if value is None or value == "":
                continue
            prev = found.get(role[0])
            if prev is None or role[1] < prev[0]:
                found[role[0]] = (role[1], key)
            continue
        rank = _MESSAGE_RANK.get(key)
        if rank is not None and rank < msg_rank and isinstance(value, str) and value.strip():
            msg_key, msg_rank = key, rank
    if msg_key is not None:
        message = fields.pop(msg_key)
    else:
        message = None
        for key in ERROR_MESSAGE_KEYS:
            value = fields.get(key)
            if isinstance(value, str) and value.strip():
                message = value  # kept as an attribute too: it is what people filter on
                break
        if message is None:
            return Rejected(
                RejectReason.MISSING_MESSAGE, f"no message field (tried {', '.join(MESSAGE_KEYS)})"
            )
    p = Parsed(fmt, message)
    if found:
        roles = {role: fields.pop(key) for role, (_, key) in found.items()}
        p.timestamp = roles.get("timestamp")
        level = roles.get("level")
        if level is None and "severity_number" in roles:
            # OTLP severity numbers: 1-4 TRACE ... 21-24 FATAL.
            try:
                n = int(roles["severity_number"])
                level = _OTLP_SEVERITY[min(max((n - 1) // 4, 0), 5)]
            except (TypeError, ValueError):
                pass
        p.level = level
        p.service = _scalar_str(roles.get("service"))
        p.host = _scalar_str(roles.get("host"))
        p.environment = _scalar_str(roles.get("environment"))
        p.region = _scalar_str(roles.get("region"))
        p.trace_id = _scalar_str(roles.get("trace_id"))
        p.span_id = _scalar_str(roles.get("span_id"))
        traceparent = _scalar_str(roles.get("traceparent"))
        if traceparent:
            m = _TRACEPARENT.match(traceparent)
            if m:
                p.trace_id = p.trace_id or m.group(1)
                p.span_id = p.span_id or m.group(2)
            else:
                fields["traceparent"] = traceparent
    p.attributes = fields if flat else {k: to_str(v) for k, v in fields.items()}
    return p


def parse_json(line: str) -> Parsed | Rejected:
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return Rejected(RejectReason.MALFORMED_JSON, str(exc)[:200])
    if not isinstance(obj, dict):
        return Rejected(RejectReason.MALFORMED_JSON, f"a JSON {type(obj).__name__}, not an object")
    return from_mapping(obj, "json")


# Keys start after whitespace (lookbehind) so a long run without "=" is scanned once.
_LOGFMT_PAIR = re.compile(r'(?<!\S)([^\s="]{1,256})=("(?:[^"\\]|\\.){0,65536}"|[^\s"]*)')
_LOGFMT_START = re.compile(r'[A-Za-z_@][\w.\-/@]*=(?:"|[^\s"]*\s+[A-Za-z_@][\w.\-/@]*=)')


def _unquote(value: str) -> str:
    if value[:1] == '"' and len(value) >= 2 and value[-1] == '"':
        value = value[1:-1]
        if "\\" in value:
            value = value.replace('\\"', '"').replace("\\n", "\n").replace("\\t", "\t").replace("\\\\", "\\")
    return value


def parse_logfmt(line: str) -> Parsed | Rejected | None:
    pairs = {k: (_unquote(v) if v[:1] == '"' else v) for k, v in _LOGFMT_PAIR.findall(line)}
    if len(pairs) < 2:
        return None
    return from_mapping(pairs, "logfmt", flat=True)


def logfmt_pairs(text: str) -> dict[str, str]:
    return {k: _unquote(v) for k, v in _LOGFMT_PAIR.findall(text)}


# -- syslog ----------------------------------------------------------------------------------

_SYSLOG5424 = re.compile(
    r"<(\d{1,3})>(\d{1,2}) (\S+) (\S+) (\S+) (\S+) (\S+) "
    r"(-|(?:\[(?:[^\]\"\\]|\"(?:[^\"\\]|\\.)*\")*\])+)(?: (.*))?$",
    re.S,
)
_SD_ELEMENT = re.compile(r"\[([^\s\]]+)((?:\s+[^\s=\]]+=\"(?:[^\"\\]|\\.)*\")*)\s*\]")
_SD_PARAM = re.compile(r"([^\s=\]]+)=\"((?:[^\"\\]|\\.)*)\"")
_SYSLOG3164 = re.compile(
    r"(?:<(\d{1,3})>)?"
    r"([A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d(?:\.\d+)?"
    r"|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)?)"
    r" (?:(\S+) )?([^\s:\[\]]+)(?:\[([^\]]*)\])?: ?(.*)$",
    re.S,
)
_SYSLOG3164_NOTAG = re.compile(
    r"(?:<(\d{1,3})>)?([A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d(?:\.\d+)?) (\S+) (.*)$", re.S
)
# What local loggers send with no TIMESTAMP and HOSTNAME (Python's SysLogHandler: "<11>app: msg");
# RFC 3164 4.3.3 has the receiver supply both. Only with a PRI, so a plain line is never taken for it.
_SYSLOG_BARE = re.compile(r"<(\d{1,3})>(?:([^\s:\[\]]+)(?:\[([^\]]*)\])?: ?)?(.*)$", re.S)
_SYSLOG_SEVERITY = ("FATAL", "FATAL", "FATAL", "ERROR", "WARN", "INFO", "INFO", "DEBUG")


def _nil(value: str) -> str | None:
    return None if value == "-" else value


def parse_syslog5424(line: str) -> Parsed | None:
    m = _SYSLOG5424.match(line)
    if not m:
        return None
    pri, _version, ts, host, app, procid, msgid, sd, msg = m.groups()
    msg = msg or ""
    if msg.startswith("\ufeff"):
        msg = msg[1:]
    p = Parsed("syslog5424", msg)
    pri_n = int(pri)
    p.level = _SYSLOG_SEVERITY[pri_n & 7]
    p.timestamp = _nil(ts)
    p.host = _nil(host)
    p.service = _nil(app)
    attrs = p.attributes
    attrs["syslog.facility"] = str(pri_n >> 3)
    if procid != "-":
        attrs["pid"] = procid
    if msgid != "-":
        attrs["msgid"] = msgid
    if sd != "-":
        for sd_id, params in _SD_ELEMENT.findall(sd):
            for name, value in _SD_PARAM.findall(params):
                attrs[f"{sd_id}.{name}"] = value.replace('\\"', '"').replace("\\]", "]").replace("\\\\", "\\")
    return p


def parse_syslog3164(line: str) -> Parsed | None:
    m = _SYSLOG3164.match(line)
    if m:
        pri, ts, host, tag, pid, msg = m.groups()
        p = Parsed("syslog3164", msg)
        p.timestamp = ts
        p.host = host
        p.service = tag
        if pid:
            p.attributes["pid"] = pid
    else:
        m = _SYSLOG3164_NOTAG.match(line)
        if m:
            pri, ts, host, msg = m.groups()
            p = Parsed("syslog3164", msg)
            p.timestamp = ts
            p.host = host
        else:
            m = _SYSLOG_BARE.match(line)
            if not m or not m.group(4).strip():
                return None
            pri, tag, pid, msg = m.groups()
            p = Parsed("syslog3164", msg)  # no time (the arrival's) and no host (the sender's address)
            p.service = tag
            if pid:
                p.attributes["pid"] = pid
    if pri:
        pri_n = int(pri)
        p.level = _SYSLOG_SEVERITY[pri_n & 7]
        p.attributes["syslog.facility"] = str(pri_n >> 3)
    return p


def parse_syslog(line: str) -> Parsed | None:
    if line.startswith("<"):
        close = line.find(">", 1, 5)
        if close > 0 and line[close + 1 : close + 3] in ("1 ", "2 ") and line[close + 2] == " ":
            p = parse_syslog5424(line)
            if p is not None:
                return p
    return parse_syslog3164(line)


# -- Apache / Nginx --------------------------------------------------------------------------

_ACCESS = re.compile(
    r'(\S+) (\S+) (\S+) \[([^\]]+)\] "((?:[^"\\]|\\.)*)" (\d{3}|-) (\d+|-)'
    r'(?: "((?:[^"\\]|\\.)*)" "((?:[^"\\]|\\.)*)")?(.*)$',
    re.S,
)
_APACHE_ERROR = re.compile(
    r"\[([A-Za-z]{3} [A-Za-z]{3} [ \d]\d \d\d:\d\d:\d\d(?:\.\d+)? \d{4})\] "
    r"\[(?:([^:\]\s]+):)?([a-z]+\d?)\]"
    r"(?: \[pid (\d+)(?::tid (\d+))?\])?(?: \[client ([^\]]+)\])? ?(.*)$",
    re.S,
)
_NGINX_ERROR = re.compile(
    r"(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d) \[([a-z]+)\] (\d+)#(\d+): (?:\*(\d+) )?(.*)$", re.S
)
_NGINX_CONTEXT = re.compile(r', (client|server|request|upstream|host|referrer): ("[^"]*"|[^,]*)')


def parse_access(line: str, fmt: str = "access") -> Parsed | None:
    m = _ACCESS.match(line)
    if not m:
        return None
    client, ident, user, ts, request, status, size, referer, agent, rest = m.groups()
    p = Parsed(fmt, f"{request} {status}")
    p.timestamp = ts
    attrs = p.attributes
    attrs["client_ip"] = client
    if ident != "-":
        attrs["ident"] = ident
    if user != "-":
        attrs["user"] = user
    parts = request.split(" ")
    if len(parts) == 3:
        attrs["http.method"], attrs["http.path"], attrs["http.protocol"] = parts
    attrs["http.status"] = status
    if size != "-":
        attrs["http.bytes"] = size
    if referer and referer != "-":
        attrs["http.referer"] = referer
    if agent and agent != "-":
        attrs["http.user_agent"] = agent
    rest = rest.strip()
    if rest:
        attrs["extra"] = rest
    if status.isdigit():
        code = int(status)
        p.level = "ERROR" if code >= 500 else "WARN" if code >= 400 else "INFO"
    return p


def parse_apache_error(line: str) -> Parsed | None:
    m = _APACHE_ERROR.match(line)
    if not m:
        return None
    ts, module, level, pid, tid, client, msg = m.groups()
    p = Parsed("apache_error", msg)
    p.timestamp = ts
    p.level = level
    attrs = p.attributes
    if module:
        attrs["module"] = module
    if pid:
        attrs["pid"] = pid
    if tid:
        attrs["tid"] = tid
    if client:
        attrs["client"] = client
    return p


def parse_nginx_error(line: str) -> Parsed | None:
    m = _NGINX_ERROR.match(line)
    if not m:
        return None
    ts, level, pid, tid, cid, msg = m.groups()
    p = Parsed("nginx_error", msg)
    p.timestamp = ts
    p.level = level
    attrs = p.attributes
    attrs["pid"] = pid
    attrs["tid"] = tid
    if cid:
        attrs["connection"] = cid
    if ", " in msg:
        for key, value in _NGINX_CONTEXT.findall(msg):
            attrs[key] = value.strip('"')
    return p


def parse_apache(line: str) -> Parsed | None:
    if line.startswith("["):
        return parse_apache_error(line)
    p = parse_access(line, "apache_access")
    return p if p is not None else parse_apache_error(line)


def parse_nginx(line: str) -> Parsed | None:
    if line[:1].isdigit() and line[4:5] == "/":
        p = parse_nginx_error(line)
        if p is not None:
            return p
    return parse_access(line, "nginx_access")


# -- plaintext -------------------------------------------------------------------------------

_PLAIN = re.compile(
    r"(\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d{1,9})?(?:Z|[+-]\d\d:?\d\d)?)"
    r",?\s+(?:-\s+)?(?:\[([A-Za-z]{1,9})\]|([A-Za-z]{1,9}))?:?\s+(?:-\s+)?"
    r"(?:\[([^\]\s]{1,128})\]:?\s+)?(.*)$",
    re.S,
)
_KV = re.compile(r'(?<![\w.\-])([A-Za-z_][\w.\-]{0,63})=("(?:[^"\\]|\\.){0,4096}"|[^\s,;"]+)')
_LEVEL_SNIFF = re.compile(r"\b(TRACE|DEBUG|INFO|NOTICE|WARN(?:ING)?|ERROR|ERR|CRIT(?:ICAL)?|FATAL|PANIC)\b")


def add_kv_attributes(message: str, attrs: dict[str, str]) -> None:
    """``key=value`` pairs inside a free-text message become attributes (existing keys win)."""
    for key, value in _KV.findall(message):
        if key not in attrs:
            attrs[key] = _unquote(value)


def parse_plain(line: str) -> Parsed | None:
    m = _PLAIN.match(line)
    if not m:
        return None
    ts, level_b, level_w, service, msg = m.groups()
    level = level_b or level_w
    if level and normalize_level(level) is None:
        # Not a level after all ("2025-02-15 12:00:00 Starting ..."): give the word back.
        msg = f"[{service}] {msg}" if service else msg
        msg = f"{level} {msg}" if level_w else f"[{level}] {msg}"
        level, service = None, None
    p = Parsed("plain", msg)
    p.timestamp = ts
    p.level = level
    p.service = service
    if "=" in msg:
        add_kv_attributes(msg, p.attributes)
    return p


def parse_raw(line: str) -> Parsed:
    """The last resort: the whole line is the message, the time is the arrival time."""
    p = Parsed("raw", line)
    m = _LEVEL_SNIFF.search(line, 0, 120)
    if m:
        p.level = m.group(1)
    if "=" in line:
        add_kv_attributes(line, p.attributes)
    return p


# -- configured named-group patterns --------------------------------------------------------

_PATTERN_FIELDS = {
    "timestamp": "timestamp",
    "ts": "timestamp",
    "time": "timestamp",
    "level": "level",
    "severity": "level",
    "service": "service",
    "host": "host",
    "hostname": "host",
    "message": "message",
    "msg": "message",
    "content": "message",
    "trace_id": "trace_id",
    "span_id": "span_id",
    "environment": "environment",
    "region": "region",
}


class RegexPattern:
    """A user's named-group regex: groups timestamp/level/service/host/message (and synonyms) fill
    those fields, every other named group becomes an attribute.

    A logger or class name belongs in a group called ``component`` (an attribute), not ``service``:
    the service is part of the Cassandra partition key and should name a deployable, not a class.
    """

    def __init__(
        self,
        name: str,
        regex: str,
        time_format: str | None = None,
        level_map: Mapping[str, str] | None = None,
        kv_attributes: bool = False,
    ) -> None:
        self.name = name
        self.regex = re.compile(regex, re.S)
        if (
            "message" not in self.regex.groupindex
            and "msg" not in self.regex.groupindex
            and ("content" not in self.regex.groupindex)
        ):
            raise ValueError(f"pattern {name!r} needs a named group 'message'")
        self.time_format = time_format
        self.level_map = {k.lower(): v for k, v in (level_map or {}).items()}
        self.kv_attributes = kv_attributes
        self._groups = [(g, _PATTERN_FIELDS.get(g)) for g in self.regex.groupindex]

    def __call__(self, line: str) -> Parsed | None:
        m = self.regex.match(line)
        if not m:
            return None
        groups = m.groupdict()
        p = Parsed(self.name, "")
        for group, target in self._groups:
            value = groups[group]
            if value is None:
                continue
            if target is None:
                p.attributes[group] = value
            elif target == "message":
                p.message = value
            else:
                setattr(p, target, value)
        if self.level_map and isinstance(p.level, str):
            p.level = self.level_map.get(p.level.lower(), p.level)
        p.time_format = self.time_format
        if self.kv_attributes and "=" in p.message:
            add_kv_attributes(p.message, p.attributes)
        return p


# -- detection -------------------------------------------------------------------------------

_SYSLOG_MONTH = re.compile(r"(?:<\d{1,3}>)?[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d ")


def detect_and_parse(line: str) -> Parsed | Rejected:
    """Auto-detection: cheap looks at the first characters pick at most two candidate parsers."""
    c = line[0]
    if c == "{":
        if line.rstrip().endswith("}"):
            return parse_json(line)
    elif c == "<":
        p = parse_syslog(line)
        if p is not None:
            return p
    elif c == "[":
        p = parse_apache_error(line)
        if p is not None:
            return p
    elif c.isdigit():
        if line[4:5] == "-" and line[7:8] == "-":
            p = parse_plain(line)
            if p is not None:
                return p
        elif line[4:5] == "/":
            p = parse_nginx_error(line)
            if p is not None:
                return p
        # an access line (an IP first) is tried just below, once, as for any other line
    elif c.isupper() and _SYSLOG_MONTH.match(line):
        p = parse_syslog3164(line)
        if p is not None:
            return p
    if " [" in line and '] "' in line:
        p = parse_access(line)
        if p is not None:
            return p
    if "=" in line and _LOGFMT_START.match(line):
        r = parse_logfmt(line)
        if r is not None:
            return r
    return parse_raw(line)


FORMAT_PARSERS: dict[str, Parser] = {
    "json": parse_json,
    "logfmt": parse_logfmt,
    "syslog": parse_syslog,
    "syslog5424": parse_syslog5424,
    "syslog3164": parse_syslog3164,
    "apache": parse_apache,
    "nginx": parse_nginx,
    "access": parse_access,
    "apache_error": parse_apache_error,
    "nginx_error": parse_nginx_error,
    "plain": lambda line: parse_plain(line) or parse_raw(line),
    "raw": parse_raw,
}
