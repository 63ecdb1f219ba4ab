"""Anomaly rules on synthetic series: false firings, detection delay, per-record cost, state size.

Runs the alerting job's logic without Flink (:class:`core.alerts.engine.AlertEngine`) over seeded
series of per-minute counts with Poisson-sized noise, a heartbeat from another service moving the
watermark every minute. For each of ``--seeds`` seeds:

- a day of steady traffic (15 records a minute, window 5 min, slide 1 min, direction both):
  firings, each a false alarm;
- four days of a daily sine (60 to 540 records an hour, hourly windows, direction both): firings
  on the first day (recent windows only) and on days 2 to 4 (same time of day);
- a surge (20 a minute, then 100) and a drop to nothing (30 a minute, then none): minutes from the
  change to the end of the window that fired.

Then the cost per record of loading, updating and saving a group's state as the job does (with
eight days of history) for a threshold and an anomaly rule, and the largest state a group can
have. Measures, never asserts.

    .venv/bin/python tests/bench/bench_alert_anomaly.py --seeds 10
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from core.alerts.anomaly import DAY_MS, MAX_RECENT, History  # noqa: E402
from core.alerts.engine import AlertEngine  # noqa: E402
from core.alerts.evaluate import AlertEvent, GroupEvaluator, State, Sub  # noqa: E402
from core.alerts.matching import RuleMatcher  # noqa: E402
from core.alerts.rules import Rule  # noqa: E402
from tests.unit.alert_support import ms, record, rule  # noqa: E402

DAY_MIN = 1440


def anomaly(**spec: Any) -> Rule:
    return rule(**{"type": "anomaly", "threshold": 0, "window": "5m", "slide": "1m", **spec})


def noisy(mean: float, rng: random.Random) -> int:
    return max(0, round(rng.gauss(mean, math.sqrt(max(mean, 1.0)))))


def feed(engine: AlertEngine, first: int, minutes: int, per_minute: Callable[[int], int]) -> list[AlertEvent]:
    rng = random.Random(first)
    events: list[AlertEvent] = []
    for m in range(first, first + minutes):
        for at in sorted(rng.uniform(0, 59) for _ in range(per_minute(m))):
            events += engine.process(record(m * 60 + at))
        events += engine.process(record(m * 60 + 59.5, service="heartbeat", level="INFO"))
    return events


def fired(events: list[AlertEvent]) -> list[AlertEvent]:
    return [e for e in events if e.state is State.FIRING]


def steady(seed: int) -> int:
    engine = AlertEngine([anomaly(direction="both")], lateness_ms=5_000)
    rng = random.Random(seed)
    return len(fired(feed(engine, 0, DAY_MIN, lambda m: noisy(15, rng))))


def cycle(seed: int) -> tuple[int, int]:
    engine = AlertEngine([anomaly(direction="both", window="1h", slide="1h")], lateness_ms=5_000)
    rng = random.Random(seed)

    def rate(m: int) -> int:
        return noisy(5 + 4 * math.sin(2 * math.pi * (m % DAY_MIN) / DAY_MIN), rng)

    first = fired(feed(engine, 0, DAY_MIN, rate))
    later = fired(feed(engine, DAY_MIN, 3 * DAY_MIN, rate))
    return len(first), len(later)


def delay(seed: int, direction: str, before: float, after: float) -> float | None:
    engine = AlertEngine([anomaly(direction=direction)], lateness_ms=5_000)
    rng = random.Random(seed)
    feed(engine, 0, 180, lambda m: noisy(before, rng))
    events = fired(feed(engine, 180, 30, lambda m: noisy(after, rng) if after else 0))
    return (events[0].window_end_ms - ms(180 * 60)) / 60_000 if events else None


def per_record_us(r: Rule) -> tuple[float, int]:
    engine = AlertEngine([r], lateness_ms=5_000)
    feed(engine, 0, 8 * DAY_MIN, lambda m: 1 if m % 3 == 0 else 0)
    (group,) = (g for k, g in engine.groups.items() if k.startswith(r.id))
    data = group.to_bytes()
    matcher = RuleMatcher([r])
    start_s = 8 * DAY_MIN * 60 + 5
    points = [matcher.points(record(start_s + i * 0.001))[0] for i in range(3000)]
    t0 = time.perf_counter()
    for point in points:  # what the job does per record: load the key's state, add, save
        ev = GroupEvaluator.from_bytes(data)
        ev.add(r, point, ms(start_s - 10))
        data = ev.to_bytes()
    return (time.perf_counter() - t0) / len(points) * 1e6, len(data)


def largest_state() -> int:
    rng = random.Random(0)
    history = History(
        recent=[
            [round(rng.uniform(100, 2000), 3), round(rng.uniform(100, 2000), 3)] for _ in range(MAX_RECENT)
        ],
        days={d: [round(rng.uniform(100, 20_000), 3) for _ in range(288)] for d in range(20_000, 20_008)},
        slot=[20_008, 5, 12_345.678, 3],
        evaluations=1_000_000,
        last_seen_ms=20_008 * DAY_MS,
    )
    group = GroupEvaluator("r1\x1fcheckout-service", "acme", ("checkout-service",), ["service"])
    group.window_ms, group.slide_ms = 3_600_000, 300_000
    sample = {"log_id": "0" * 32, "message": "m" * 500}
    group.subs[""] = Sub(
        buckets={i * 300_000: [1000, 1000, None] for i in range(12)}, samples=[sample] * 5, history=history
    )
    return len(group.to_bytes())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    args = parser.parse_args()
    seeds = range(args.seeds)
    t0 = time.perf_counter()
    steady_days = [steady(s) for s in seeds]
    print(f"steady traffic, false firings per day over {len(steady_days)} days: {steady_days}")
    cycles = [cycle(s) for s in seeds]
    print(f"daily sine, firings on day 1 / days 2-4 per seed: {cycles}")
    for name, direction, before, after in (("surge x5", "up", 20, 100), ("drop to none", "down", 30, 0)):
        delays = [delay(s, direction, before, after) for s in seeds]
        caught = [d for d in delays if d is not None]
        print(
            f"{name}: caught {len(caught)}/{len(delays)}, minutes from the change to the firing window's "
            f"end: median {statistics.median(caught):g}, max {max(caught):g}"
        )
    for label, r in (("threshold", rule(threshold=10**9)), ("anomaly", anomaly())):
        us, size = per_record_us(r)
        print(f"{label} rule, per record (load state, add, save): {us:.0f} us, state {size} bytes")
    print(f"largest anomaly group state: {largest_state()} bytes")
    print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
