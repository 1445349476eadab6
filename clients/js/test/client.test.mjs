// @tollgate/client against a real edge fed by a real control plane (started here): reads, the
// ETag cache, hasAccess, subscribe (first state, pushed changes, reconnect with Last-Event-ID
// without a gap or a duplicate), minVersion, tokens, errors, and the CommonJS build.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { randomBytes } from "node:crypto";

import { createClient, TollgateError } from "../dist/esm/index.js";
import { startStack, eventually } from "./stack.mjs";

const RUN = randomBytes(4).toString("hex");
let stack;

before(async () => {
  stack = await startStack(["--min-version-wait-ms", "300"]);
});
after(() => stack?.stop());

/** A new customer, returned once the edge has applied its creation: until then the edge answers
 * an unknown customer's defaults, and a test reading at once would see the two bodies change. */
async function customer(name, plan) {
  const customerId = `js-${RUN}-${name}`;
  const { version } = await stack.write("POST", "/api/v1/customers/", { customerId, email: `${customerId}@example.com` });
  if (plan) {
    await stack.write("POST", `/api/v1/customers/${customerId}/payment-methods/`, { token: "pm_card_visa" });
  }
  await eventually("the customer at the edge", async () => (await stack.edgeVersion()) >= version);
  return customerId;
}

function subscribeTo(client, plan, customerId) {
  return stack.write("POST", "/api/v1/subscribe/", { customerId, planIdentifier: plan, chargePeriod: "MONTHLY" });
}

/** A fetch that records what it was asked and answered, and can cut open streams. */
function recordingFetch() {
  const calls = [];
  const streams = new Set();
  const f = async (url, init = {}) => {
    const resp = await fetch(url, init);
    calls.push({ url: String(url), headers: { ...(init.headers ?? {}) }, status: resp.status });
    if (!String(url).includes("/stream") || !resp.body) return resp;
    // Hand the client a body the test can end, as a dropped connection would.
    const reader = resp.body.getReader();
    let cut;
    const body = new ReadableStream({
      start(controller) {
        cut = () => {
          try {
            controller.error(new Error("connection dropped"));
          } catch {}
          reader.cancel().catch(() => {});
        };
        streams.add(cut);
      },
      async pull(controller) {
        try {
          const { done, value } = await reader.read();
          if (done) controller.close();
          else controller.enqueue(value);
        } catch (e) {
          try {
            controller.error(e);
          } catch {}
        }
      },
    });
    return new Response(body, { status: resp.status, headers: resp.headers });
  };
  f.calls = calls;
  f.dropStreams = () => {
    for (const cut of streams) cut();
    streams.clear();
  };
  return f;
}

test("getEntitlements, getEntitlement and hasAccess read the edge", async () => {
  const id = await customer("reads");
  const client = createClient({ edgeUrl: stack.edge, key: stack.publishableKey });
  const all = await eventually("the customer at the edge", async () => {
    const e = await client.getEntitlements(id);
    return e.entitlements.some((x) => x.featureId === "api-calls" && x.usageLimit === 100) && e;
  });
  assert.equal(all.customerId, id);
  const calls = await client.getEntitlement(id, "api-calls");
  assert.deepEqual(
    { type: calls.featureType, limit: calls.usageLimit, usage: calls.currentUsage, remaining: calls.remaining },
    { type: "METER", limit: 100, usage: 0, remaining: 100 },
  );
  assert.equal(await client.hasAccess(id, "export-data"), false);
  assert.equal(await client.hasAccess(id, "api-calls"), true);
  assert.equal(await client.hasAccess(id, "no-such-feature"), false);
  assert.equal(await client.getEntitlement(id, "no-such-feature"), undefined);
});

test("the ETag cache: an unchanged read is a 304 answered from the cache", async () => {
  const id = await customer("etag");
  const f = recordingFetch();
  const client = createClient({ edgeUrl: `${stack.edge}/`, key: stack.publishableKey, fetch: f });
  const first = await client.getEntitlements(id);
  const second = await client.getEntitlements(id);
  assert.deepEqual(second, first);
  assert.equal(f.calls.at(-1).status, 304);
  assert.ok(f.calls.at(-1).headers["If-None-Match"]);
  // A change is a 200 with the new body.
  await stack.write("POST", "/api/v1/usage/", { customerId: id, featureId: "api-calls", quantity: 4 });
  const third = await eventually("the usage", async () => {
    const e = await client.getEntitlements(id);
    return e.entitlements.find((x) => x.featureId === "api-calls").currentUsage === 4 && e;
  });
  assert.notDeepEqual(third, first);
  assert.equal(f.calls.at(-1).status, 200);
});

