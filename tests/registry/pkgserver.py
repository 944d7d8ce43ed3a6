#!/usr/bin/python3
"""pkgserver.py: a conda channel (any directory of files) over http or https, that misbehaves
on request, for the package download tests of ocilambda (stdlib only).

GET and HEAD of /PATH serve ROOT/PATH (no "..", no symlinks out of ROOT), with Range
("bytes=N-" and "bytes=N-M": 206 and Content-Range; past the end: 416); a missing file gets 404.
With --auth USER:PASS every request needs those Basic credentials (else 401 with
WWW-Authenticate: Basic realm="pkgserver").

Before each request the rules file (--rules) is read again, as faultproxy.py does (see
regcommon.Rules: match/regex/method/times). Actions:
  pass              serve normally
  status            answer "status" (e.g. 404, 503) with a short text body; "retry_after"
                    seconds -> Retry-After
  drop | drop_once  the full Content-Length, "fraction" (default 0.5) of the body, then close
  corrupt           the body with its middle byte flipped, same length
  endless           200 and bytes without end (chunked, no Content-Length; for at most
                    "seconds", default 60), or with "length" announced as Content-Length
  slow              sleep "delay" seconds (default 2) before answering
  throttle          send the body at "rate" bytes/s (default 100000) on this connection
  gate              hold the request until "count" (default 2) requests wait at the gate, or
                    "timeout" seconds (default 20) passed; then serve it (logged as gate or
                    gate-timeout)
  redirect          answer "code" (default 302) with Location "location", in which {path}
                    is replaced by the request's path
Every action but status/redirect/endless can take "throttle": RATE as well.

Log (--log), one line per event, flushed at once:
  BEGIN id=N t=T METHOD PATH                                   when a request arrives
  METHOD PATH STATUS range=R action=A auth=X bytes=B t=T id=N  before the last bytes are sent
X is none, basic (the right credentials), wrong or other; T the server's monotonic clock in
seconds. A request is in flight from its
BEGIN line to its end line, and the end line comes before the client can have the whole
answer, so counting the lines between never counts more transfers at once than the client
really had.
"""
import argparse
import os
import socket
import ssl
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(__file__))
import regcommon as rc  # noqa: E402

BODY_ACTIONS = {"drop", "drop_once", "corrupt", "endless", "throttle", "gate"}
MAX_SLEEP = 60
CHUNK = 65536


