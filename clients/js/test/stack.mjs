// A real Tollgate stack for the client tests: the control plane (SQLite in a temp dir, the
// example catalog) and an edge synced to it, the repository's debug binaries (or
// TOLLGATE_BIN_DIR's) on random loopback ports, stopped at exit. Shared by clients/js
// (node:test) and clients/react (vitest's global setup).
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { randomBytes } from "node:crypto";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");

function key(prefix) {
  return prefix + randomBytes(24).toString("base64").replace(/[^A-Za-z0-9]/g, "").slice(0, 32).padEnd(32, "x");
}

/** Starts `bin` and resolves with the address from its "listening on http://ADDR" line. */
function start(bin, args, env) {
  return new Promise((ok, fail) => {
    const child = spawn(bin, args, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    const timer = setTimeout(() => fail(new Error(`${bin} did not start:\n${err}`)), 60_000);
    child.stdout.on("data", (chunk) => {
      out += chunk;
      const m = /listening on http:\/\/(\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        ok({ child, url: `http://${m[1]}` });
      }
    });
    child.stderr.on("data", (chunk) => {
      err += chunk;
      if (err.length > 20_000) err = err.slice(-10_000);
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      fail(new Error(`${bin} exited with ${code}:\n${err}`));
    });
  });
}

/**
 * Starts the stack. `edgeArgs` are extra edge flags. Resolves with URLs, keys and `stop()`.
 */
export async function startStack(edgeArgs = []) {
  const bins = process.env.TOLLGATE_BIN_DIR ?? join(root, "target/debug");
  const dir = mkdtempSync(join(tmpdir(), "tollgate-clients-"));
  const keys = {
    TOLLGATE_SECRET_KEY: key("sk_test_"),
    TOLLGATE_PUBLISHABLE_KEY: key("pk_test_"),
    TOLLGATE_LIVE_SECRET_KEY: key("sk_live_"),
    TOLLGATE_EDGE_SYNC_KEY: key("esk_"),
  };
  const env = { ...keys, RUST_LOG: "warn" };
  const cp = await start(
    join(bins, "control-plane"),
    ["serve", "--listen", "127.0.0.1:0", "--database-url", `sqlite://${dir}/tollgate.db`, "--catalog", join(root, "catalog/example.json")],
    env,
  );
  let edge;
  try {
    edge = await start(
      join(bins, "edge"),
      ["--listen", "127.0.0.1:0", "--control-plane-url", cp.url, "--sync-key", keys.TOLLGATE_EDGE_SYNC_KEY, ...edgeArgs],
      env,
    );
  } catch (e) {
    cp.child.kill();
    throw e;
  }
  const stop = () => {
    edge.child.removeAllListeners("exit");
    cp.child.removeAllListeners("exit");
    edge.child.kill();
    cp.child.kill();
    rmSync(dir, { recursive: true, force: true });
  };
  process.once("exit", stop);
  const deadline = Date.now() + 30_000;
  for (;;) {
    const ready = await fetch(`${edge.url}/readyz`).then((r) => r.status === 200, () => false);
    if (ready) break;
    if (Date.now() > deadline) throw new Error("the edge never became ready");
    await new Promise((r) => setTimeout(r, 50));
  }
  const stack = {
    controlPlane: cp.url,
    edge: edge.url,
    secretKey: keys.TOLLGATE_SECRET_KEY,
    publishableKey: keys.TOLLGATE_PUBLISHABLE_KEY,
    stop,
    /** A control-plane write: its JSON answer and the `Tollgate-Version` it committed. */
    async write(method, path, body) {
      const r = await fetch(cp.url + path, {
        method,
        headers: { Authorization: `Bearer ${keys.TOLLGATE_SECRET_KEY}`, "Content-Type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await r.text();
      if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${text}`);
      const v = r.headers.get("tollgate-version");
      return { body: text ? JSON.parse(text) : {}, version: v === null ? null : Number(v) };
    },
    /** The edge's applied version. */
    async edgeVersion() {
      return (await (await fetch(`${edge.url}/readyz`)).json()).version;
    },
  };
  return stack;
}

/** Polls `check` until truthy; the deadline only stops a broken test from hanging. */
export async function eventually(what, check, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
