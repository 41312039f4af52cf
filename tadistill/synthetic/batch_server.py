"""A real OpenAI Batch API server (/v1/files, /v1/batches) in front of any OpenAI-compatible
chat-completions endpoint: what tests and demos buy batches from, through the `openai` client.

Files are uploaded (multipart, with a purpose), retrieved and read back; a batch goes
validating -> in_progress -> finalizing -> completed, or `failed` at validation (with `errors`),
`expired` (with the lines answered so far), `cancelling` -> `cancelled`. Each line is executed
against the upstream endpoint (the project's simulated teacher, or any other) and its answer goes
to the batch's output file, or to its error file when it failed. `executions` counts, per
custom_id, the lines the upstream answered (what a provider charges for), so a test can assert that
every request was executed exactly once whatever the client went through.

Faults are planned per batch, in the order batches are created (`plans`, or POST /admin/plans):
  {"reject": "reason"}      failed at validation, the reason in `errors`
  {"expire_after": n}       expired after n lines (the rest unanswered: in the error file as
                            `batch_expired`, or nowhere with "unanswered_listed": false)
  {"fail_lines": [k, ...]}  those 0-based lines answered with an error (HTTP 500 by default,
                            "fail_status": 400 for a refusal) in the error file, not executed
  {"malformed_lines": [k]}  those lines executed (paid) and answered with no choices
  {"line_delay_s": s}       each line takes s seconds
  {"hold": true}            waits in_progress until `release()` (POST /admin/release): a client
                            can be killed mid-batch, deterministically
`validating_s` and `finalizing_s` slow those statuses. Plain chat completions and /v1/models are
passed through to the upstream, so one base_url serves the synchronous path too.

Run it: python -m tadistill.synthetic.batch_server --upstream http://127.0.0.1:8000/v1 --port 8100
"""

from __future__ import annotations

import argparse
import collections
import email.parser
import email.policy
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional

CHAT = "/v1/chat/completions"
TERMINAL = {"completed", "failed", "expired", "cancelled"}


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


