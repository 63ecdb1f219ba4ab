"""Online template mining with Drain (He et al., ICWS 2017), written for this pipeline's hot path.

Why not the drain3 package: its per-line overhead (masking engine, LRU cache, JSON profiling) costs
more than the rest of the chain together. This implementation keeps Drain's fixed-depth tree and
similarity rule and adds three things: every run holding a digit is a variable before the tree is
searched (ids, numbers, addresses, durations); wildcards count as matching in the similarity, so
a template that has learned a variable keeps accepting it; and an exact-match cache from the
masked line to its cluster, so a line shaped like one seen before costs a dict lookup.

``pattern_id`` is a hash of the template text, not a cluster counter, so two processes that mine
the same template give it the same id.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import orjson

WILDCARD = "<*>"
# A variable is a run between punctuation that holds a digit ("index:17" keeps "index:"), a long
# hex run, a PII marker (masking already decided "[IP]" varies), the value of a key=value pair
# ("ready=<*>") or a path of two or more segments (one template per file is no template).
# Working below the whitespace token keeps "cancelNotification,index:<*>" apart from
# "ready=<*>,policy=<*>", which a whole-token rule would both turn into one "<*>".
_VARIABLE = re.compile(
    r"(?<![^\s=,:;()\[\]{}\"'<>])[^\s=,:;()\[\]{}\"'<>]*\d[^\s=,:;()\[\]{}\"'<>]*"
    r"|\[[A-Z_]+\]"
    r"|(?<![^\s=,:;(\[{\"])[0-9a-fA-F]{8,}(?![^\s=,:;)\]}\"])"
)
# Separate passes that start at a literal "=" or "/" and run only when the message has one: as
# alternatives above they would be tried at every position of every message.
_KV_VALUE = re.compile(r"=[^\s=,;()\[\]{}\"'<>]+")
_PATH = re.compile(r"(?:(?<=[\s=:(\[\"'])|^)/[^\s,;()\[\]{}\"'<>/]+/[^\s,;()\[\]{}\"'<>]*")
# ...and a whitespace token made only of variables and punctuation ("<*>,<*>", "<*>:<*>") is one
# variable: a list of two addresses and a list of one are the same slot.
# Possessive quantifiers keep it linear: "<*>,<*>,...,a" (a token that is almost all variables)
# would otherwise be rescanned from every "<*>" in it, quadratic in the token's length.
_ONLY_VARIABLES = re.compile(r"(?<!\S)[^\w\s<]*+(?:<(?!\*>)[^\w\s<]*+)*+<\*>[^\w\s]*+(?!\S)")


def mask_variables(message: str) -> str:
    """The message with its variable parts replaced by ``<*>`` (what the tree is searched with).

    >>> mask_variables("open /var/log/app.log took 35ms ready=true")
    'open <*> took <*> ready=<*>'
    """
    if "/" in message:
        message = _PATH.sub(WILDCARD, message)
    masked = _VARIABLE.sub(WILDCARD, message)
    if "=" in masked:
        masked = _KV_VALUE.sub("=" + WILDCARD, masked)
    return _ONLY_VARIABLES.sub(WILDCARD, masked)


def pattern_id_of(template: str) -> str:
    return hashlib.blake2b(template.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


class Cluster:
    __slots__ = ("cid", "pattern_id", "size", "template", "tokens")

    def __init__(self, cid: int, tokens: list[str]) -> None:
        self.cid = cid
        self.tokens = tokens
        self.size = 1
        self.template = " ".join(tokens)
        self.pattern_id = pattern_id_of(self.template)

    def _retemplate(self) -> None:
        self.template = " ".join(self.tokens)
        self.pattern_id = pattern_id_of(self.template)


class _Node:
    __slots__ = ("children", "clusters")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.clusters: list[Cluster] = []


class Drain:
    """Drain's parse tree.

    >>> d = Drain()
    >>> a = d.add("User 123 logged in from [IP]")
    >>> b = d.add("User 456 logged in from [IP]")
    >>> a is b, a.template
    (True, 'User <*> logged in from [IP]')
    """

    def __init__(
        self,
        depth: int = 4,
        similarity: float = 0.5,
        max_children: int = 100,
        count_wildcards: bool = False,
        max_clusters: int = 50_000,
        cache_size: int = 200_000,
    ) -> None:
        if depth < 3:
            raise ValueError("depth must be at least 3")
        self.depth = depth
        self.similarity = similarity
        self.max_children = max_children
        self.count_wildcards = count_wildcards
        self.max_clusters = max_clusters
        self.cache_size = cache_size
        self.clusters: list[Cluster] = []
        self._root: dict[int, _Node] = {}
        self._cache: dict[str, Cluster] = {}

    @staticmethod
    def mask_variables(message: str) -> str:
        return mask_variables(message)

    def add(self, message: str) -> Cluster:
        """The cluster of ``message`` after learning from it (a new one if nothing is similar)."""
        masked = mask_variables(message)
        cached = self._cache.get(masked)
        if cached is not None:
            cached.size += 1
            return cached
        tokens = masked.split()
        leaf = self._leaf(tokens)
        cluster = self._best(leaf.clusters, tokens)
        if cluster is None:
            cluster = Cluster(len(self.clusters), tokens)
            if len(self.clusters) < self.max_clusters:
                self.clusters.append(cluster)
                leaf.clusters.append(cluster)
            # Beyond max_clusters a line still gets a stable id from its masked shape, unlearned.
        else:
            cluster.size += 1
            changed = False
            ctoks = cluster.tokens
            for i, tok in enumerate(tokens):
                if ctoks[i] != tok and ctoks[i] != WILDCARD:
                    ctoks[i] = WILDCARD
                    changed = True
            if changed:
                cluster._retemplate()
        if len(self._cache) >= self.cache_size:
            self._cache.clear()
        self._cache[masked] = cluster
        return cluster

    def match(self, message: str) -> Cluster | None:
        """The cluster ``message`` would join, without learning (for evaluation and read paths)."""
        masked = mask_variables(message)
        cached = self._cache.get(masked)
        if cached is not None:
            return cached
        tokens = masked.split()
        node = self._root.get(len(tokens))
        if node is None:
            return None
        for tok in tokens[: self.depth - 2]:
            nxt = node.children.get(tok) or node.children.get(WILDCARD)
            if nxt is None:
                return None
            node = nxt
        return self._best(node.clusters, tokens)

    def _leaf(self, tokens: list[str]) -> _Node:
        node = self._root.get(len(tokens))
        if node is None:
            node = self._root[len(tokens)] = _Node()
        for tok in tokens[: self.depth - 2]:
            children = node.children
            nxt = children.get(tok)
            if nxt is None:
                key = tok if tok != WILDCARD and len(children) < self.max_children else WILDCARD
                nxt = children.get(key)
                if nxt is None:
                    nxt = children[key] = _Node()
            node = nxt
        return node

    def _best(self, clusters: list[Cluster], tokens: list[str]) -> Cluster | None:
        if not tokens:
            return clusters[0] if clusters else None
        best: Cluster | None = None
        best_sim = -1.0
        best_params = -1
        n = len(tokens)
        for cluster in clusters:
            same = 0
            params = 0
            for a, b in zip(cluster.tokens, tokens, strict=False):
                if a == WILDCARD:
                    params += 1
                elif a == b:
                    same += 1
            sim = (same + params) / n if self.count_wildcards else same / n
            if sim > best_sim or (sim == best_sim and params > best_params):
                best, best_sim, best_params = cluster, sim, params
        if best is not None and best_sim >= self.similarity:
            return best
        return None

    # -- state ---------------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The learned templates as JSON; :meth:`from_bytes` rebuilds an equivalent tree."""
        return orjson.dumps(
            {
                "version": 1,
                "params": {
                    "depth": self.depth,
                    "similarity": self.similarity,
                    "max_children": self.max_children,
                    "count_wildcards": self.count_wildcards,
                    "max_clusters": self.max_clusters,
                },
                "clusters": [{"tokens": c.tokens, "size": c.size} for c in self.clusters],
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes | str) -> Drain:
        state: dict[str, Any] = orjson.loads(data)
        drain = cls(**state["params"])
        for item in state["clusters"]:
            tokens = list(item["tokens"])
            cluster = Cluster(len(drain.clusters), tokens)
            cluster.size = int(item.get("size", 1))
            drain.clusters.append(cluster)
            drain._leaf(tokens).clusters.append(cluster)
        return drain
