"""A small closed-loop load generator on loopback: N client threads, each with a
keep-alive connection, for a fixed number of requests or seconds (whichever ends first)."""

from __future__ import annotations

import http.client
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

Request = Callable[[int, int], tuple[str, str, bytes | None, dict[str, str]]]
"""(client index, request index) -> (method, path, body, headers)"""

Classify = Callable[[int, bytes], str]
"""(status, response body) -> a label to count, like "201" or "409 slot_taken"."""


@dataclass
class Result:
    name: str
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0
    clients: int = 1
    labels: dict[str, int] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return len(self.latencies_ms)

    @property
    def rps(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies_ms:
            return 0.0
        ordered = sorted(self.latencies_ms)
        index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))
        return ordered[index]

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies_ms) if self.latencies_ms else 0.0


def run_load(
    name: str,
    port: int,
    request: Request,
    *,
    clients: int = 8,
    requests_per_client: int = 200,
    max_seconds: float = 20.0,
    classify: Classify | None = None,
) -> Result:
    result = Result(name, clients=clients)
    lock = threading.Lock()
    deadline = time.monotonic() + max_seconds

    def client(index: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        local: list[float] = []
        statuses: dict[int, int] = {}
        labels: dict[str, int] = {}
        for n in range(requests_per_client):
            if time.monotonic() > deadline:
                break
            method, path, body, headers = request(index, n)
            started = time.perf_counter()
            try:
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
                payload = response.read()
                status = response.status
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                status, payload = 0, b""
            local.append((time.perf_counter() - started) * 1000)
            statuses[status] = statuses.get(status, 0) + 1
            if classify is not None:
                label = classify(status, payload)
                labels[label] = labels.get(label, 0) + 1
        conn.close()
        with lock:
            result.latencies_ms.extend(local)
            for status, count in statuses.items():
                result.statuses[status] = result.statuses.get(status, 0) + count
            for label, count in labels.items():
                result.labels[label] = result.labels.get(label, 0) + count

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.seconds = time.perf_counter() - started
    return result


def time_sql(name: str, run_once: Callable[[int], None], *, repeats: int = 500) -> Result:
    """Latency of the same query in raw SQL, one connection, no HTTP: the database floor."""
    result = Result(name)
    started = time.perf_counter()
    for n in range(repeats):
        t0 = time.perf_counter()
        run_once(n)
        result.latencies_ms.append((time.perf_counter() - t0) * 1000)
    result.seconds = time.perf_counter() - started
    result.statuses[200] = repeats
    return result
