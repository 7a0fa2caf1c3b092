"""`worldgen serve` as Hasura and a crowd meet it: the real command in a subprocess, over TCP."""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import subprocess
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import pytest

pytestmark = pytest.mark.xdist_group("e2e")

SECRET = "known-secret-for-the-test-3f9a"


@dataclass
class Served:
    port: int
    banner: str


@contextmanager
def worldgen_serve(db_url: str, *options: str, secret: str | None = SECRET) -> Iterator[Served]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORLDGEN_", "ANTHROPIC_", "POWERTOOLS_"))}
    env["WORLDGEN_DATABASE_URL"] = db_url
    if secret is not None:
        env["WORLDGEN_ACTION_SECRET"] = secret
    process = subprocess.Popen(
        [sys.executable, "-m", "worldgen.tools.cli", "serve", "--port", "0", *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        banner = []
        for line in process.stdout:
            banner.append(line)
            if line.startswith("Hasura sends the header"):
                break
        text = "".join(banner)
        found = re.search(r"http://127\.0\.0\.1:(\d+)/", text)
        assert found, f"no address in {text!r}"
        yield Served(int(found.group(1)), text)
    finally:
        process.terminate()
        process.wait(timeout=30)


def action(campaign_id: str) -> bytes:
    return json.dumps(
        {
            "action": {"name": "generateWorld"},
            "input": {"campaign_id": campaign_id},
            "session_variables": {"x-hasura-role": "user", "x-hasura-user-id": "someone"},
        }
    ).encode()


def raw_request(port: int, data: bytes, timeout: float = 30) -> bytes:
    """Send ``data`` as it is and return everything the server answers before it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def test_a_burst_of_200_parallel_clients_gets_200_answers_without_a_reset_or_a_5xx(db_url):
    outcomes: Counter[str] = Counter()
    with worldgen_serve(db_url) as served:
        start = threading.Barrier(200)

        def one(_: int) -> str:
            start.wait()
            try:
                connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=60)
                connection.request(
                    "POST", "/", body=action(str(uuid.uuid4())), headers={"x-worldgen-action-secret": SECRET}
                )
                status = connection.getresponse().status
                connection.close()
                return "5xx" if status >= 500 else str(status)
            except (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected):
                return "reset"
            except OSError as exc:
                return type(exc).__name__

        with ThreadPoolExecutor(max_workers=200) as pool:
            outcomes.update(pool.map(one, range(200)))

    print(f"200 parallel requests: {dict(outcomes)}")
    assert outcomes == {"404": 200}  # an unknown campaign, answered by the handler, every time


BAD_REQUESTS = [
    ("malformed Content-Length", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400),
    ("negative Content-Length", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n", 400),
    ("no Content-Length", b"POST / HTTP/1.1\r\nHost: x\r\n\r\n", 411),
    ("a huge Content-Length", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n", 413),
    ("GET", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 405),
    ("DELETE", b"DELETE / HTTP/1.1\r\nHost: x\r\n\r\n", 405),
    ("an invented method", b"BREW / HTTP/1.1\r\nHost: x\r\n\r\n", 405),
]


def test_a_bad_request_gets_a_clear_4xx(db_url):
    with worldgen_serve(db_url) as served:
        answers = {label: raw_request(served.port, data) for label, data, _ in BAD_REQUESTS}

    for label, _, status in BAD_REQUESTS:
        answer = answers[label]
        assert status_of(answer) == status, (label, answer[:200])
        if status == 405:
            assert b"\r\nallow: post\r\n" in answer.lower(), label
        body = json.loads(answer.split(b"\r\n\r\n", 1)[1])
        assert body["extensions"]["code"], label


def test_slow_clients_time_out_and_cannot_hold_the_server(db_url):
    with worldgen_serve(db_url, "--read-timeout", "1", "--max-connections", "2") as served:
        # A body promised and never sent: 408 once the read timeout passes.
        answer = raw_request(served.port, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        assert status_of(answer) == 408
        # Three clients that send nothing take more than the two slots; a real request is still answered.
        idle = [socket.create_connection(("127.0.0.1", served.port)) for _ in range(3)]
        try:
            answer = raw_request(
                served.port,
                b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nx-worldgen-action-secret: wrong\r\n\r\n{}",
            )
        finally:
            for sock in idle:
                sock.close()
    assert status_of(answer) == 401


def test_serve_prints_the_action_secret_only_when_it_generated_one(db_url):
    with worldgen_serve(db_url, secret=SECRET) as configured:
        assert SECRET not in configured.banner
        assert "with the value of WORLDGEN_ACTION_SECRET" in configured.banner
    with worldgen_serve(db_url, secret=None) as generated:
        line = next(line for line in generated.banner.splitlines() if line.startswith("Hasura sends the header"))
        assert re.fullmatch(r"Hasura sends the header x-worldgen-action-secret: [A-Za-z0-9_-]{20,}", line)
