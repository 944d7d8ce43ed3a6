#!/usr/bin/python3
"""faultproxy.py: a plain-http proxy to a test registry that misbehaves on request.

Listens on 127.0.0.1:<port>; forwards every request (method, path, query, headers
including Host, Range and Authorization, body) to the upstream and the answer back
(WWW-Authenticate, Location, Docker-Content-Digest, ... unchanged). Before each request it
re-reads the rules file (--rules), JSON: {"rules": [RULE, ...]} or just [RULE, ...]. The
first rule that matches and still has uses left applies; otherwise the request passes.

RULE fields:
  match    substring of the request path (with query)      regex   re.search on it instead
  method   only this method (default: any; GET only for corrupt/drop*/stall/oversize_manifest)
  times    how many times the rule may fire (default unlimited; drop_once: 1). Counters start
           afresh whenever the rules file is rewritten.
  action   pass              forward untouched
           corrupt           upstream body with one byte (the middle one) flipped, same length
           drop | drop_once  status + headers (full Content-Length) + half the body (fraction),
                             then close the connection
           stall             like drop but sleeps "stall" seconds (default 5) at the half, then
                             sends the rest
           slow              sleep "delay" seconds (default 2) before answering normally
           bad_digest        forward, but with a wrong Docker-Content-Digest header
           oversize_manifest 200, valid JSON of "size" bytes (default 5 MiB), Content-Type
                             "content_type" (default OCI manifest), matching
                             Docker-Content-Digest; "chunked": true sends it chunked with no
                             Content-Length
           extra_bytes       forward, with "extra" (default 100) bytes appended to the body and
                             a Content-Length that matches the longer body
           wrong_length      forward, but announce Content-Length len(body) + "delta" (default
                             100; negative: fewer); a longer promise is cut short by closing
                             the connection, a shorter one sends the whole body and closes
           slowloris         status and headers at once, then the body one byte every
                             "interval" seconds (default 1), for at most 60 s
           status            (implied by a "status" field) answer "status" with a
                             distribution-style error body (or "body"), "retry_after" seconds
                             -> Retry-After header, extra "headers": {name: value}
Log lines (--log): METHOD PATH STATUS range=<Range or -> action=<action>
With --tls-cert/--tls-key the proxy speaks https (to the client; the upstream as given).
"""
import argparse
import hashlib
import os
import socket
import ssl
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(__file__))
import regcommon as rc  # noqa: E402

BODY_ACTIONS = {"corrupt", "drop", "drop_once", "stall", "oversize_manifest", "extra_bytes",
                "wrong_length", "slowloris"}
ERROR_CODES = {401: "UNAUTHORIZED", 403: "DENIED", 404: "NOT_FOUND", 429: "TOOMANYREQUESTS",
               500: "UNKNOWN", 502: "UNAVAILABLE", 503: "UNAVAILABLE", 504: "UNAVAILABLE"}
MAX_SLEEP = 60


def oversize_body(size):
    head = ('{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",'
            '"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:'
            + "0" * 64 + '","size":2},"layers":[],"annotations":{"padding":"')
    tail = '"}}'
    return (head + "x" * max(0, size - len(head) - len(tail)) + tail).encode()


