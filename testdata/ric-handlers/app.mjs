// Handlers for the tests of `ocilambda run` under AWS's Node.js runtime
// client (testdata/mk-ric-base.sh); the image's Cmd, or --handler, picks one
// as app.NAME.

// what the function sees of its invocation and its configuration
export const ok = async (event, context) => ({
  event,
  requestId: context.awsRequestId,
  functionName: context.functionName,
  functionVersion: context.functionVersion,
  arn: context.invokedFunctionArn,
  memoryLimitInMB: context.memoryLimitInMB,
  logGroupName: context.logGroupName,
  clientContext: context.clientContext ?? null,
  tenantId: context.tenantId ?? null,
  remainingMs: context.getRemainingTimeInMillis(),
  traceId: process.env._X_AMZN_TRACE_ID ?? null,
  uid: process.getuid(),
  env: {
    region: process.env.AWS_REGION,
    memory: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
    name: process.env.AWS_LAMBDA_FUNCTION_NAME,
    marker: process.env.RUN_TEST_MARKER ?? null,
  },
});

// the event back (the benchmark's handler)
export const echo = async (event) => event;

// invocations counted in one process: 1, 2, ... only if it is kept
let n = 0;
export const count = async (event, context) => ({
  n: ++n,
  event,
  fn: context.functionName,
  region: process.env.AWS_REGION,
  uid: process.getuid(),
  marker: process.env.RUN_TEST_MARKER ?? null,
});

export const fail = async () => {
  throw new TypeError("boom from the handler");
};

// an error whose message makes the X-Ray cause header the client sends
// (Lambda-Runtime-Function-XRay-Error-Cause) about 600 KiB long
export const longerror = async () => {
  throw new RangeError("long ".repeat(120000));
};

// never answers (until --timeout-s stops it)
export const slow = () => new Promise((resolve) => setTimeout(resolve, 600000));

// 7 MiB: over Lambda's 6,291,556-byte response limit
export const big = async () => "x".repeat(7 << 20);

// the process dies in the middle of an invocation
export const crash = async () => {
  process.exit(3);
};

// keeps about 300 MiB in use (over --memory 128 where it is enforced)
export const hog = async () => {
  const keep = [];
  for (let i = 0; i < 300; i++) keep.push(Buffer.alloc(1 << 20, 1));
  return keep.length;
};

export const log = async (event) => {
  console.log("a line from the handler");
  console.error("an error line from the handler");
  return "logged";
};

// the blog's answer
export const hello = async () => "Hello World";

// the descriptors of the process that read a marker file of the host
export const fds = async () => {
  const fs = await import("node:fs");
  const found = [];
  for (const fd of fs.readdirSync("/proc/self/fd")) {
    try {
      const buf = Buffer.alloc(64);
      const n = fs.readSync(Number(fd), buf, 0, 64, 0);
      if (buf.subarray(0, n).includes("host-only-marker")) found.push(fd);
    } catch {}
  }
  return found;
};

// the handler the event names ({"handler": "fail"}, ...), else ok: one
// server (run --port) for all of them
export const dispatch = async (event, context) => {
  const table = { ok, echo, count, fail, longerror, slow, big, crash, hog, log, hello, fds };
  return (table[event?.handler] ?? ok)(event, context);
};