class BatchServer:
    def __init__(self, upstream: str, host: str = "127.0.0.1", port: int = 0, validating_s: float = 0.0,
                 finalizing_s: float = 0.0, line_delay_s: float = 0.0):
        self.upstream = upstream.rstrip("/")
        self.validating_s, self.finalizing_s, self.line_delay_s = validating_s, finalizing_s, line_delay_s
        self.plans: list[dict] = []  # faults of the next batches created, in order (see the module's doc)
        self.files: dict[str, dict] = {}
        self.batches: dict[str, dict] = {}  # id -> the batch object, as the API shows it
        self.executions: collections.Counter = collections.Counter()  # custom_id -> lines the upstream answered
        self.create_calls = 0  # POST /v1/batches that made a batch
        self.uploads = 0
        self._order: list[str] = []  # batch ids, oldest first
        self._released = threading.Event()
        self._lock = threading.Lock()
        self.httpd = _Server((host, port), _handler(self))
        self.base_url = f"http://{host}:{self.httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True, name="batch-server")

    # -- lifetime ---------------------------------------------------------------------------

    def start(self) -> "BatchServer":
        self._thread.start()
        return self

    def __enter__(self) -> "BatchServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self._released.set()  # held batches finish, so no thread waits forever
        self.httpd.shutdown()
        self.httpd.server_close()

    def release(self) -> None:
        """Let batches planned with {"hold": true} run."""
        self._released.set()

    def wait_for(self, status: str, timeout_s: float = 30.0) -> dict:
        """The first batch that reaches `status` (tests)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                for batch in self.batches.values():
                    if batch["status"] == status:
                        return dict(batch)
            time.sleep(0.02)
        raise TimeoutError(f"no batch reached {status!r} in {timeout_s} s")

    # -- files ------------------------------------------------------------------------------

    def add_file(self, content: bytes, filename: str, purpose: str) -> dict:
        file = {"id": _id("file"), "object": "file", "bytes": len(content), "created_at": int(time.time()),
                "filename": filename, "purpose": purpose, "status": "processed"}
        with self._lock:
            self.files[file["id"]] = {**file, "_content": content}
        return file

    def file_object(self, file_id: str) -> Optional[dict]:
        with self._lock:
            file = self.files.get(file_id)
        return {k: v for k, v in file.items() if not k.startswith("_")} if file else None

    # -- batches ----------------------------------------------------------------------------

    def create_batch(self, body: dict) -> tuple[int, dict]:
        input_file_id = body.get("input_file_id")
        with self._lock:
            file = self.files.get(input_file_id)
        if file is None:
            return 404, _error(f"no file {input_file_id!r}", "invalid_request_error")
        if file["purpose"] != "batch":
            return 400, _error(f"file {input_file_id} has purpose {file['purpose']!r}, not 'batch'",
                               "invalid_request_error")
        if body.get("endpoint") != CHAT:
            return 400, _error(f"endpoint {body.get('endpoint')!r}: this server batches {CHAT}",
                               "invalid_request_error")
        if body.get("completion_window") != "24h":
            return 400, _error("completion_window must be '24h'", "invalid_request_error")
        now = int(time.time())
        batch = {"id": _id("batch"), "object": "batch", "endpoint": CHAT, "errors": None,
                 "input_file_id": input_file_id, "completion_window": "24h", "status": "validating",
                 "output_file_id": None, "error_file_id": None, "created_at": now, "in_progress_at": None,
                 "expires_at": now + 86400, "finalizing_at": None, "completed_at": None, "failed_at": None,
                 "expired_at": None, "cancelling_at": None, "cancelled_at": None,
                 "request_counts": {"total": 0, "completed": 0, "failed": 0}, "metadata": body.get("metadata")}
        with self._lock:
            plan = self.plans.pop(0) if self.plans else {}
            self.batches[batch["id"]] = batch
            self._order.append(batch["id"])
            self.create_calls += 1
        threading.Thread(target=self._run, args=(batch["id"], file["_content"], plan), daemon=True).start()
        return 200, dict(batch)

    def batch_object(self, batch_id: str) -> Optional[dict]:
        with self._lock:
            batch = self.batches.get(batch_id)
            return json.loads(json.dumps(batch)) if batch else None

    def list_batches(self, limit: int, after: Optional[str]) -> dict:
        with self._lock:
            newest_first = list(reversed(self._order))
            if after in newest_first:
                newest_first = newest_first[newest_first.index(after) + 1:]
            page = [json.loads(json.dumps(self.batches[i])) for i in newest_first[:limit]]
            more = len(newest_first) > limit
        return {"object": "list", "data": page, "first_id": page[0]["id"] if page else None,
                "last_id": page[-1]["id"] if page else None, "has_more": more}

    def cancel(self, batch_id: str) -> Optional[dict]:
        with self._lock:
            batch = self.batches.get(batch_id)
            if batch is None:
                return None
            if batch["status"] not in TERMINAL:
                batch["status"], batch["cancelling_at"] = "cancelling", int(time.time())
            return dict(batch)

    def _set(self, batch_id: str, **fields) -> dict:
        with self._lock:
            self.batches[batch_id].update(fields)
            return self.batches[batch_id]

    def _run(self, batch_id: str, content: bytes, plan: dict) -> None:
        time.sleep(self.validating_s)
        lines, problems = _validate(content)
        if plan.get("reject"):
            problems.append({"code": "invalid_request", "message": plan["reject"], "param": None, "line": None})
        if problems:
            self._set(batch_id, status="failed", failed_at=int(time.time()),
                      errors={"object": "list", "data": problems})
            return
        with self._lock:  # a batch cancelled while it was validating starts as cancelling
            batch = self.batches[batch_id]
            batch.update(request_counts={"total": len(lines), "completed": 0, "failed": 0})
            if batch["status"] == "validating":
                batch.update(status="in_progress", in_progress_at=int(time.time()))
        if plan.get("hold"):
            while not self._released.wait(0.05):
                if self.batch_object(batch_id)["status"] == "cancelling":
                    break
        outputs, errors, ended = [], [], None
        fail_lines, malformed = set(plan.get("fail_lines", ())), set(plan.get("malformed_lines", ()))
        delay = plan.get("line_delay_s", self.line_delay_s)
        for index, line in enumerate(lines):
            if self.batch_object(batch_id)["status"] == "cancelling":
                ended = "cancelled"
            elif plan.get("expire_after") is not None and index >= plan["expire_after"]:
                ended = "expired"
            if ended:
                if plan.get("unanswered_listed", True):
                    code = "batch_expired" if ended == "expired" else "batch_cancelled"
                    message = ("This request could not be executed before the completion window expired."
                               if ended == "expired" else "This request was not executed: the batch was cancelled.")
                    errors += [_line(rest["custom_id"], None, {"code": code, "message": message})
                               for rest in lines[index:]]
                break
            time.sleep(delay)
            if index in fail_lines:
                status = int(plan.get("fail_status", 500))
                errors.append(_line(line["custom_id"], {"status_code": status, "request_id": _id("req"),
                                                         "body": _error(f"injected error on line {index}",
                                                                        "server_error" if status >= 500
                                                                        else "invalid_request_error")}))
            else:
                status, body = self._execute(line["body"])
                if status == 200 and index in malformed:
                    body = {"id": body.get("id"), "object": "chat.completion", "choices": []}
                if status == 200:
                    with self._lock:
                        self.executions[line["custom_id"]] += 1
                    outputs.append(_line(line["custom_id"], {"status_code": 200, "request_id": _id("req"),
                                                              "body": body}))
                else:
                    errors.append(_line(line["custom_id"], {"status_code": status, "request_id": _id("req"),
                                                             "body": body}))
            with self._lock:
                counts = self.batches[batch_id]["request_counts"]
                counts["completed"], counts["failed"] = len(outputs), len(errors)
        if ended is None:
            self._set(batch_id, status="finalizing", finalizing_at=int(time.time()))
            time.sleep(self.finalizing_s)
        files = {}
        for name, found in (("output_file_id", outputs), ("error_file_id", errors)):
            if found:
                text = "".join(json.dumps(entry) + "\n" for entry in found).encode()
                files[name] = self.add_file(text, f"{batch_id}_{name[:-8]}.jsonl", "batch_output")["id"]
        final = ended or "completed"
        self._set(batch_id, status=final, **files, **{f"{final}_at": int(time.time())},
                  request_counts={"total": len(lines), "completed": len(outputs),
                                  "failed": sum(1 for e in errors if e["response"] is not None)})

    def _execute(self, body: dict) -> tuple[int, dict]:
        """One line against the upstream: (status, body)."""
        status, raw = self.forward("POST", "/chat/completions", json.dumps(body).encode())
        try:
            return status, json.loads(raw)
        except ValueError:
            return 502, _error("the upstream sent a malformed body", "server_error")

    def forward(self, method: str, path: str, data: Optional[bytes] = None) -> tuple[int, bytes]:
        request = urllib.request.Request(self.upstream + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except (urllib.error.URLError, OSError) as exc:
            return 502, json.dumps(_error(f"upstream unreachable: {exc}", "server_error")).encode()


def _line(custom_id: str, response: Optional[dict], error: Optional[dict] = None) -> dict:
    return {"id": _id("batch_req"), "custom_id": custom_id, "response": response, "error": error}


def _error(message: str, kind: str) -> dict:
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def _validate(content: bytes) -> tuple[list[dict], list[dict]]:
    """The input file's requests, and what is wrong with it (the Batch API's `errors`)."""
    lines, problems, seen = [], [], set()
    for number, raw in enumerate(content.decode("utf-8", "replace").splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
        except ValueError:
            problems.append({"code": "invalid_json_line", "message": f"line {number} is not JSON", "param": None,
                             "line": number})
            continue
        custom_id = line.get("custom_id") if isinstance(line, dict) else None
        wrong = None if isinstance(custom_id, str) and custom_id else "custom_id"
        if wrong is None and custom_id in seen:
            wrong = "custom_id (duplicated)"
        elif wrong is None and line.get("method") != "POST":
            wrong = "method"
        elif wrong is None and line.get("url") not in (CHAT, "/chat/completions"):
            wrong = "url"
        elif wrong is None and not isinstance(line.get("body"), dict):
            wrong = "body"
        if wrong:
            problems.append({"code": "invalid_request", "message": f"line {number}: bad {wrong}", "param": wrong,
                             "line": number})
            continue
        seen.add(custom_id)
        lines.append(line)
    if not lines and not problems:
        problems.append({"code": "empty_file", "message": "the input file has no requests", "param": None,
                         "line": None})
    return lines, problems


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


def _handler(server: BatchServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def _send(self, status: int, payload, content_type: str = "application/json") -> None:
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("x-request-id", _id("req"))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _route(self) -> tuple[list[str], dict]:
            url = urllib.parse.urlsplit(self.path)
            parts = [p for p in url.path.split("/") if p]
            if parts and parts[0] == "v1":
                parts = parts[1:]
            return parts, dict(urllib.parse.parse_qsl(url.query))

        def do_GET(self):
            parts, query = self._route()
            if parts == ["models"]:
                status, raw = server.forward("GET", "/models")
                return self._send(status, raw)
            if parts == ["admin", "stats"]:
                return self._send(200, {"executions": dict(server.executions), "create_calls": server.create_calls,
                                        "uploads": server.uploads})
            if parts[:1] == ["files"] and len(parts) in (2, 3):
                file = server.file_object(parts[1])
                if file is None:
                    return self._send(404, _error(f"no file {parts[1]!r}", "invalid_request_error"))
                if len(parts) == 3 and parts[2] == "content":
                    with server._lock:
                        content = server.files[parts[1]]["_content"]
                    return self._send(200, content, "application/octet-stream")
                return self._send(200, file)
            if parts == ["batches"]:
                return self._send(200, server.list_batches(int(query.get("limit", 20)), query.get("after")))
            if parts[:1] == ["batches"] and len(parts) == 2:
                batch = server.batch_object(parts[1])
                return self._send(200, batch) if batch else self._send(404, _error("no such batch", "not_found"))
            self._send(404, _error(f"no route {self.path}", "not_found"))

        def do_POST(self):
            parts, _ = self._route()
            body = self._body()
            if parts == ["chat", "completions"]:
                status, raw = server.forward("POST", "/chat/completions", body)
                return self._send(status, raw)
            if parts == ["files"]:
                fields = _multipart(self.headers.get("Content-Type", ""), body)
                if "file" not in fields or "purpose" not in fields:
                    return self._send(400, _error("a file and a purpose are required", "invalid_request_error"))
                filename, content = fields["file"]
                server.uploads += 1
                return self._send(200, server.add_file(content, filename or "upload.jsonl",
                                                       fields["purpose"][1].decode()))
            if parts == ["batches"]:
                return self._send(*server.create_batch(json.loads(body or b"{}")))
            if parts[:1] == ["batches"] and parts[2:] == ["cancel"]:
                batch = server.cancel(parts[1])
                return self._send(200, batch) if batch else self._send(404, _error("no such batch", "not_found"))
            if parts == ["admin", "plans"]:
                with server._lock:
                    server.plans.extend(json.loads(body or b"[]"))
                return self._send(200, {"plans": len(server.plans)})
            if parts == ["admin", "release"]:
                server.release()
                return self._send(200, {"released": True})
            self._send(404, _error(f"no route {self.path}", "not_found"))

    return Handler


def _multipart(content_type: str, body: bytes) -> dict[str, tuple[Optional[str], bytes]]:
    """The fields of a multipart/form-data body: name -> (filename, bytes)."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    fields = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name:
            fields[name] = (part.get_filename(), part.get_payload(decode=True) or b"")
    return fields


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream", required=True, help="OpenAI-compatible base URL that executes the lines (…/v1)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--line-delay-s", type=float, default=0.0)
    args = parser.parse_args(argv)
    server = BatchServer(args.upstream, args.host, args.port, line_delay_s=args.line_delay_s)
    print(f"Batch API at {server.base_url}, executing against {server.upstream}", flush=True)
    try:
        server.httpd.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
