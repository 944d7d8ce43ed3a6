#!/usr/bin/python3
"""netproxy.py: a slow, watchful network between a client and a test registry (stdlib only).

Listens on 127.0.0.1:<port>, plain http. Every client connection gets a connection of its own
to the upstream registry (made on its first request, kept while both stay open), so the
registry sees as many connections as the client opened. Requests and answers are streamed
both ways, never held whole: an upload reaches the registry while the client is still sending
it, and the log says when its first bytes did.

The network it plays:
  --rate BYTES     bytes per second per connection and direction (request bodies and answer
                   bodies; 0: no limit). A rule's "rate" overrides it for one request.
  --latency MS     added before each answer's first byte, and to each new connection (its
                   handshake), as a round trip over a long link costs.

Before each request the rules file (--rules) is read again, as faultproxy.py does
(regcommon.Rules: match/regex/method/times; counters start afresh when the file changes).
Actions (the first rule that matches and still has uses applies; none: pass):
  pass       forward (a "rate" applies; "headers", an object, are added to the registry's
             answer, as a registry that sends OCI-Chunk-Min-Length would)
  status     answer "status" without asking the registry (the request body is read and
             dropped first); "retry_after" seconds -> Retry-After; the body is a
             distribution-style error, or "body"
  drop       cut both connections once "fraction" (default 0.5) of the body went through: the
             request body for a request that has one (an upload), else the answer's body
  gate       hold the request until "count" (default 2) requests wait at the gate, or
             "timeout" seconds (default 20) passed (then logged as gate-timeout); then forward
  hold       hold the request until the file "release" exists (at most "timeout" seconds,
             default 60, then logged as hold-timeout); then forward. A HOLD line is logged
             when it starts waiting.

Log (--log), one line per event with T the server's monotonic clock (time.monotonic, the
clock of CLOCK_MONOTONIC), flushed at once:
  CONN open conn=C t=T                   a client connected
  CONN close conn=C t=T                  it went away (or was cut)
  BEGIN id=N t=T METHOD PATH             a request arrived (conn=C follows PATH)
  BODY id=N t=T bytes=B                  the first B bytes of its body went to the registry
  HOLD id=N t=T                          a hold rule started holding it
  METHOD PATH STATUS action=A in=I out=O t=T id=N
                                         the request is over, written before the last bytes
                                         of the answer go out (I request-body bytes taken, O
                                         answer-body bytes sent)
A request is in flight from its BEGIN line to its end line, and the end line comes before the
client can have the whole answer, so counting between them (lib.sh's netproxy_inflight) never
shows more transfers at once than the client had; netproxy_conns counts the CONN lines alike.
"""
import argparse
import http.client
import os
import socket
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(__file__))
import regcommon as rc  # noqa: E402

CHUNK = 65536
MAX_WAIT = 120
ERROR_CODES = {401: "UNAUTHORIZED", 403: "DENIED", 404: "NOT_FOUND", 405: "UNSUPPORTED",
               416: "BLOB_UPLOAD_INVALID", 429: "TOOMANYREQUESTS", 500: "UNKNOWN",
               502: "UNAVAILABLE", 503: "UNAVAILABLE", 504: "UNAVAILABLE"}
# Not forwarded as they came: the proxy frames both sides itself.
FRAMING = {"content-length", "transfer-encoding", "connection", "keep-alive", "te", "trailer",
           "upgrade", "proxy-connection", "proxy-authorization", "expect"}


class Cut(Exception):
    """The rule said to cut the connection here."""


class Pacer:
    """Sends at most rate bytes per second (0: no limit), in slices of a 50th of a second."""

    def __init__(self, rate):
        self.rate = float(rate)
        self.next = time.monotonic()

    def step(self):
        return CHUNK if self.rate <= 0 else max(1024, min(CHUNK, int(self.rate / 50)))

    def wait(self, n):
        if self.rate <= 0:
            return
        now = time.monotonic()
        if self.next > now:
            time.sleep(self.next - now)
        self.next = max(self.next, now) + n / self.rate


