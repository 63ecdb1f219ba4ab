"""Multi-line events: continuation lines join the event they belong to, within bounds."""

from __future__ import annotations

import pytest

from core.records.multiline import Event, MultilineJoiner

pytestmark = pytest.mark.unit


def join(text: str, **kwargs: int) -> list[Event]:
    joiner = MultilineJoiner(**kwargs)  # type: ignore[arg-type]
    out: list[Event] = []
    for line in text.split("\n"):
        out.extend(joiner.push(line))
    out.extend(joiner.flush())
    return out


JAVA = """2025-02-15 12:00:00,001 ERROR [main] com.acme.Api: request failed
java.lang.IllegalStateException: boom
\tat com.acme.Api.handle(Api.java:42)
\tat com.acme.Server.run(Server.java:7)
Caused by: java.io.IOException: closed
\tat com.acme.Db.read(Db.java:9)
\t... 12 more
... 3 common frames omitted
2025-02-15 12:00:01,002 INFO [main] com.acme.Api: next request"""


def test_java_stack_trace_is_one_event() -> None:
    events = join(JAVA)
    # "java.lang.IllegalStateException: boom" is not indented: it starts its own event, as in
    # Filebeat's Java pattern; the frames and causes join it.
    assert [e.lines for e in events] == [1, 7, 1]
    assert events[1].text.startswith("java.lang.IllegalStateException: boom\n\tat com.acme.Api")
    assert events[1].text.endswith("... 3 common frames omitted") and events[1].tags == ["multiline"]
    assert events[2].text.endswith("next request") and events[2].tags == []


PYTHON = """2025-02-15 12:00:00 ERROR job failed
Traceback (most recent call last):
  File "job.py", line 3, in <module>
    run()
KeyError: 'x'

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "job.py", line 5, in <module>
ValueError: bad
2025-02-15 12:00:01 INFO next"""


def test_python_traceback_up_to_its_exception_line_with_chained_tracebacks() -> None:
    events = join(PYTHON)
    assert [e.lines for e in events] == [11, 1]
    assert events[0].text.startswith("2025-02-15 12:00:00 ERROR job failed\nTraceback")
    assert events[0].text.endswith("ValueError: bad")


GO = """panic: runtime error: index out of range [5] with length 3

goroutine 1 [running]:
main.main()
\t/app/main.go:8 +0x1d
net/http.(*conn).serve(0xc000, {0x7f})
\t/usr/local/go/src/net/http/server.go:1995 +0x612
created by net/http.(*Server).Serve in goroutine 1
exit status 2
2025-02-15T12:00:01Z level=info msg=restarted"""


def test_go_panic_dump_is_one_event() -> None:
    events = join(GO)
    assert [e.lines for e in events] == [9, 1]
    assert events[1].text.startswith("2025-02-15T12:00:01Z")


DOTNET = """2025-02-15 12:00:00 ERROR Unhandled exception
System.InvalidOperationException: outer ---> System.IO.IOException: inner
   at App.Db.Read() in Db.cs:line 9
   --- End of inner exception stack trace ---
   at App.Api.Handle() in Api.cs:line 42
--- End of stack trace from previous location ---
   at App.Main()
2025-02-15 12:00:01 INFO next"""


def test_dotnet_inner_exception_markers_continue_the_event() -> None:
    events = join(DOTNET)
    assert [e.lines for e in events] == [1, 6, 1]


def test_blank_lines_between_events_stay_their_own_lines() -> None:
    events = join("one\n\n  indented after a blank\ntwo")
    assert [e.text for e in events] == ["one", "", "  indented after a blank", "two"]


def test_every_line_comes_out_exactly_once() -> None:
    for text in (JAVA, PYTHON, GO, DOTNET):
        events = join(text)
        assert "\n".join(e.text for e in events) == text


def test_an_endless_continuation_is_split_at_the_bounds_and_tagged() -> None:
    text = "start\n" + "\n".join(f"  frame {i}" for i in range(25))
    events = join(text, max_lines=10)
    assert [e.lines for e in events] == [10, 10, 6]
    assert all("multiline_split" in e.tags for e in events)
    assert "\n".join(e.text for e in events) == text

    events = join("start\n" + "\n".join("  " + "x" * 100 for _ in range(50)), max_bytes=1000)
    assert all(len(e.text) <= 1000 for e in events) and len(events) > 5
    assert sum(e.lines for e in events) == 51


def test_a_single_line_over_the_byte_bound_is_kept_whole() -> None:
    events = join("start\n  " + "y" * 5000 + "\nnext", max_bytes=1000)
    assert [e.lines for e in events] == [1, 1, 1]
    assert events[1].text == "  " + "y" * 5000 and "multiline_split" in events[1].tags


def test_a_quiet_stream_flushes_its_pending_event_after_the_timeout() -> None:
    joiner = MultilineJoiner(flush_after=2.0)
    assert joiner.push("ERROR boom", now=10.0) == []
    assert joiner.push("  at frame", now=10.5) == []
    assert joiner.poll(now=12.0) == []
    (event,) = joiner.poll(now=12.6)
    assert event.text == "ERROR boom\n  at frame" and not joiner.pending
    assert joiner.push("  late frame", now=20.0) == []  # nothing to continue: its own event
    assert [e.text for e in joiner.flush()] == ["  late frame"]


def test_bounds_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        MultilineJoiner(max_lines=0)
