"""What each indexed field of the hot tier's mapping costs OpenSearch at ingest.

The same documents the ingest job writes (bench_ingest's generator through the record pipeline)
are bulk-indexed into a fresh index per variant of the job's template, each variant leaving out
the indexing of one field (or making ``message`` a ``match_only_text``, which keeps no positions
and norms and checks phrases against ``_source``). Reported per variant: OpenSearch's CPU per
document (its whole process, so shared with anything else it does), the rate, and the store size
after a flush. The variants run in turns, ``--rounds`` times, and the medians are printed, so a
change of load on the machine is spread over all of them.

Needs `strata stack up`:

    .venv/bin/python tests/bench/bench_hot_mapping.py --records 60000 --rounds 3
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from infra.settings import Settings
from schemas.projections import opensearch_index_template
from tests.bench.bench_ingest import CpuSampler, Load, cpu_per_record, expect, generate, opensearch

OPENSEARCH = "service: opensearch (shared)"


def _props(template: dict[str, Any]) -> dict[str, Any]:
    props: dict[str, Any] = template["template"]["mappings"]["properties"]
    return props


def _not_indexed(field: str) -> Callable[[dict[str, Any]], None]:
    def change(template: dict[str, Any]) -> None:
        _props(template)[field]["index"] = False

    return change


def _attributes_not_indexed(template: dict[str, Any]) -> None:
    # flat_object has no `index: false`; an object that is not parsed is kept in _source only.
    _props(template)["attributes"] = {"type": "object", "enabled": False}


def _message_match_only(template: dict[str, Any]) -> None:
    _props(template)["message"] = {"type": "match_only_text"}


VARIANTS: dict[str, Callable[[dict[str, Any]], None] | None] = {
    "the job's template": None,
    "ingested_at not indexed": _not_indexed("ingested_at"),
    "pattern not indexed": _not_indexed("pattern"),
    "attributes kept in _source only": _attributes_not_indexed,
    "message as match_only_text": _message_match_only,
}


def index_once(
    client: Any, docs: list[tuple[str, str, str]], change: Callable[..., None] | None
) -> dict[str, float]:
    from opensearchpy import helpers

    prefix = f"bm-{uuid.uuid4().hex[:8]}"
    template = copy.deepcopy(opensearch_index_template(prefix))
    if change is not None:
        change(template)
    client.indices.put_index_template(name=prefix, body=template)
    try:
        actions = ({"_index": f"{prefix}-{day}", "_id": lid, "_source": doc} for day, lid, doc in docs)
        sampler = CpuSampler(-1)
        cpu0 = sampler.sample()
        started = time.perf_counter()
        for ok, item in helpers.parallel_bulk(
            client, actions, thread_count=2, chunk_size=2000, max_chunk_bytes=5 * 1024 * 1024
        ):
            if not ok:
                raise RuntimeError(f"bulk item failed: {item}")
        client.indices.refresh(index=f"{prefix}-*")
        elapsed = time.perf_counter() - started
        client.indices.flush(index=f"{prefix}-*")
        cpu = cpu_per_record(cpu0, sampler.sample(), len(docs))
        stats = client.indices.stats(index=f"{prefix}-*", metric="store")
        size = stats["_all"]["primaries"]["store"]["size_in_bytes"]
        return {
            "cpu_us": cpu.get(OPENSEARCH, 0.0),
            "rate": len(docs) / elapsed,
            "bytes_per_doc": size / len(docs),
        }
    finally:
        client.indices.delete(index=f"{prefix}-*", ignore=[404])
        client.indices.delete_index_template(name=prefix, ignore=[404])


def variant_medians(
    runs: dict[str, list[dict[str, float]]], base: str, more: dict[str, str]
) -> dict[str, dict[str, Any]]:
    """Per variant, the medians over its rounds of OpenSearch's CPU a document (also against the
    ``base`` variant's), the rate, and each run figure ``more`` names (output name -> run key)."""
    base_cpu = statistics.median(r["cpu_us"] for r in runs[base])
    out = {}
    for name, results in runs.items():
        cpu = statistics.median(r["cpu_us"] for r in results)
        out[name] = {
            "opensearch_cpu_us_per_doc": round(cpu, 1),
            "against_the_template": round(cpu / base_cpu, 2) if base_cpu else None,
            "docs_per_s": round(statistics.median(r["rate"] for r in results)),
            **{key: round(statistics.median(r[k] for r in results), 1) for key, k in more.items()},
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--records", type=int, default=60_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)

    settings = Settings()
    client = opensearch(settings)
    start = datetime.now(UTC) - timedelta(minutes=30)
    envelopes = generate(args.records, seed=11, start=start, span_s=600)
    docs = expect([e.encode() for e in envelopes]).docs
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in VARIANTS}
    with Load() as load:
        index_once(client, docs[: min(len(docs), 10_000)], None)  # warms OpenSearch's JIT
        for _ in range(args.rounds):
            for name, change in VARIANTS.items():
                runs[name].append(index_once(client, docs, change))
    out = variant_medians(runs, "the job's template", {"store_bytes_per_doc": "bytes_per_doc"})
    print(
        json.dumps(
            {"records": len(docs), "rounds": args.rounds, "load": load.summary(), "variants": out}, indent=2
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
