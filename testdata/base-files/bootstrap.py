"""Minimal AWS Lambda runtime client (test fixture for ocilambda).

Speaks the Lambda Runtime API (2018-06-01) with the standard library only, so it
runs on Python 3.8 as well as 3.11.  It stands in for awslambdaric in the
fixture base image built by testdata/mk-base.sh.

  _HANDLER=module.function        the handler to import and call
  AWS_LAMBDA_RUNTIME_API=host:port where the Runtime API listens
  LAMBDA_TASK_ROOT                 prepended to sys.path (PYTHONPATH is honoured
                                   by python itself)

If the handler cannot be imported the error is POSTed to /runtime/init/error
and the process exits 1.  When /invocation/next cannot be reached (the emulator
is gone) the process exits 0.
"""

import http.client
import importlib
import json
import logging
import os
import sys
import time
import traceback

API_VERSION = "2018-06-01"


def _log_setup():
    try:
        sys.stdout.reconfigure(line_buffering=True)
        sys.stderr.reconfigure(line_buffering=True)
    except (AttributeError, ValueError):
        pass
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter(
        "[%(levelname)s]\t%(asctime)s\t%(name)s\t%(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.INFO)


class RuntimeClient(object):
    def __init__(self, address):
        self.address = address

    def _request(self, method, path, body=None, headers=None, timeout=None):
        conn = http.client.HTTPConnection(self.address, timeout=timeout)
        try:
            conn.request(method, "/%s%s" % (API_VERSION, path), body=body,
                         headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            return resp, data
        finally:
            conn.close()

    def next(self):
        resp, data = self._request("GET", "/runtime/invocation/next")
        if resp.status != 200:
            raise RuntimeError("/invocation/next answered %d" % resp.status)
        return resp.headers, data

    def post(self, path, payload, headers=None):
        body = payload if isinstance(payload, bytes) else payload.encode("utf-8")
        hdrs = {"Content-Type": "application/json"}
        hdrs.update(headers or {})
        resp, _ = self._request("POST", path, body=body, headers=hdrs, timeout=30)
        if resp.status >= 300:
            sys.stderr.write("runtime API answered %d to POST %s\n" % (resp.status, path))
        return resp.status


def error_payload(exc, error_type=None):
    tb = traceback.extract_tb(exc.__traceback__)
    return json.dumps({
        "errorMessage": str(exc),
        "errorType": error_type or type(exc).__name__,
        "stackTrace": [line.rstrip("\n") for line in traceback.format_list(tb)],
    })


class LambdaContext(object):
    def __init__(self, headers):
        self.aws_request_id = headers.get("Lambda-Runtime-Aws-Request-Id", "")
        self.invoked_function_arn = headers.get("Lambda-Runtime-Invoked-Function-Arn", "")
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "function")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "3008")
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME",
                                             "/aws/lambda/" + self.function_name)
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "local")
        self.identity = None
        self.client_context = None
        try:
            self._deadline_ms = int(headers.get("Lambda-Runtime-Deadline-Ms", "0"))
        except ValueError:
            self._deadline_ms = 0
        trace_id = headers.get("Lambda-Runtime-Trace-Id")
        if trace_id:
            os.environ["_X_AMZN_TRACE_ID"] = trace_id

    def get_remaining_time_in_millis(self):
        return max(0, self._deadline_ms - int(time.time() * 1000))


class InitError(Exception):
    def __init__(self, error_type, exc):
        Exception.__init__(self, str(exc))
        self.error_type = error_type
        self.exc = exc


def load_handler(spec):
    if not spec or "." not in spec:
        raise InitError("Runtime.MalformedHandlerName",
                        ValueError("Bad handler '%s': expected module.function" % spec))
    module_name, func_name = spec.rsplit(".", 1)
    try:
        module = importlib.import_module(module_name.replace("/", "."))
    except ImportError as exc:
        raise InitError("Runtime.ImportModuleError", exc)
    except Exception as exc:  # noqa: BLE001 - errors while running the module's code
        raise InitError("Runtime.UserCodeSyntaxError" if isinstance(exc, SyntaxError)
                        else "Runtime.ImportModuleError", exc)
    try:
        return getattr(module, func_name)
    except AttributeError:
        raise InitError("Runtime.HandlerNotFound",
                        AttributeError("Handler '%s' missing on module '%s'" % (func_name, module_name)))


def main():
    _log_setup()
    address = os.environ.get("AWS_LAMBDA_RUNTIME_API")
    if not address:
        sys.stderr.write("AWS_LAMBDA_RUNTIME_API is not set\n")
        return 1
    client = RuntimeClient(address)
    task_root = os.environ.get("LAMBDA_TASK_ROOT", "/var/task")
    if task_root not in sys.path:
        sys.path.insert(0, task_root)

    spec = os.environ.get("_HANDLER", "")
    try:
        handler = load_handler(spec)
    except InitError as err:
        etype = err.error_type
        traceback.print_exception(type(err.exc), err.exc, err.exc.__traceback__)
        try:
            client.post("/runtime/init/error", error_payload(err.exc, etype),
                        {"Lambda-Runtime-Function-Error-Type": etype})
        except (OSError, http.client.HTTPException):
            pass
        return 1

    while True:
        try:
            headers, body = client.next()
        except (OSError, http.client.HTTPException) as exc:
            # The emulator is gone: a normal end for local runs.
            sys.stderr.write("runtime API unreachable (%s); exiting\n" % exc.__class__.__name__)
            return 0
        context = LambdaContext(headers)
        request_id = context.aws_request_id
        try:
            event = json.loads(body.decode("utf-8") or "null")
            result = handler(event, context)
            payload = json.dumps(result)
        except Exception as exc:  # noqa: BLE001
            traceback.print_exc()
            path = "/runtime/invocation/%s/error" % request_id
            payload = error_payload(exc)
            hdrs = {"Lambda-Runtime-Function-Error-Type": "Unhandled"}
        else:
            path = "/runtime/invocation/%s/response" % request_id
            hdrs = {}
        try:
            client.post(path, payload, hdrs)
        except (OSError, http.client.HTTPException) as exc:
            sys.stderr.write("could not post result (%s); exiting\n" % exc)
            return 0


if __name__ == "__main__":
    sys.exit(main())