def make_handler(a, rules, gate, counters):
    class Net(rc.Handler):
        server_version = "netproxy"

        def setup(self):
            super().setup()
            with counters["lock"]:
                counters["conn"] += 1
                self.conn_id = counters["conn"]
            self.up = None
            rc.log_line(a.log, "CONN open conn=%d t=%.6f" % (self.conn_id, time.monotonic()))
            if a.latency > 0:
                time.sleep(a.latency / 1000.0)

        def finish(self):
            try:
                super().finish()
            finally:
                self.close_upstream()
                rc.log_line(a.log, "CONN close conn=%d t=%.6f" % (self.conn_id, time.monotonic()))

        def close_upstream(self):
            if self.up is not None:
                try:
                    self.up.close()
                except OSError:
                    pass
                self.up = None

        def upstream(self):
            if self.up is None:
                self.up = http.client.HTTPConnection(a.upstream, timeout=MAX_WAIT)
            return self.up

        def cut_client(self):
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

        def end_line(self, status, action):
            rc.log_line(a.log, "%s %s %d action=%s in=%d out=%d t=%.6f id=%d" % (
                self.command, self.path, status, action, self.n_in, self.n_out,
                time.monotonic(), self.req_id))

        # --- the request body, as it comes ---

        def body_pieces(self):
            """The request body's pieces (Content-Length or chunked), as they arrive."""
            te = (self.headers.get("Transfer-Encoding") or "").lower()
            if "chunked" in te:
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline().strip():  # trailers
                            pass
                        return
                    left = size
                    while left > 0:
                        piece = self.rfile.read(min(left, CHUNK))
                        if not piece:
                            raise ConnectionError("client closed mid-chunk")
                        left -= len(piece)
                        yield piece
                    self.rfile.readline()
                return
            left = int(self.headers.get("Content-Length") or 0)
            while left > 0:
                piece = self.rfile.read(min(left, CHUNK))
                if not piece:
                    raise ConnectionError("client closed mid-body")
                left -= len(piece)
                yield piece

        def has_body(self):
            te = (self.headers.get("Transfer-Encoding") or "").lower()
            return "chunked" in te or int(self.headers.get("Content-Length") or 0) > 0

        # --- one request ---

        def handle_any(self):
            with counters["lock"]:
                counters["req"] += 1
                self.req_id = counters["req"]
            self.n_in = self.n_out = 0
            rc.log_line(a.log, "BEGIN id=%d t=%.6f %s %s conn=%d" % (
                self.req_id, time.monotonic(), self.command, self.path, self.conn_id))
            rule, action = rules.pick(self.command, self.path)
            rule = rule or {}
            if action == "gate":
                if not gate.wait(int(rule.get("count", 2)), min(float(rule.get("timeout", 20)), MAX_WAIT)):
                    action = "gate-timeout"
            if action == "hold":
                rc.log_line(a.log, "HOLD id=%d t=%.6f" % (self.req_id, time.monotonic()))
                deadline = time.monotonic() + min(float(rule.get("timeout", 60)), MAX_WAIT)
                while not os.path.exists(rule.get("release", "")) and time.monotonic() < deadline:
                    time.sleep(0.02)
                if not os.path.exists(rule.get("release", "")):
                    action = "hold-timeout"
            if action == "status":
                return self.answer_status(rule)
            rate = float(rule.get("rate", a.rate))
            try:
                self.forward(rule, action, rate)
            except Cut:
                self.close_upstream()
                self.cut_client()
            except (OSError, http.client.HTTPException) as e:
                self.close_upstream()
                if self.n_out == 0 and not getattr(self, "answer_started", False):
                    try:
                        self.end_line(502, "upstream-error")
                        self.send_all(502, [("Content-Type", "text/plain")], ("upstream: %s\n" % e).encode())
                        return
                    except OSError:
                        pass
                self.cut_client()

        def forward(self, rule, action, rate):
            self.answer_started = False
            pace = Pacer(rate)
            up = self.upstream()
            up.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for k in dict.fromkeys(self.headers.keys()):
                if k.lower() in FRAMING:
                    continue
                for v in self.headers.get_all(k):
                    up.putheader(k, v)
            chunked = "chunked" in (self.headers.get("Transfer-Encoding") or "").lower()
            length = int(self.headers.get("Content-Length") or 0)
            if chunked:
                up.putheader("Transfer-Encoding", "chunked")
            elif self.has_body() or self.command in ("PUT", "PATCH", "POST"):
                up.putheader("Content-Length", str(length))
            up.endheaders()
            uploading = chunked or length > 0
            cut_at = None
            if action == "drop" and uploading:
                total = length if not chunked else int(rule.get("bytes", 1 << 20))
                cut_at = int(total * float(rule.get("fraction", 0.5)))
            for piece in self.body_pieces():
                if cut_at is not None and self.n_in + len(piece) >= cut_at:
                    piece = piece[:max(0, cut_at - self.n_in)]
                    self.send_up(up, piece, chunked, pace)
                    self.end_line(0, "drop")
                    raise Cut()
                self.send_up(up, piece, chunked, pace)
            if chunked:
                up.send(b"0\r\n\r\n")
            resp = up.getresponse()
            if a.latency > 0:
                time.sleep(a.latency / 1000.0)
            self.answer(resp, rule, action, pace, drop_answer=action == "drop" and not uploading)

        def send_up(self, up, piece, chunked, pace):
            if not piece:
                return
            step = pace.step()
            for i in range(0, len(piece), step):
                part = piece[i:i + step]
                pace.wait(len(part))
                if chunked:
                    up.send(b"%x\r\n%s\r\n" % (len(part), part))
                else:
                    up.send(part)
                first = self.n_in == 0
                self.n_in += len(part)
                if first:
                    rc.log_line(a.log, "BODY id=%d t=%.6f bytes=%d" % (
                        self.req_id, time.monotonic(), len(part)))

        def answer(self, resp, rule, action, pace, drop_answer):
            status = resp.status
            self.answer_started = True
            self.send_response(status)
            length = None
            for k, v in resp.getheaders():
                low = k.lower()
                if low == "content-length":
                    length = int(v)
                if low in FRAMING or low in ("date", "server"):
                    continue
                self.send_header(k, v)
            for k, v in rule.get("headers", {}).items():
                self.send_header(k, str(v))
            no_body = self.command == "HEAD" or status in (204, 304) or 100 <= status < 200
            if no_body:
                if length is not None:
                    self.send_header("Content-Length", str(length))
                self.end_headers()
                resp.read()
                self.end_line(status, action)
                self.wfile.flush()
                if resp.will_close:
                    self.close_upstream()
                return
            if length is not None:
                self.send_header("Content-Length", str(length))
            else:
                self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            cut_at = None
            if drop_answer and length:
                cut_at = int(length * float(rule.get("fraction", 0.5)))
            step = pace.step()
            ended = False
            while True:
                piece = resp.read(step)
                if not piece:
                    break
                if cut_at is not None and self.n_out + len(piece) >= cut_at:
                    piece = piece[:max(0, cut_at - self.n_out)]
                    pace.wait(len(piece))
                    self.wfile.write(piece)
                    self.n_out += len(piece)
                    self.wfile.flush()
                    self.end_line(status, "drop")
                    raise Cut()
                pace.wait(len(piece))
                last = length is not None and self.n_out + len(piece) >= length
                if last:
                    self.end_line(status, action)
                    ended = True
                if length is None:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                else:
                    self.wfile.write(piece)
                self.n_out += len(piece)
            if not ended:
                self.end_line(status, action)
            if length is None:
                self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
            if resp.will_close:
                self.close_upstream()

        def answer_status(self, rule):
            for piece in self.body_pieces():  # read it all: the connection stays usable
                self.n_in += len(piece)
            code = int(rule["status"])
            hdrs = [("Content-Type", "application/json; charset=utf-8"),
                    ("Docker-Distribution-Api-Version", "registry/2.0")]
            if "retry_after" in rule:
                hdrs.append(("Retry-After", str(rule["retry_after"])))
            hdrs += list(rule.get("headers", {}).items())
            if "body" in rule:
                body = rule["body"].encode()
            else:
                body = rc.distribution_error(ERROR_CODES.get(code, "UNKNOWN"),
                                             "netproxy: injected status %d" % code)
            if a.latency > 0:
                time.sleep(a.latency / 1000.0)
            self.end_line(code, "status")
            self.send_all(code, hdrs, body)

        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any

    return Net


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    rc.add_common_args(ap)
    ap.add_argument("--rules", required=True, help="JSON rules file, re-read on every request")
    ap.add_argument("--rate", type=float, default=0, help="bytes/s per connection and direction (0: no limit)")
    ap.add_argument("--latency", type=float, default=0, help="milliseconds added to each answer and connection")
    a = ap.parse_args()
    if a.upstream_ca:
        ap.error("netproxy talks plain http to its upstream")
    open(a.log, "a").close()
    if not os.path.exists(a.rules):
        rc.write_file_atomic(a.rules, '{"rules": []}\n')
    counters = {"conn": 0, "req": 0, "lock": threading.Lock()}
    handler = make_handler(a, rc.Rules(a.rules, ()), rc.Gate(), counters)
    srv = rc.bind("127.0.0.1", handler)
    srv.request_queue_size = 64
    rc.start_watchdog(a.parent_pid, a.max_seconds)
    rc.write_file_atomic(a.port_file, "127.0.0.1:%d\n" % srv.server_address[1])
    rc.serve_forever([srv])


if __name__ == "__main__":
    main()
