"""`worldgen serve` under a burst: N parallel clients at once, counted by outcome.

    make bench-serve          (N = 200; BENCH_SERVE_CLIENTS to change it)

Starts the real command in a subprocess on the local database (DATABASE_URL, else the embedded
PostgreSQL in the worldgen home), releases N clients together, each POSTing a generateWorld action for
an unknown campaign (a full trip through the handler and PostgreSQL, answered 404), and prints
how many got an answer, how many were reset, how many got a 5xx, and the latency percentiles.
Nothing is asserted; tests/e2e/test_serve.py asserts 0 resets and 0 5xx.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

SECRET = "bench-serve-secret"


def main() -> None:
    clients = int(os.environ.get("BENCH_SERVE_CLIENTS", "200"))
    env = {**os.environ, "WORLDGEN_ACTION_SECRET": SECRET}
    process = subprocess.Popen(
        [sys.executable, "-m", "worldgen.tools.cli", "serve", "--port", "0"], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert process.stdout is not None
        port = 0
        for line in process.stdout:
            if found := re.search(r"http://127\.0\.0\.1:(\d+)/", line):
                port = int(found.group(1))
                break
        body = json.dumps(
            {
                "action": {"name": "generateWorld"},
                "input": {"campaign_id": str(uuid.uuid4())},
                "session_variables": {"x-hasura-role": "user", "x-hasura-user-id": "bench"},
            }
        ).encode()
        start = threading.Barrier(clients)
        latencies: list[float] = []

        def one(_: int) -> str:
            start.wait()
            began = time.perf_counter()
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                connection.request("POST", "/", body=body, headers={"x-worldgen-action-secret": SECRET})
                status = connection.getresponse().status
                connection.close()
            except (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected):
                return "reset"
            except OSError as exc:
                return type(exc).__name__
            latencies.append(time.perf_counter() - began)
            return "5xx" if status >= 500 else str(status)

        began = time.perf_counter()
        with ThreadPoolExecutor(max_workers=clients) as pool:
            outcomes = Counter(pool.map(one, range(clients)))
        wall = time.perf_counter() - began
    finally:
        process.terminate()
        process.wait(timeout=30)
    quantiles = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    print(f"{clients} parallel requests in {wall:.2f} s: {dict(outcomes)}")
    print(f"resets: {outcomes['reset']}  5xx: {outcomes['5xx']}  answered: {len(latencies)}")
    p50, p95, worst = quantiles[49] * 1000, quantiles[94] * 1000, max(latencies, default=0) * 1000
    print(f"latency p50 {p50:.0f} ms  p95 {p95:.0f} ms  max {worst:.0f} ms")


if __name__ == "__main__":
    main()
