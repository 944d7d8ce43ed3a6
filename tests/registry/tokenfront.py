#!/usr/bin/python3
"""tokenfront.py: a public.ecr.aws-like bearer-token front for a test registry.

Main listener (127.0.0.1:<port>):
  /v2/...       without a valid "Authorization: Bearer <token>": 401 +
                WWW-Authenticate: Bearer realm="http://127.0.0.1:<port>/token/",
                service="<service>",scope="repository:<repo>:pull"  (no scope for /v2/ itself
                unless --base-scope; ,error="invalid_token"|"insufficient_scope" when a token
                was sent but is unknown/expired or lacks the repository)
  /token/       GET ?service=...&scope=...  ->  {"token", "access_token", "expires_in", "issued_at"}
                (Basic credentials required with --token-creds; 401 otherwise; 400 for a wrong
                service or a malformed scope)
  with a good token: GET/HEAD proxied to the upstream byte for byte (status, Content-Type,
  Docker-Content-Digest, ...), except GETs of blobs the upstream has (/v2/<repo>/blobs/<digest>),
  which answer 307 with
  Location: http://127.0.0.2:<port2>/blob/<repo>/<digest>?X-Amz-...&X-Amz-Signature=...
  Other methods: 403 DENIED (the token grants pull only).
Blob listener (127.0.0.2:<port2>, another host name for the client): no auth; serves the
  blob (fetched from the upstream, Range passed through). Like S3 with a presigned URL it
  answers 400 when an Authorization header arrives (unless --blob-allow-auth) and 403 for a
  bad signature. Every request is logged as one JSON line with all its headers (--blob-log).
Main log lines: METHOD PATH STATUS auth=none|bearer|basic|other range=<Range or ->
"""
import argparse
import hashlib
import hmac
import json
import re
import secrets
import sys
import threading
import time
import urllib.parse

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, __import__("os").path.dirname(__file__))
import regcommon as rc  # noqa: E402

REPO_RE = re.compile(r"^/v2/(.+)/(manifests/[^/]+|blobs/uploads/.*|blobs/[^/]+|tags/list)$")
BLOB_RE = re.compile(r"^/v2/(.+)/blobs/(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})$")
SCOPE_RE = re.compile(r"^repository:([a-z0-9]+(?:[._/-][a-z0-9]+)*):([a-z*]+(?:,[a-z*]+)*)$")


def auth_kind(headers):
    v = headers.get("Authorization")
    if not v:
        return "none"
    scheme = v.split(" ", 1)[0].lower()
    return scheme if scheme in ("bearer", "basic") else "other"


class State:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.tokens = {}  # token -> (set of repos with pull, expiry monotonic time)
        self.secret = secrets.token_bytes(16)
        self.upstream = rc.Upstream(args.upstream, args.upstream_ca, args.upstream_creds)
        self.main_base = None  # http://127.0.0.1:port
        self.blob_base = None  # http://127.0.0.2:port

    def sign(self, repo, digest):
        return hmac.new(self.secret, ("%s@%s" % (repo, digest)).encode(), hashlib.sha256).hexdigest()

    def issue(self, repos):
        tok = "tf." + secrets.token_urlsafe(24)
        with self.lock:
            self.tokens[tok] = (set(repos), time.monotonic() + self.args.token_ttl)
        return tok

    def check(self, header, repo):
        """'ok', 'missing', 'invalid_token' or 'insufficient_scope'."""
        if not header or not header.lower().startswith("bearer "):
            return "missing"
        with self.lock:
            entry = self.tokens.get(header[7:].strip())
        if not entry or entry[1] < time.monotonic():
            return "invalid_token"
        if repo is not None and repo not in entry[0]:
            return "insufficient_scope"
        return "ok"


