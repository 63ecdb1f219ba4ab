"""What the benchmarks' generated log lines are made of: who logs, and messages from templates.

Each benchmark keeps its own templates and line layouts; its recorded figures depend on the exact
input, so a generator here draws from ``rng`` in a fixed order that must not change."""

from __future__ import annotations

import random

SERVICES = ["checkout", "payments", "auth", "search", "inventory", "gateway"]
HOSTS = [f"web-{i}" for i in range(1, 9)]
USERS = ["alice", "bob", "carol", "dave", "erin", "frank"]


def fill_message(rng: random.Random, templates: list[str], pii: list[str]) -> str:
    """One of ``templates`` (one time in ten one of ``pii`` instead), its placeholders filled from
    ``rng``: ``{uid} {oid} {ms} {n} {n4} {ip} {user}``."""
    template = rng.choice(pii) if rng.random() < 0.1 else rng.choice(templates)
    return template.format(
        uid=rng.randint(1, 99999),
        oid=rng.randint(10**6, 10**7),
        ms=rng.randint(1, 5000),
        n=rng.randint(1, 250),
        n4=rng.randint(1000, 9999),
        ip=f"10.0.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
        user=rng.choice(USERS),
    )
