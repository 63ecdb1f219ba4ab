"""What OpenSearch spends per document at the ingest job's rate, by refresh interval and merge policy.

At its bulk ceiling OpenSearch spends about 60 µs of CPU a document; inside the ingest job, at a
few thousand documents a second, about 160 (bench_ingest). This benchmark sends the job's
documents (bench_ingest's generator through the record pipeline) the way the job's two sink
subtasks do: each a bulk of ``rate / 2`` documents once a second, half a second apart, for
``--seconds``, into a fresh index per variant of the job's template. Reported per variant:
OpenSearch's CPU per document over the paced window and the refresh that follows it (its whole
process, so shared with anything else it does), the refreshes and merges it counted, and the
segments left. The variants run in turns, ``--rounds`` times, and the medians are printed.

Needs `strata stack up`:

    .venv/bin/python -m tests.bench.bench_hot_refresh --rate 3400 --seconds 40 --rounds 2
"""

from __future__ import annotations

import argparse
import copy
import json
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from infra.settings import Settings
from schemas.projections import opensearch_index_template
from tests.bench.bench_hot_mapping import OPENSEARCH, variant_medians
from tests.bench.bench_ingest import CpuSampler, Load, cpu_per_record, expect, generate, opensearch

# name -> (index settings over the job's template, rate multiplier)
VARIANTS: dict[str, tuple[dict[str, Any], float]] = {
    "the job's template (refresh 1 s)": ({}, 1.0),
    "refresh 2 s": ({"refresh_interval": "2s"}, 1.0),
    "refresh 5 s": ({"refresh_interval": "5s"}, 1.0),
    "refresh 1 s, segments_per_tier 30": ({"merge.policy.segments_per_tier": 30}, 1.0),
    "refresh 1 s, twice the rate": ({}, 2.0),
}


def _stats(client: Any, pattern: str) -> dict[str, int]:
    s = client.indices.stats(index=pattern, metric="refresh,merge,segments")["_all"]["primaries"]
    return {
        "refreshes": s["refresh"]["total"],
        "merges": s["merges"]["total"],
        "segments": s["segments"]["count"],
    }


def paced_run(
    client: Any, bodies: list[bytes], settings: dict[str, Any], rate: float, seconds: int
) -> dict[str, float]:
    """Two senders, each one bulk a second of ``rate / 2`` documents, half a second apart."""
    prefix = f"bh-{uuid.uuid4().hex[:8]}"
    template = copy.deepcopy(opensearch_index_template(prefix))
    template["template"]["settings"].update(settings)
    client.indices.put_index_template(name=prefix, body=template)
    per_bulk = max(int(rate / 2), 1)
    errors: list[str] = []

    def sender(offset_s: float, first: int, started: float) -> None:
        for second in range(seconds):
            wait = started + offset_s + second - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            base = first + second * per_bulk * 2
            action = b'{"index":{"_index":"%s-bench","_id":"%s-%%d"}}\n' % (prefix.encode(), prefix.encode())
            body = b"".join(
                action % n + bodies[n % len(bodies)] + b"\n" for n in range(base, base + per_bulk)
            )
            response = client.bulk(body=body)
            if response.get("errors"):
                errors.append(json.dumps(response["items"][0])[:300])

    try:
        sampler = CpuSampler(-1)
        cpu0 = sampler.sample()
        started = time.monotonic()
        threads = [
            threading.Thread(target=sender, args=(0.0, 0, started)),
            threading.Thread(target=sender, args=(0.5, per_bulk, started)),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # What the last documents wait for: the next refresh (as the interval sets it), not a forced one.
        time.sleep(min(float(str(settings.get("refresh_interval", "1s")).rstrip("s")), 5.0) + 0.5)
        elapsed = time.monotonic() - started
        docs = per_bulk * 2 * seconds
        cpu = cpu_per_record(cpu0, sampler.sample(), docs)
        if errors:
            raise RuntimeError(f"bulk items failed: {errors[:3]}")
        stats = _stats(client, f"{prefix}-*")
        return {"cpu_us": cpu.get(OPENSEARCH, 0.0), "rate": docs / elapsed, **stats}
    finally:
        client.indices.delete(index=f"{prefix}-*", ignore=[404])
        client.indices.delete_index_template(name=prefix, ignore=[404])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--rate", type=float, default=3400.0, help="documents a second (both senders)")
    parser.add_argument("--seconds", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)

    client = opensearch(Settings())
    start = datetime.now(UTC) - timedelta(minutes=30)
    envelopes = generate(60_000, seed=13, start=start, span_s=600)
    bodies = [doc.encode() for _, _, doc in expect([e.encode() for e in envelopes]).docs]
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in VARIANTS}
    with Load() as load:
        paced_run(client, bodies, {}, args.rate, 10)  # warms OpenSearch's JIT
        for _ in range(args.rounds):
            for name, (settings, factor) in VARIANTS.items():
                runs[name].append(paced_run(client, bodies, settings, args.rate * factor, args.seconds))
    counts = {k: k for k in ("refreshes", "merges", "segments")}
    out = variant_medians(runs, "the job's template (refresh 1 s)", counts)
    print(
        json.dumps(
            {
                "rate": args.rate,
                "seconds": args.seconds,
                "rounds": args.rounds,
                "load": load.summary(),
                "variants": out,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
