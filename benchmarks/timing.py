"""Throughput and latency of a call run n times over several threads (stdlib only, so the
MLflow worker, which runs in its own virtual environment, shares it)."""

from __future__ import annotations

import statistics
import threading
import time
from typing import Callable


def measure(call: Callable[[int], None], n: int, threads: int = 1, tolerate_errors: bool = False) -> dict:
    """Run call(i) for i in range(n) over ``threads`` threads. With ``tolerate_errors`` a failing
    call is counted (MLflow on SQLite with several writers: "database is locked"), else it raises."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    counter = iter(range(n))

    def worker() -> None:
        mine = []
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                break
            start = time.perf_counter()
            try:
                call(i)
            except Exception as exc:
                if not tolerate_errors:
                    raise
                with lock:
                    errors.append(type(exc).__name__)
                continue
            mine.append(time.perf_counter() - start)
        with lock:
            latencies.extend(mine)

    start = time.perf_counter()
    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    wall = time.perf_counter() - start
    latencies.sort()
    ok = len(latencies)
    return {
        "n": n, "threads": threads, "errors": len(errors), "ops_per_s": round(ok / wall, 1),
        "p50_ms": round(1000 * statistics.median(latencies), 3) if ok else None,
        "p99_ms": round(1000 * latencies[min(ok - 1, int(0.99 * ok))], 3) if ok else None,
    }