def make_handler(a, rules, gate, counter):
    root = os.path.realpath(a.root)
    want_auth = rc.basic_header(a.auth) if a.auth else None

    class Pkg(rc.Handler):
        server_version = "pkgserver"

        def auth_kind(self):
            v = self.headers.get("Authorization")
            if v is None:
                return "none"
            if want_auth and v == want_auth:
                return "basic"
            return "wrong" if v.startswith("Basic ") else "other"

        def end_line(self, status, action, nbytes):
            rc.log_line(a.log, "%s %s %d range=%s action=%s auth=%s bytes=%d t=%.3f id=%d" % (
                self.command, self.path, status, self.headers.get("Range") or "-", action,
                self.auth_kind(), nbytes, time.monotonic(), self.req_id))

        def simple(self, status, body, action, headers=()):
            self.end_line(status, action, len(body))
            self.send_all(status, [("Content-Type", "text/plain")] + list(headers), body)

        def handle_any(self):
            with counter["lock"]:
                counter["n"] += 1
                self.req_id = counter["n"]
            rc.log_line(a.log, "BEGIN id=%d t=%.3f %s %s" % (self.req_id, time.monotonic(),
                                                              self.command, self.path))
            self.read_body()
            rule, action = rules.pick(self.command, self.path)
            rule = rule or {}
            if want_auth and self.auth_kind() != "basic":
                return self.simple(401, b"authentication required\n", action,
                                   [("WWW-Authenticate", 'Basic realm="pkgserver"')])
            if action == "status":
                hdrs = []
                if "retry_after" in rule:
                    hdrs.append(("Retry-After", str(rule["retry_after"])))
                return self.simple(int(rule["status"]), b"pkgserver: injected status\n",
                                   action, hdrs)
            if action == "redirect":
                loc = rule["location"].replace("{path}", self.path)
                return self.simple(int(rule.get("code", 302)), b"", action, [("Location", loc)])
            if action == "slow":
                time.sleep(min(float(rule.get("delay", 2)), MAX_SLEEP))
            if action == "gate":
                if not gate.wait(int(rule.get("count", 2)), min(float(rule.get("timeout", 20)), MAX_SLEEP)):
                    action = "gate-timeout"
            path = self.path.split("?", 1)[0]
            full = os.path.realpath(os.path.join(root, path.lstrip("/")))
            if not (full == root or full.startswith(root + os.sep)) or not os.path.isfile(full):
                return self.simple(404, b"not found\n", action)
            if action == "endless":
                return self.send_endless(rule)
            with open(full, "rb") as f:
                body = f.read()
            if action == "corrupt" and body:
                b = bytearray(body)
                b[len(b) // 2] ^= 0xFF
                body = bytes(b)
            status, hdrs = 200, [("Content-Type", "application/octet-stream"), ("Accept-Ranges", "bytes")]
            rng = self.headers.get("Range")
            if rng and rng.startswith("bytes="):
                try:
                    first, _, last = rng[6:].partition("-")
                    first = int(first)
                    last = int(last) if last else len(body) - 1
                except ValueError:
                    return self.simple(400, b"bad range\n", action)
                if first >= len(body):
                    return self.simple(416, b"range not satisfiable\n", action,
                                       [("Content-Range", "bytes */%d" % len(body))])
                last = min(last, len(body) - 1)
                hdrs.append(("Content-Range", "bytes %d-%d/%d" % (first, last, len(body))))
                status, body = 206, body[first:last + 1]
            rate = float(rule.get("rate", 100000)) if action == "throttle" else float(rule.get("throttle", 0))
            self.send_body(status, hdrs, body, action, rule, rate)

        def send_body(self, status, hdrs, body, action, rule, rate):
            self.send_response(status)
            for k, v in hdrs:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command == "HEAD":
                self.end_line(status, action, 0)
                self.wfile.flush()
                return
            cut = len(body)
            if action in ("drop", "drop_once"):
                cut = int(len(body) * float(rule.get("fraction", 0.5)))
            step = CHUNK if rate <= 0 else max(1, int(rate / 10))
            sent = 0
            try:
                while sent < cut:
                    n = min(step, cut - sent)
                    if sent + n >= len(body):
                        self.end_line(status, action, len(body))
                    self.wfile.write(body[sent:sent + n])
                    self.wfile.flush()
                    sent += n
                    if rate > 0 and sent < cut:
                        time.sleep(n / rate)
            except OSError:
                self.end_line(status, action + "-client-gone", sent)
                self.close_connection = True
                return
            if cut < len(body):
                self.end_line(status, action, sent)
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            elif len(body) == 0:
                self.end_line(status, action, 0)

        def send_endless(self, rule):
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            if "length" in rule:
                self.send_header("Content-Length", str(int(rule["length"])))
            else:
                self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.end_line(200, "endless", 0)
            deadline = time.monotonic() + min(float(rule.get("seconds", MAX_SLEEP)), MAX_SLEEP)
            chunk = b"\0" * CHUNK
            try:
                while time.monotonic() < deadline:
                    if "length" in rule:
                        self.wfile.write(chunk)
                    else:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.flush()
            except OSError:
                pass  # the client gave up, as it should
            self.close_connection = True

        do_GET = do_HEAD = handle_any

    return Pkg


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", required=True, help="directory to serve")
    ap.add_argument("--bind", default="127.0.0.1", help="address (127.x.y.z)")
    ap.add_argument("--rules", required=True, help="JSON rules file, re-read on every request")
    ap.add_argument("--auth", help="USER:PASS every request must carry (Basic)")
    ap.add_argument("--tls-cert", help="certificate chain (PEM): serve https")
    ap.add_argument("--tls-key", help="its private key (PEM)")
    ap.add_argument("--port-file", required=True, help="written (HOST:PORT) once listening")
    ap.add_argument("--log", required=True, help="request log")
    ap.add_argument("--parent-pid", type=int, default=0, help="exit when this process is gone")
    ap.add_argument("--max-seconds", type=float, default=900, help="exit after this long")
    a = ap.parse_args()
    open(a.log, "a").close()
    if not os.path.exists(a.rules):
        rc.write_file_atomic(a.rules, '{"rules": []}\n')
    counter = {"n": 0, "lock": threading.Lock()}
    handler = make_handler(a, rc.Rules(a.rules, BODY_ACTIONS), rc.Gate(), counter)
    srv = rc.bind(a.bind, handler)
    if a.tls_cert:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(a.tls_cert, a.tls_key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    rc.start_watchdog(a.parent_pid, a.max_seconds)
    rc.write_file_atomic(a.port_file, "%s:%d\n" % (a.bind, srv.server_address[1]))
    rc.serve_forever([srv])


if __name__ == "__main__":
    main()
