"""A real HTTP server speaking the OpenAI chat-completions API, for teacher tests and benchmarks.

It answers every question with a short chain of thought after `latency` seconds, counts
what it served (and so what a real provider would have charged: every 200), and injects
the faults queued in `faults`, one per request, in order:
  ("status", code, headers)  an error response, e.g. (429, {"Retry-After": "0"}) or 500
  ("sleep", seconds)         answer only after `seconds` (past the client's timeout)
  ("drop",)                  close the connection without a response
  ("malformed",)             a 200 whose body is not JSON
  ("length",)                a 200 cut off by the token limit (finish_reason "length")
`outage(seconds)` makes it answer every request with 429 or 500, alternately, until that
many seconds have passed: an endpoint that is down for a while.
"""

from __future__ import annotations

import collections
import json
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class OpenAITestServer:
    def __init__(self, latency: float = 0.0):
        self.latency = latency
        self.faults: list[tuple] = []
        self.served = 0  # 200 responses: what a provider charges for
        self.paid_per_question: collections.Counter = collections.Counter()
        self.requests = 0
        self.refused = 0  # 429s and 500s answered during an outage
        self.bodies: list[dict] = []  # every request body that got an answer, in order
        self.models: list[str] = []  # what GET /models lists (empty: any model is served, none is listed)
        self.key: str | None = None  # when set, GET /models refuses any other bearer token
        self.outage_until = 0.0
        self.outage_pending = 0.0
        self.authorizations: collections.Counter = collections.Counter()  # Authorization headers seen
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real endpoints do

            def log_message(self, *args):
                pass

            def setup(self):
                super().setup()
                # Headers and body go out in two writes: without this, Nagle's algorithm and the
                # client's delayed ACK add 40 ms to every keep-alive response.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def _send(self, status: int, payload: bytes, headers: dict | None = None):
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("x-request-id", f"req-{uuid.uuid4().hex[:8]}")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self):
                if not self.path.rstrip("/").endswith("/models"):
                    self._send(404, b'{"error": {"message": "not found"}}')
                elif server.key and self.headers.get("Authorization") != f"Bearer {server.key}":
                    self._send(401, b'{"error": {"message": "invalid api key"}}')
                else:
                    self._send(200, json.dumps({"object": "list", "data": [
                        {"id": m, "object": "model"} for m in server.models]}).encode())

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                question = body["messages"][-1]["content"]
                with server._lock:
                    server.requests += 1
                    server.authorizations[self.headers.get("Authorization")] += 1
                    if server.outage_pending:
                        server.outage_until, server.outage_pending = time.monotonic() + server.outage_pending, 0.0
                    fault = server.faults.pop(0) if server.faults else None
                    if fault is None and time.monotonic() < server.outage_until:
                        server.refused += 1
                        fault = ("status", 429, {}) if server.refused % 2 else ("status", 500, {})
                if server.latency:
                    time.sleep(server.latency)
                kind = fault[0] if fault else "ok"
                if kind == "status":
                    error = {"error": {"message": f"injected {fault[1]}", "type": "test"}}
                    self._send(fault[1], json.dumps(error).encode(), fault[2])
                    return
                if kind == "drop":
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                if kind == "sleep":
                    time.sleep(fault[1])
                with server._lock:
                    server.served += 1
                    server.paid_per_question[question] += 1
                if kind == "malformed":
                    self._send(200, b'{"id": "chatcmpl-x", "choices": [{"index": 0, "mess')
                    return
                truncated = kind == "length"
                n = int(body.get("n", 1))  # several samples of one question, each 12 tokens
                with server._lock:
                    server.bodies.append(body)
                choices = []
                for index in range(n):
                    text = (f"Thinking about {len(question)} characters" + (f" (sample {index})" if n > 1 else "")
                            + "." + ("" if truncated else f" The answer is {len(question) % 10}."))
                    choices.append({"index": index, "message": {"role": "assistant", "content": text},
                                    "finish_reason": "length" if truncated else "stop"})
                payload = json.dumps({
                    "id": f"chatcmpl-{uuid.uuid4().hex[:8]}", "object": "chat.completion", "created": 0,
                    "model": body["model"], "choices": choices[::-1],  # any order: the index says which
                    "usage": {"prompt_tokens": 10, "completion_tokens": 12 * n, "total_tokens": 10 + 12 * n},
                }).encode()
                self._send(200, payload)

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 256

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def outage(self, seconds: float, from_first_request: bool = False) -> None:
        """429s and 500s for `seconds`, from now or (on a busy machine, where a client may take
        longer than that to start) from the first request that arrives."""
        if from_first_request:
            self.outage_pending = seconds
        else:
            self.outage_until = time.monotonic() + seconds

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    def start(self):
        return self.__enter__()
