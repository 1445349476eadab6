// Customers for the OpenFeature suites, made through the control plane's API (plain fetch:
// the OpenFeature SDKs only read). Started by compat/openfeature/run.sh, which exports
// TOLLGATE_URL, TOLLGATE_EDGE_URL, TOLLGATE_SECRET_KEY and TOLLGATE_PUBLISHABLE_KEY.
'use strict';

const assert = require('node:assert/strict');
const crypto = require('node:crypto');

const CP = process.env.TOLLGATE_URL;
const EDGE = process.env.TOLLGATE_EDGE_URL;
const SK = process.env.TOLLGATE_SECRET_KEY;
const PK = process.env.TOLLGATE_PUBLISHABLE_KEY;
const RUN = crypto.randomBytes(4).toString('hex');

/// The largest integer every JSON reader holds exactly: unlimited `.limit` / `.remaining`.
const UNLIMITED = Number.MAX_SAFE_INTEGER;

/** A control-plane write; returns the answer and the change-log version it committed. */
async function write(method, path, body) {
  const r = await fetch(CP + path, {
    method,
    headers: { Authorization: `Bearer ${SK}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  assert.ok(r.status < 300, `${method} ${path}: ${r.status} ${text}`);
  const version = r.headers.get('tollgate-version');
  return { body: text ? JSON.parse(text) : {}, version: version === null ? null : Number(version) };
}

/** One entitlement as the edge's GET answers it (`null`: not 200). */
async function entitlement(customerId, featureId) {
  const r = await fetch(`${EDGE}/api/v1/entitlements/${featureId}/?customerId=${customerId}`, {
    headers: { Authorization: `Bearer ${PK}` },
  });
  return r.status === 200 ? r.json() : null;
}

/** Polls `check` until it is truthy (the deadline only stops a broken suite). */
async function eventually(what, check, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A customer on the free plan, known at the edge. */
async function freeCustomer(name) {
  const customerId = `of-${RUN}-${name}`;
  await write('POST', '/api/v1/customers/', { customerId, email: `${customerId}@example.com` });
  return customerId;
}

/** Puts a test card on file and subscribes `customerId` to `plan` (monthly). */
async function subscribe(customerId, plan) {
  await write('POST', `/api/v1/customers/${customerId}/payment-methods/`, { token: 'pm_card_visa' });
  const { body, version } = await write('POST', '/api/v1/subscribe/', {
    customerId,
    planIdentifier: plan,
    chargePeriod: 'MONTHLY',
  });
  assert.ok(['created', 'upgraded'].includes(body.action), JSON.stringify(body));
  return version;
}

/** Reports `quantity` of API calls for `customerId`. */
async function usage(customerId, quantity) {
  const { version } = await write('POST', '/api/v1/usage/', {
    customerId,
    featureId: 'api-calls',
    quantity,
  });
  return version;
}

module.exports = { CP, EDGE, SK, PK, RUN, UNLIMITED, write, entitlement, eventually, freeCustomer, subscribe, usage };