def make_main_handler(st):
    a = st.args

    class Main(rc.Handler):
        def finish_log(self, status):
            rc.log_line(a.log, "%s %s %d auth=%s range=%s" % (
                self.command, self.path, status, auth_kind(self.headers),
                self.headers.get("Range") or "-"))

        def reply(self, status, headers, body=b"", head_length=None):
            self.finish_log(status)
            self.send_all(status, headers, body, head_length)

        def challenge(self, repo, actions, error=None):
            params = 'realm="%s/token/",service="%s"' % (st.main_base, a.service)
            if repo is not None:
                params += ',scope="repository:%s:%s"' % (repo, actions)
                detail = [{"Type": "repository", "Class": "", "Name": repo, "Action": actions}]
            elif a.base_scope:
                params += ',scope="%s"' % a.base_scope
                detail = None
            else:
                detail = None
            if error:
                params += ',error="%s"' % error
            self.reply(401, [("Content-Type", "application/json; charset=utf-8"),
                             ("Docker-Distribution-Api-Version", "registry/2.0"),
                             ("WWW-Authenticate", "Bearer " + params)],
                       rc.distribution_error("UNAUTHORIZED", "authentication required", detail))

        def do_token(self):
            u = urllib.parse.urlsplit(self.path)
            q = urllib.parse.parse_qs(u.query)
            if a.token_creds:
                if self.headers.get("Authorization") != rc.basic_header(a.token_creds):
                    return self.reply(401, [("Content-Type", "application/json"),
                                            ("WWW-Authenticate", 'Basic realm="%s"' % a.service)],
                                      json.dumps({"errors": [{"code": "UNAUTHORIZED",
                                                  "message": "bad or missing credentials"}]}).encode())
            if q.get("service", [None])[0] != a.service:
                return self.reply(400, [("Content-Type", "application/json")],
                                  json.dumps({"errors": [{"code": "INVALID_SERVICE", "message":
                                              "service must be %s" % a.service}]}).encode())
            repos = []
            for scope in " ".join(q.get("scope", [])).split():
                if a.base_scope and scope == a.base_scope:
                    continue
                m = SCOPE_RE.match(scope)
                if not m:
                    return self.reply(400, [("Content-Type", "application/json")],
                                      json.dumps({"errors": [{"code": "INVALID_SCOPE",
                                                  "message": "bad scope %r" % scope}]}).encode())
                if "pull" in m.group(2).split(",") or "*" in m.group(2).split(","):
                    repos.append(m.group(1))  # pull is granted; push never is
            tok = st.issue(repos)
            body = json.dumps({"token": tok, "access_token": tok, "expires_in": int(a.token_ttl),
                               "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
            self.reply(200, [("Content-Type", "application/json")], body.encode())

        def handle_any(self):
            path = urllib.parse.urlsplit(self.path).path
            if path in ("/token", "/token/"):
                if self.command != "GET":
                    self.read_body()
                    return self.reply(405, [("Allow", "GET")], b"")
                return self.do_token()
            self.read_body()
            if path in ("/v2", "/v2/"):
                res = st.check(self.headers.get("Authorization"), None)
                if res != "ok":
                    return self.challenge(None, None, None if res == "missing" else res)
                return self.proxy()
            m = REPO_RE.match(path)
            if not m:
                return self.reply(404, [("Content-Type", "application/json; charset=utf-8")],
                                  rc.distribution_error("NOT_FOUND", "not found"))
            repo = m.group(1)
            readonly = self.command in ("GET", "HEAD")
            res = st.check(self.headers.get("Authorization"), repo)
            if res != "ok":
                return self.challenge(repo, "pull" if readonly else "pull,push",
                                      None if res == "missing" else res)
            if not readonly:
                return self.reply(403, [("Content-Type", "application/json; charset=utf-8")],
                                  rc.distribution_error("DENIED", "requested access to the resource is denied"))
            b = BLOB_RE.match(path)
            if b and self.command == "GET" and self.upstream_has(path):
                digest = b.group(2)
                q = urllib.parse.urlencode([
                    ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"), ("X-Amz-Expires", "600"),
                    ("X-Amz-SignedHeaders", "host"), ("X-Amz-Signature", st.sign(repo, digest))])
                loc = "%s/blob/%s/%s?%s" % (st.blob_base, repo, digest, q)
                return self.reply(307, [("Location", loc),
                                        ("Docker-Distribution-Api-Version", "registry/2.0")])
            return self.proxy()

        def upstream_has(self, path):
            """Unknown blobs are not redirected: the upstream's BLOB_UNKNOWN is proxied."""
            try:
                return st.upstream.request("HEAD", path)[0] == 200
            except OSError:
                return False

        def proxy(self):
            hdrs = rc.forward_headers(self.headers, ("accept", "range", "if-none-match", "user-agent"))
            try:
                status, headers, body = st.upstream.request(self.command, self.path, hdrs)
            except OSError as e:
                return self.reply(502, [("Content-Type", "text/plain")], ("upstream: %s\n" % e).encode())
            self.reply(status, rc.pass_headers(headers), body,
                       head_length=rc.header_value(headers, "Content-Length"))

        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any

    return Main


def make_blob_handler(st):
    a = st.args

    class Blob(rc.Handler):
        def record(self, status):
            rc.log_line(a.blob_log, json.dumps({
                "method": self.command, "path": self.path, "status": status,
                "auth_present": "Authorization" in self.headers,
                "headers": {k: ", ".join(self.headers.get_all(k)) for k in dict.fromkeys(self.headers.keys())}}))

        def s3_error(self, status, code, message):
            self.record(status)
            body = ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>%s</Code>'
                    '<Message>%s</Message></Error>' % (code, message)).encode()
            self.send_all(status, [("Content-Type", "application/xml")], body)

        def handle_any(self):
            u = urllib.parse.urlsplit(self.path)
            q = urllib.parse.parse_qs(u.query)
            m = re.match(r"^/blob/(.+)/(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})$", u.path)
            if self.command not in ("GET", "HEAD") or not m:
                self.read_body()
                return self.s3_error(404 if m is None else 405, "NoSuchKey", "not a blob URL")
            repo, digest = m.groups()
            if "Authorization" in self.headers and not a.blob_allow_auth:
                return self.s3_error(400, "InvalidArgument", "Only one auth mechanism allowed; "
                                     "only the X-Amz-Algorithm query parameter, Signature query "
                                     "string parameter or the Authorization header should be specified")
            if q.get("X-Amz-Signature", [None])[0] != st.sign(repo, digest):
                return self.s3_error(403, "SignatureDoesNotMatch", "bad signature")
            hdrs = {}
            if self.headers.get("Range"):
                hdrs["Range"] = self.headers["Range"]
            try:
                status, headers, body = st.upstream.request(self.command, "/v2/%s/blobs/%s" % (repo, digest), hdrs)
            except OSError as e:
                return self.s3_error(502, "InternalError", "upstream: %s" % e)
            if status not in (200, 206):
                return self.s3_error(404 if status == 404 else 502, "NoSuchKey", "upstream said %d" % status)
            out = [("Content-Type", "application/octet-stream"), ("Accept-Ranges", "bytes"),
                   ("ETag", '"%s"' % digest.split(":", 1)[1][:32])]
            cr = rc.header_value(headers, "Content-Range")
            if cr:
                out.append(("Content-Range", cr))
            self.record(status)
            self.send_all(status, out, body, head_length=rc.header_value(headers, "Content-Length"))

        do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = handle_any

    return Blob


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    rc.add_common_args(ap)
    ap.add_argument("--upstream-creds", help="USER:PASS sent (Basic) to the upstream")
    ap.add_argument("--service", required=True, help='service name, e.g. "NAME.test"')
    ap.add_argument("--blob-log", required=True, help="JSON lines, one per blob-host request")
    ap.add_argument("--blob-addr", default="127.0.0.2")
    ap.add_argument("--token-creds", help="USER:PASS required (Basic) on the token endpoint")
    ap.add_argument("--token-ttl", type=float, default=300, help="token lifetime, seconds")
    ap.add_argument("--base-scope", help='scope in the /v2/ challenge, e.g. "aws" as public.ecr.aws')
    ap.add_argument("--blob-allow-auth", action="store_true",
                    help="serve blobs even when an Authorization header arrives (still logged)")
    a = ap.parse_args()
    for f in (a.log, a.blob_log):
        open(f, "a").close()
    st = State(a)
    main_srv = rc.bind("127.0.0.1", make_main_handler(st))
    blob_srv = rc.bind(a.blob_addr, make_blob_handler(st))
    st.main_base = "http://127.0.0.1:%d" % main_srv.server_address[1]
    st.blob_base = "http://%s:%d" % (a.blob_addr, blob_srv.server_address[1])
    rc.start_watchdog(a.parent_pid, a.max_seconds)
    rc.write_file_atomic(a.port_file, "127.0.0.1:%d\n%s:%d\n" % (
        main_srv.server_address[1], a.blob_addr, blob_srv.server_address[1]))
    rc.serve_forever([main_srv, blob_srv])


if __name__ == "__main__":
    main()