def make_handler(a, rules, upstream):
    class Proxy(rc.Handler):
        def log_req(self, status, action):
            rc.log_line(a.log, "%s %s %d range=%s action=%s" % (
                self.command, self.path, status, self.headers.get("Range") or "-", action))

        def handle_any(self):
            body_in = self.read_body()
            rule, action = rules.pick(self.command, self.path)
            rule = rule or {}
            if action == "status":
                return self.answer_status(rule)
            if action == "oversize_manifest":
                return self.answer_oversize(rule)
            if action == "slow":
                time.sleep(min(float(rule.get("delay", 2)), MAX_SLEEP))
            hdrs = rc.forward_headers(self.headers)
            hdrs["X-Forwarded-Proto"] = "http"
            try:
                status, headers, body = upstream.request(self.command, self.path, hdrs, body_in or None)
            except OSError as e:
                self.log_req(502, "upstream-error")
                return self.send_all(502, [("Content-Type", "text/plain")], ("upstream: %s\n" % e).encode())
            out = rc.pass_headers(headers)
            head_length = rc.header_value(headers, "Content-Length")
            if action == "bad_digest":
                out = [(k, v) for k, v in out if k.lower() != "docker-content-digest"]
                out.append(("Docker-Content-Digest", "sha256:" + hashlib.sha256(b"bad").hexdigest()))
            if action == "corrupt" and body:
                b = bytearray(body)
                b[len(b) // 2] ^= 0xFF
                body = bytes(b)
            if action == "extra_bytes" and body:
                body = body + b"\0" * int(rule.get("extra", 100))
            self.log_req(status, action)
            if action in ("drop", "drop_once", "stall") and self.command != "HEAD":
                return self.send_partial(status, out, body, rule, action)
            if action == "wrong_length" and body:
                return self.send_wrong_length(status, out, body, int(rule.get("delta", 100)))
            if action == "slowloris" and body:
                return self.send_slowly(status, out, body, float(rule.get("interval", 1)))
            self.send_all(status, out, body, head_length=head_length)

        def send_wrong_length(self, status, headers, body, delta):
            self.send_response(status)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(max(0, len(body) + delta)))
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

        def send_slowly(self, status, headers, body, interval):
            self.send_response(status)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.flush()
            deadline = time.monotonic() + MAX_SLEEP
            try:
                for i in range(len(body)):
                    if time.monotonic() > deadline:
                        break
                    self.wfile.write(body[i:i + 1])
                    self.wfile.flush()
                    time.sleep(interval)
            except OSError:
                pass  # the client gave up, as it should
            self.close_connection = True

        def send_partial(self, status, headers, body, rule, action):
            self.send_response(status)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            cut = int(len(body) * float(rule.get("fraction", 0.5)))
            self.wfile.write(body[:cut])
            self.wfile.flush()
            if action == "stall":
                time.sleep(min(float(rule.get("stall", 5)), MAX_SLEEP))
                self.wfile.write(body[cut:])
                self.wfile.flush()
                return
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

        def answer_status(self, rule):
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
                                             "faultproxy: injected status %d" % code)
            self.log_req(code, "status")
            self.send_all(code, hdrs, body)

        def answer_oversize(self, rule):
            body = oversize_body(int(rule.get("size", 5 * 1024 * 1024)))
            hdrs = [("Content-Type", rule.get("content_type", "application/vnd.oci.image.manifest.v1+json")),
                    ("Docker-Content-Digest", "sha256:" + hashlib.sha256(body).hexdigest()),
                    ("Docker-Distribution-Api-Version", "registry/2.0")]
            self.log_req(200, "oversize_manifest")
            if not rule.get("chunked"):
                return self.send_all(200, hdrs, body)
            self.send_response(200)
            for k, v in hdrs:
                self.send_header(k, v)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            if self.command != "HEAD":
                for i in range(0, len(body), 65536):
                    chunk = body[i:i + 65536]
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any

    return Proxy


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    rc.add_common_args(ap)
    ap.add_argument("--rules", required=True, help="JSON rules file, re-read on every request")
    ap.add_argument("--tls-cert", help="certificate chain (PEM): serve https")
    ap.add_argument("--tls-key", help="its private key (PEM)")
    a = ap.parse_args()
    open(a.log, "a").close()
    if not os.path.exists(a.rules):
        rc.write_file_atomic(a.rules, '{"rules": []}\n')
    srv = rc.bind("127.0.0.1", make_handler(a, rc.Rules(a.rules, BODY_ACTIONS), rc.Upstream(a.upstream, a.upstream_ca)))
    if a.tls_cert:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(a.tls_cert, a.tls_key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    rc.start_watchdog(a.parent_pid, a.max_seconds)
    rc.write_file_atomic(a.port_file, "127.0.0.1:%d\n" % srv.server_address[1])
    rc.serve_forever([srv])


if __name__ == "__main__":
    main()
