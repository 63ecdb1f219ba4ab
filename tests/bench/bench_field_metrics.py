"""Metrics from fields: CPU per record of the rules' evaluation, for records no rule matches and
records a rule matches, as the field metrics job's Python operators run it (the pure functions;
Flink's bridge crossing and MapState calls are not included).

    .venv/bin/python -m tests.bench.bench_field_metrics [--records 50000] [--rules 20]

Records are the ``logs`` topic's JSON of lines made by the record pipeline
(``… latency=722ms status=200``). Three cases are timed with ``time.process_time``:

- another tenant: the tenant has no rule (the common case of a shared job);
- same tenant, another service: the tenant has ``--rules`` rules, none naming this service;
- matched: one rule selects the record; its field is read and the measurement added to the open
  contributions of three resolutions (``RuleAccumulator`` over dicts), with a flush of what
  changed every 5,000 records.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from datetime import UTC, datetime, timedelta

from core.fieldmetrics import FieldRules, MetricRule, RuleAccumulator, measure_json
from core.metrics import DictStore
from core.records.pipeline import RecordPipeline
from schemas.record import Record


def _lines(n: int, tenant: str, service: str, seed: int) -> list[bytes]:
    rnd = random.Random(seed)
    pipeline = RecordPipeline()
    now = datetime(2026, 11, 28, 12, tzinfo=UTC)
    out = []
    for i in range(n):
        ts = now - timedelta(seconds=rnd.randint(0, 3600))
        line = (
            f"{ts.isoformat().replace('+00:00', 'Z')} INFO GET /cart/{i % 50} done "
            f"latency={rnd.lognormvariate(4, 1):.3f}ms status=200 user=u{i % 97}"
        )
        envelope = {"tenant": tenant, "service": service, "line": line, "received_at": now.isoformat()}
        record = pipeline.process(json.dumps(envelope).encode())
        assert isinstance(record, Record)
        out.append(record.to_json())
    return out


def _rules(count: int) -> FieldRules:
    rules = [
        MetricRule.model_validate(
            {
                "id": f"m{i}",
                "tenant": "bench",
                "name": f"r{i}",
                "field": "latency",
                "filter": {"services": [f"svc-{i}"], "q": "cart" if i % 2 else None},
            }
        )
        for i in range(count)
    ]
    return FieldRules(rules)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--rules", type=int, default=20)
    args = parser.parse_args(argv)
    rules = _rules(args.rules)
    cases = {
        "another tenant (no rule)": _lines(args.records, "other", "svc-1", 1),
        "same tenant, a service no rule names": _lines(args.records, "bench", "web", 2),
        "matched (svc-1: a query and the field)": _lines(args.records, "bench", "svc-1", 3),
    }
    print(f"{args.records} records per case, {args.rules} rules of the tenant")
    for name, values in cases.items():
        acc = RuleAccumulator(DictStore(), DictStore())
        measured = 0
        began = time.process_time()
        for i, value in enumerate(values):
            for _, _, m in measure_json(rules, value):
                acc.add(m, 0, i, 0)
                measured += 1
            if i % 5000 == 4999:
                acc.flush("bench", "m1")
        spent = time.process_time() - began
        print(f"{name}: {spent / len(values) * 1e6:.1f} µs a record ({measured} measured)")

    # the matched case split: reading the JSON and matching, against adding to the contributions
    values = cases["matched (svc-1: a query and the field)"]
    began = time.process_time()
    found = [measure_json(rules, v) for v in values]
    matching = time.process_time() - began
    acc = RuleAccumulator(DictStore(), DictStore())
    began = time.process_time()
    for i, ms in enumerate(found):
        for _, _, m in ms:
            acc.add(m, 0, i, 0)
        if i % 5000 == 4999:
            acc.flush("bench", "m1")
    adding = time.process_time() - began
    print(
        f"matched, split: JSON + match + field {matching / len(values) * 1e6:.1f} µs, "
        f"contributions {adding / len(values) * 1e6:.1f} µs a record"
    )


if __name__ == "__main__":
    main()
