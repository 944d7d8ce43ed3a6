"""Shared bits of tokenfront.py and faultproxy.py (stdlib only).

- Upstream: one-shot requests to the upstream registry (http, or https with a CA file).
- Handler: a keep-alive HTTP/1.1 BaseHTTPRequestHandler with helpers to read request bodies
  (Content-Length or chunked) and to send complete responses.
- serve(): binds 127.x.y.z:0, writes the chosen port to a file, and runs a watchdog that ends
  the process when the parent test shell is gone or the lifetime is over (bounded life).
- Rules: the fault rules file of faultproxy.py, pkgserver.py and netproxy.py, re-read on every
  request; Gate: requests held until enough wait together.
"""
import base64
import http.client
import http.server
import json
import os
import re
import ssl
import sys
import threading
import time

HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
              "trailer", "transfer-encoding", "upgrade", "content-length", "date", "server"}


def log_line(path, line, lock=threading.Lock()):
    """Append one line to a log file (created if absent), flushed at once."""
    with lock:
        with open(path, "a", encoding="utf-8") as f:
            f.write(line.rstrip("\n") + "\n")


def basic_header(creds):
    return "Basic " + base64.b64encode(creds.encode()).decode()


def distribution_error(code, message, detail=None):
    """A body shaped like distribution's errors."""
    return json.dumps({"errors": [{"code": code, "message": message, "detail": detail}]}).encode()


class Upstream:
    def __init__(self, hostport, ca=None, creds=None, timeout=30):
        self.hostport = hostport
        self.creds = creds
        self.timeout = timeout
        self.ctx = None
        if ca:
            self.ctx = ssl.create_default_context(cafile=ca)

    def request(self, method, path, headers=None, body=None):
        """Returns (status, [(name, value)...], body bytes). HEAD gives an empty body."""
        if self.ctx:
            conn = http.client.HTTPSConnection(self.hostport, timeout=self.timeout, context=self.ctx)
        else:
            conn = http.client.HTTPConnection(self.hostport, timeout=self.timeout)
        try:
            hdrs = dict(headers or {})
            if self.creds and not any(k.lower() == "authorization" for k in hdrs):
                hdrs["Authorization"] = basic_header(self.creds)
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, resp.getheaders(), data
        finally:
            conn.close()


def pass_headers(headers):
    """Upstream response headers worth forwarding (end-to-end ones)."""
    return [(k, v) for k, v in headers if k.lower() not in HOP_BY_HOP]


def forward_headers(msg, only=None):
    """Request headers to forward as a dict: hop-by-hop ones dropped (or just the names in
    `only`), repeated headers (Go sends one Accept line per media type) joined with ", "."""
    out = {}
    for k in dict.fromkeys(msg.keys()):
        low = k.lower()
        if (only is not None and low not in only) or (only is None and low in HOP_BY_HOP):
            continue
        out[k] = ", ".join(msg.get_all(k))
    return out


def header_value(headers, name):
    for k, v in headers:
        if k.lower() == name.lower():
            return v
    return None


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "regtest"
    sys_version = ""
    timeout = 60  # an idle or stuck client connection is dropped after this

    def log_message(self, fmt, *args):  # python's own messages go to stderr (a log file)
        sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))

    def read_body(self):
        """The request body (Content-Length or chunked), b"" when there is none."""
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():  # trailers
                        pass
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def send_all(self, status, headers, body=b"", head_length=None):
        """A complete response. For HEAD, body is not sent; Content-Length is head_length
        (the upstream's) if given, else len(body)."""
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        if self.command == "HEAD" and head_length is not None:
            self.send_header("Content-Length", str(head_length))
        else:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)
        self.wfile.flush()


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64  # a client opening many connections at once is not refused


class Gate:
    """Holds callers of wait() until `count` of them wait together (then all go on, True),
    or until `timeout` seconds passed (that caller goes on alone, False)."""

    def __init__(self):
        self.cv = threading.Condition()
        self.waiting = 0
        self.generation = 0

    def wait(self, count, timeout):
        with self.cv:
            gen = self.generation
            self.waiting += 1
            if self.waiting >= count:
                self.generation += 1
                self.waiting = 0
                self.cv.notify_all()
                return True
            if self.cv.wait_for(lambda: self.generation != gen, timeout):
                return True
            self.waiting -= 1
            return False


def bind(addr, handler):
    return Server((addr, 0), handler)


def write_file_atomic(path, text):
    tmp = path + ".tmp.%d" % os.getpid()
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def start_watchdog(parent_pid, max_seconds):
    """Ends the process (os._exit) when parent_pid is gone or after max_seconds."""
    deadline = time.monotonic() + max_seconds

    def watch():
        while time.monotonic() < deadline:
            if parent_pid:
                try:
                    os.kill(parent_pid, 0)
                except ProcessLookupError:
                    os._exit(0)
                except PermissionError:
                    pass
            time.sleep(0.5)
        sys.stderr.write("watchdog: lifetime of %ss over, exiting\n" % max_seconds)
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


def add_common_args(ap):
    ap.add_argument("--upstream", required=True, help="HOST:PORT of the upstream registry")
    ap.add_argument("--upstream-ca", help="CA file: talk https to the upstream")
    ap.add_argument("--port-file", required=True, help="written (HOST:PORT lines) once listening")
    ap.add_argument("--log", required=True, help="request log (one line per request)")
    ap.add_argument("--parent-pid", type=int, default=0, help="exit when this process is gone")
    ap.add_argument("--max-seconds", type=float, default=900, help="exit after this long")


def serve_forever(servers):
    """Serve several servers (one thread each) until the watchdog ends the process."""
    for s in servers[1:]:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    servers[0].serve_forever()



class Rules:
    """A JSON rules file, {"rules": [RULE, ...]} or [RULE, ...], re-read on every request. pick()
    returns the first rule that matches and still has uses left, and its action (the "action"
    field; "status" when only "status" is given; else "pass"). A rule matches on "method"
    (default: any, or GET for the actions in body_actions), "match" (a substring of the path with
    query) and "regex" (re.search on it); "times" bounds how often it fires (drop_once: 1).
    Counters start afresh whenever the file is rewritten."""

    def __init__(self, path, body_actions=()):
        self.path = path
        self.body_actions = set(body_actions)
        self.lock = threading.Lock()
        self.used = {}  # (inode, mtime_ns, size, index) -> times fired

    def pick(self, method, path):
        try:
            st = os.stat(self.path)
            with open(self.path) as f:
                data = json.load(f)
        except FileNotFoundError:
            return None, "pass"
        except ValueError as e:
            sys.stderr.write("rules: bad rules file: %s\n" % e)
            return None, "pass"
        rules = data.get("rules", []) if isinstance(data, dict) else data
        for i, r in enumerate(rules):
            action = r.get("action") or ("status" if "status" in r else "pass")
            want = r.get("method") or ("GET" if action in self.body_actions else None)
            if want and want.upper() != method:
                continue
            if "match" in r and r["match"] not in path:
                continue
            if "regex" in r and not re.search(r["regex"], path):
                continue
            times = r.get("times", 1 if action == "drop_once" else None)
            key = (st.st_ino, st.st_mtime_ns, st.st_size, i)
            with self.lock:
                n = self.used.get(key, 0)
                if times is not None and n >= times:
                    continue
                self.used[key] = n + 1
            return r, action
        return None, "pass"