test("subscribe: the state at once, then every change, across a dropped connection", async () => {
  const id = await customer("stream", "pro");
  const f = recordingFetch();
  const client = createClient({ edgeUrl: stack.edge, key: stack.publishableKey, fetch: f });
  const seen = [];
  const errors = [];
  let wake = () => {};
  const sub = client.subscribe(
    id,
    (e) => {
      seen.push(e);
      wake();
    },
    { onError: (e) => errors.push(e) },
  );
  const next = (pred) =>
    eventually("an event", async () => {
      const hit = seen.find(pred);
      if (hit) return hit;
      await new Promise((r) => {
        wake = r;
        setTimeout(r, 200);
      });
      return seen.find(pred);
    });
  const usage = (e) => e.entitlements.find((x) => x.featureId === "api-calls").currentUsage;
  const first = await next(() => true);
  assert.equal(first.customerId, id);
  assert.equal(typeof first.version, "number");

  await subscribeTo(client, "pro", id);
  const pro = await next((e) => e.entitlements.find((x) => x.featureId === "export-data")?.hasAccess);
  assert.ok(pro.version > first.version);
  await stack.write("POST", "/api/v1/usage/", { customerId: id, featureId: "api-calls", quantity: 2 });
  const two = await next((e) => usage(e) === 2);
  const before = seen.length;

  // The connection drops; a change happens meanwhile; the client reconnects from its last id.
  f.dropStreams();
  await stack.write("POST", "/api/v1/usage/", { customerId: id, featureId: "api-calls", quantity: 3 });
  const five = await next((e) => usage(e) === 5);
  const reconnect = f.calls.filter((c) => c.url.includes("/stream")).at(-1);
  assert.equal(reconnect.headers["Last-Event-ID"], String(two.version));
  assert.ok(errors.length >= 1, "the drop was reported");
  // Nothing missed, nothing repeated: after the drop, exactly the one change.
  assert.deepEqual(seen.slice(before).map(usage), [5]);
  assert.ok(five.version > two.version);
  assert.equal(sub.lastEventId, String(five.version));
  sub.close();
  assert.equal(sub.closed, true);
});

test("minVersion: passed through; answers carry the version, or say stale", async () => {
  const id = await customer("ryw");
  const client = createClient({ edgeUrl: stack.edge, key: stack.publishableKey });
  const { version } = await stack.write("POST", "/api/v1/usage/", {
    customerId: id,
    featureId: "api-calls",
    quantity: 9,
  });
  // Read-your-writes against the real control plane: the write's version, read at once.
  assert.equal(typeof version, "number");
  const read = await client.getEntitlements(id, { minVersion: version });
  assert.equal(read.entitlements.find((x) => x.featureId === "api-calls").currentUsage, 9);
  assert.ok(read.version >= version);
  assert.equal(read.stale, undefined);
  // A version the edge will not reach within its bound: the answer it has, marked stale.
  const applied = await stack.edgeVersion();
  const e = await client.getEntitlements(id, { minVersion: applied + 1000 });
  assert.equal(e.stale, true);
  assert.ok(e.version >= applied);
});

test("customer tokens read their own customer without naming it", async () => {
  const id = await customer("token");
  const { body } = await stack.write("POST", `/api/v1/customers/${id}/token/`, {});
  const token = body.token;
  assert.match(token, /^ct_/);
  let minted = 0;
  const client = createClient({
    edgeUrl: stack.edge,
    token: async () => {
      minted += 1;
      return token;
    },
  });
  const e = await eventually("the customer at the edge", () => client.getEntitlements().catch(() => null));
  assert.equal(e.customerId, id);
  assert.ok(minted >= 1);
  await assert.rejects(client.getEntitlements(`${id}-other`), (err) => err instanceof TollgateError && err.status === 403);
});

test("errors are TollgateErrors with the edge's status and message", async () => {
  const client = createClient({ edgeUrl: stack.edge, key: "pk_test_nobodyHasThisKey00000000" });
  await assert.rejects(client.getEntitlements("x"), (err) => {
    assert.ok(err instanceof TollgateError);
    assert.equal(err.status, 401);
    assert.match(err.message, /invalid/i);
    return true;
  });
  const fatal = await new Promise((resolve) => {
    client.subscribe("x", () => {}, { onError: (err, isFatal) => resolve({ err, isFatal }) });
  });
  assert.equal(fatal.err.status, 401);
  assert.equal(fatal.isFatal, true);
  assert.throws(() => createClient({ edgeUrl: stack.edge }), TypeError);
  assert.throws(() => createClient({ key: "pk_x" }), TypeError);
});

test("the CommonJS build works with require", async () => {
  const require = createRequire(import.meta.url);
  const cjs = require("../dist/cjs/index.js");
  const client = cjs.createClient({ edgeUrl: stack.edge, key: stack.publishableKey });
  const id = await customer("cjs");
  const e = await eventually("the customer", () => client.getEntitlements(id).catch(() => null));
  assert.equal(e.customerId, id);
});
