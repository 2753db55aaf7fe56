"""The registry's own Prometheus metrics, read from the store when scraped: how often the read
cache answers, whether it is on, and how many writes share each transaction (group commit)."""

from __future__ import annotations

from typing import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from .store import Store


class StoreMetrics:
    """A collector for ``prometheus_client``: register it into the server's registry."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def collect(self) -> Iterator[Metric]:
        cache, group = self._store.cache, self._store.group_commit
        hits = CounterMetricFamily("beamops_registry_read_cache_hits",
                                   "Hot reads (resolve alias, get version, resolve IOV) answered from memory")
        hits.add_metric([], cache.hits)
        misses = CounterMetricFamily("beamops_registry_read_cache_misses",
                                     "Hot reads that went to the database")
        misses.add_metric([], cache.misses)
        on = GaugeMetricFamily("beamops_registry_read_cache_on",
                               "1 while the read cache can see every change (0: PostgreSQL listener down)")
        on.add_metric([], 0 if cache.generation() is None else 1)
        transactions = CounterMetricFamily("beamops_registry_write_transactions",
                                           "Write transactions run (each may carry several writes)")
        transactions.add_metric([], group.groups)
        writes = CounterMetricFamily("beamops_registry_writes", "Writes committed or refused")
        writes.add_metric([], group.changes)
        yield from (hits, misses, on, transactions, writes)
