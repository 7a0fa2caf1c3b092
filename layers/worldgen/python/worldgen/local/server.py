"""`worldgen serve`: the Hasura action endpoint on 127.0.0.1, as the Function URL serves it on AWS.

The standard library's ThreadingHTTPServer, configured as a server must be: a listen backlog
that absorbs a burst (the default of 5 resets most of 200 parallel clients), a read timeout so a
client that sends half a request cannot hold a thread forever, a bound on the connections handled
at once (the others wait in the backlog; each handled request holds a PostgreSQL connection), a
4xx for a malformed or negative Content-Length and 405 for any method but POST.
"""

from __future__ import annotations

import json
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from worldgen.functions_registry import START_FUNCTION
from worldgen.handlers.actions import MAX_BODY_BYTES, SECRET_HEADER
from worldgen.local.aws_objects import function_url_event
from worldgen.local.runtime import LocalRuntime

LISTEN_BACKLOG = 512
MAX_CONNECTIONS = 32  # under PostgreSQL's default max_connections (100), with room for the phases
READ_TIMEOUT_SECONDS = 10.0


class ActionServer(ThreadingHTTPServer):
    """A ThreadingHTTPServer with a deep backlog and at most ``max_connections`` handled at once."""

    request_queue_size = LISTEN_BACKLOG
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        runtime: LocalRuntime,
        *,
        max_connections: int = MAX_CONNECTIONS,
        read_timeout: float = READ_TIMEOUT_SECONDS,
        verbose: bool = False,
    ) -> None:
        self.runtime, self.read_timeout, self.verbose = runtime, read_timeout, verbose
        self._slots = threading.BoundedSemaphore(max_connections)
        super().__init__(address, ActionRequestHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        # Blocks the accept loop while every slot is taken: further clients wait in the backlog.
        self._slots.acquire()
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class ActionRequestHandler(BaseHTTPRequestHandler):
    server: ActionServer
    server_version = "worldgen-serve"

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.read_timeout)  # for every read of the request

    def do_POST(self) -> None:
        raw_length = self.headers.get("content-length")
        if raw_length is None:
            return self._answer(HTTPStatus.LENGTH_REQUIRED, "length-required", "send a Content-Length header")
        if not raw_length.strip().isdigit():
            return self._answer(
                HTTPStatus.BAD_REQUEST, "invalid-content-length", f"Content-Length {raw_length[:40]!r} is not a size"
            )
        length = int(raw_length)
        if length > MAX_BODY_BYTES:
            return self._answer(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "payload-too-large", f"the body is over {MAX_BODY_BYTES} bytes"
            )
        try:
            body = self.rfile.read(length)
        except TimeoutError:
            return self._answer(HTTPStatus.REQUEST_TIMEOUT, "request-timeout", "the request body did not arrive")
        if len(body) < length:
            return self._answer(HTTPStatus.BAD_REQUEST, "incomplete-body", "the body is shorter than Content-Length")
        event = function_url_event(body.decode("utf-8", errors="replace"), self.headers.get(SECRET_HEADER))
        response = self.server.runtime.invoke(START_FUNCTION, event)
        self._send(int(response["statusCode"]), response["body"].encode())

    def method_not_allowed(self) -> None:
        self._answer(HTTPStatus.METHOD_NOT_ALLOWED, "method-not-allowed", "POST a Hasura action payload")

    def __getattr__(self, name: str) -> Any:
        # BaseHTTPRequestHandler answers 501 for a method without a do_X: every method but POST is 405.
        if name.startswith("do_"):
            return self.method_not_allowed
        raise AttributeError(name)

    def _answer(self, status: HTTPStatus, code: str, message: str) -> None:
        self.close_connection = True
        self._send(status.value, json.dumps({"message": message, "extensions": {"code": code}}).encode())

    def _send(self, status: int, data: bytes) -> None:
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        if status == HTTPStatus.METHOD_NOT_ALLOWED:
            self.send_header("allow", "POST")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def log_message(self, format: str, *values: Any) -> None:
        if self.server.verbose:
            print(f"{self.address_string()} {format % values}", file=sys.stderr)


def serve(
    runtime: LocalRuntime,
    port: int,
    *,
    secret_generated: bool,
    max_connections: int = MAX_CONNECTIONS,
    read_timeout: float = READ_TIMEOUT_SECONDS,
    verbose: bool = False,
) -> int:
    """Serve until interrupted; failed executions are recorded as the EventBridge rule does on AWS."""
    stop = threading.Event()

    def record_failures() -> None:
        while not stop.wait(1):
            runtime.deliver_failures()

    try:
        server = ActionServer(
            ("127.0.0.1", port), runtime, max_connections=max_connections, read_timeout=read_timeout, verbose=verbose
        )
    except OSError as exc:
        print(f"error: cannot listen on 127.0.0.1:{port}: {exc.strerror}; choose another --port", file=sys.stderr)
        return 1
    threading.Thread(target=record_failures, daemon=True).start()
    print(f"serving Hasura actions on http://127.0.0.1:{server.server_port}/", flush=True)
    if secret_generated:
        print(f"Hasura sends the header {SECRET_HEADER}: {runtime.action_secret}")
        print("(generated for this run; set WORLDGEN_ACTION_SECRET before `worldgen serve` to choose it)", flush=True)
    else:
        print(f"Hasura sends the header {SECRET_HEADER} with the value of WORLDGEN_ACTION_SECRET", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        server.server_close()
    return 0
