#!/usr/bin/env python3
"""One-shot AWS Lambda Runtime API emulator (test fixture for ocilambda).

Listens on 127.0.0.1 (port chosen by the kernel, written to --port-file) and hands
exactly ONE event (--event, a JSON string, default {}) to the first
GET /2018-06-01/runtime/invocation/next.  Later /next requests block until the
server exits.  The first of

  POST /2018-06-01/runtime/invocation/<id>/response  -> body written to --out
  POST /2018-06-01/runtime/invocation/<id>/error     -> "ERROR " + body
  POST /2018-06-01/runtime/init/error                -> "INIT_ERROR " + body

ends the server.  Exit status: 0 response, 1 function/init error, 2 timeout
(--timeout seconds, default 120), 3 usage error.  Standard library only.
"""

import argparse
import http.server
import json
import os
import sys
import threading
import time
import uuid

API = "/2018-06-01"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port-file", required=True, help="write the chosen port here")
    ap.add_argument("--out", required=True, help="write the response/error body here")
    ap.add_argument("--event", default="{}", help="event JSON (default {})")
    ap.add_argument("--timeout", type=float, default=120.0, help="hard timeout in seconds")
    ap.add_argument("--function-name", default="function")
    args = ap.parse_args()
    try:
        json.loads(args.event)
    except ValueError as exc:
        sys.stderr.write("lambda-emulator: --event is not JSON: %s\n" % exc)
        return 3

    event = args.event.encode("utf-8")
    request_id = str(uuid.uuid4())
    lock = threading.Lock()
    handed_out = [False]
    done = threading.Event()
    result = {"status": 2}
    deadline_ms = int((time.time() + args.timeout) * 1000)

    def finish(prefix, body, status):
        with lock:
            if done.is_set():
                return False
            tmp = args.out + ".tmp"
            with open(tmp, "wb") as f:
                f.write(prefix.encode("ascii") + body)
            os.replace(tmp, args.out)
            result["status"] = status
            done.set()
            return True

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "lambda-emulator/1"

        def log_message(self, fmt, *a):  # quiet; errors still go to stderr
            if os.environ.get("LAMBDA_EMULATOR_VERBOSE"):
                sys.stderr.write("lambda-emulator: " + (fmt % a) + "\n")

        def _reply(self, code, body=b"", headers=None):
            self.send_response(code)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()

        def _body(self):
            n = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(n) if n else b""

        def do_GET(self):
            if self.path != API + "/runtime/invocation/next":
                return self._reply(404, b'{"errorMessage":"not found"}')
            with lock:
                first = not handed_out[0]
                handed_out[0] = True
            if not first:
                # only one invocation: park this request, unanswered, until the
                # emulator exits (the client then sees the connection drop)
                threading.Event().wait(args.timeout + 60)
                self.close_connection = True
                return
            self._reply(200, event, {
                "Lambda-Runtime-Aws-Request-Id": request_id,
                "Lambda-Runtime-Deadline-Ms": str(deadline_ms),
                "Lambda-Runtime-Invoked-Function-Arn":
                    "arn:aws:lambda:us-east-1:012345678912:function:" + args.function_name,
                "Lambda-Runtime-Trace-Id":
                    "Root=1-%08x-%s;Parent=%s;Sampled=0" % (
                        int(time.time()), uuid.uuid4().hex[:24], uuid.uuid4().hex[:16]),
            })

        def do_POST(self):
            body = self._body()
            p = self.path
            if p == API + "/runtime/init/error":
                finish("INIT_ERROR ", body, 1)
                return self._reply(202, b'{"status":"OK"}')
            base = API + "/runtime/invocation/"
            if p.startswith(base):
                rid, _, kind = p[len(base):].partition("/")
                if rid != request_id or kind not in ("response", "error"):
                    return self._reply(400, b'{"errorMessage":"unknown request id or path"}')
                if kind == "response":
                    finish("", body, 0)
                else:
                    finish("ERROR ", body, 1)
                return self._reply(202, b'{"status":"OK"}')
            return self._reply(404, b'{"errorMessage":"not found"}')

    class Server(http.server.ThreadingHTTPServer):
        daemon_threads = True
        allow_reuse_address = True

    srv = Server(("127.0.0.1", 0), Handler)
    port = srv.server_address[1]
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % port)
    os.replace(tmp, args.port_file)

    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    t.start()
    if not done.wait(args.timeout):
        sys.stderr.write("lambda-emulator: no result after %gs, giving up\n" % args.timeout)
    else:
        time.sleep(0.2)  # let the 202 reach the client
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(result["status"])  # do not wait for parked /next requests


if __name__ == "__main__":
    sys.exit(main())
