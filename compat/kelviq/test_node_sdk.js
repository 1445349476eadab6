// Kelviq's Node SDK (npm @kelviq/node-sdk 2.6.x), unchanged, against a running Tollgate stack.
//
// Every SDK call is a named test (node:test). The Node SDK has no runtime validation, so each
// test checks the fields its TypeScript interfaces declare required, with their types.
// Started by compat/kelviq/run.sh (NODE_PATH points at the installed SDK; TOLLGATE_URL,
// TOLLGATE_EDGE_URL and TOLLGATE_SECRET_KEY are exported).
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const crypto = require('node:crypto');
const { Kelviq, validateEvent, WebhookVerificationError } = require('@kelviq/node-sdk');

const URL_ = process.env.TOLLGATE_URL;
const EDGE = process.env.TOLLGATE_EDGE_URL;
const KEY = process.env.TOLLGATE_SECRET_KEY;
const RUN = crypto.randomBytes(4).toString('hex');
const cid = (name) => `node-${RUN}-${name}`;

const client = new Kelviq({ accessToken: KEY, baseUrl: URL_, edgeApiUrl: EDGE, logger: false });

async function raw(method, path, body) {
  const r = await fetch(URL_ + path, {
    method,
    headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  assert.ok(r.status < 300, `${method} ${path}: ${r.status} ${text}`);
  return text ? JSON.parse(text) : {};
}

async function eventually(what, check, timeoutMs = 10000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

// `{field: 'string' | 'number' | 'boolean' | 'object' | 'array'}`: present, with that type.
function shape(obj, fields, what) {
  for (const [field, type] of Object.entries(fields)) {
    const v = obj[field];
    const ok = type === 'array' ? Array.isArray(v) : typeof v === type && v !== null;
    assert.ok(ok, `${what}.${field} should be a ${type}, got ${JSON.stringify(v)}`);
  }
}

const CUSTOMER = { id: 'string', customerId: 'string', createdOn: 'string', modifiedOn: 'string' };
const SUBSCRIPTION = { id: 'string', startDate: 'string', trialDaysRemaining: 'number', billingType: 'string' };
const ENTITLEMENT = { featureId: 'string', hasAccess: 'boolean' };

async function withCard(name, plan) {
  const customer = cid(name);
  await client.customers.create({ customerId: customer, email: `${customer}@example.com` });
  await raw('POST', `/api/v1/customers/${customer}/payment-methods/`, { token: 'pm_card_visa' });
  let subscription = null;
  if (plan) {
    const s = await raw('POST', '/api/v1/subscriptions/create/', { planIdentifier: plan, chargePeriod: 'MONTHLY', customerId: customer });
    subscription = s.id;
  }
  return { customer, subscription };
}

test('customers.create', async () => {
  const c = await client.customers.create({ customerId: cid('c1'), email: 'c1@example.com', name: 'One', metadata: { planTier: 'a' } });
  shape(c, CUSTOMER, 'customer');
  assert.equal(c.customerId, cid('c1'));
  assert.deepEqual(c.metadata, { planTier: 'a' }, 'metadata keys survive the snake_case round trip');
});

test('customers.retrieve', async () => {
  await client.customers.create({ customerId: cid('c2'), email: 'c2@example.com' });
  const c = await client.customers.retrieve({ customerId: cid('c2') });
  shape(c, CUSTOMER, 'customer');
});

test('customers.update', async () => {
  await client.customers.create({ customerId: cid('c3'), email: 'c3@example.com' });
  const c = await client.customers.update({ customerId: cid('c3'), name: 'Renamed' });
  shape(c, CUSTOMER, 'customer');
  assert.equal(c.name, 'Renamed');
  assert.equal(c.email, 'c3@example.com');
});

test('customers.list', async () => {
  const page = await client.customers.list({ page: 1, pageSize: 2 });
  shape(page, { count: 'number', results: 'array' }, 'page');
  assert.ok(page.results.length <= 2);
  page.results.forEach((c) => shape(c, CUSTOMER, 'customer'));
});

test('customers.archive', async () => {
  await client.customers.create({ customerId: cid('c5'), email: 'c5@example.com' });
  const r = await client.customers.archive({ customerId: cid('c5') });
  shape(r, { message: 'string' }, 'archive');
  const page = await client.customers.list({ pageSize: 100 });
  assert.ok(!page.results.some((c) => c.customerId === cid('c5')));
});

test('checkout.createSession', async () => {
  const s = await client.checkout.createSession({
    planIdentifier: 'pro', chargePeriod: 'MONTHLY', successUrl: 'https://app.example.com/ok', customerId: cid('checkout'),
  });
  shape(s, { checkoutSessionId: 'string', checkoutUrl: 'string' }, 'session');
});

test('subscriptions.update', async () => {
  const { subscription } = await withCard('upd', 'pro');
  const r = await client.subscriptions.update({ subscriptionId: subscription, planIdentifier: 'enterprise', chargePeriod: 'MONTHLY' });
  shape(r, { subscriptionId: 'string' }, 'update');
  const s = await raw('GET', `/api/v1/subscriptions/${subscription}/`);
  shape(s, SUBSCRIPTION, 'subscription');
  assert.equal(s.plan.identifier, 'enterprise');
});

test('subscriptions.cancel', async () => {
  const { subscription } = await withCard('cancel', 'pro');
  const r = await client.subscriptions.cancel({ subscriptionId: subscription, cancellationType: 'CURRENT_PERIOD_ENDS' });
  shape(r, { message: 'string' }, 'cancel');
  const now = await client.subscriptions.cancel({ subscriptionId: subscription, cancellationType: 'IMMEDIATE' });
  shape(now, { message: 'string' }, 'cancel');
});

let entCustomer;
async function enterpriseCustomer() {
  if (!entCustomer) {
    entCustomer = (await withCard('ent', 'enterprise')).customer;
  }
  await eventually('sso at the edge', () => client.entitlements.hasAccess({ customerId: entCustomer, featureId: 'sso' }));
  return entCustomer;
}

test('entitlements.hasAccess', async () => {
  const customer = await enterpriseCustomer();
  assert.equal(await client.entitlements.hasAccess({ customerId: customer, featureId: 'sso' }), true);
  assert.equal(await client.entitlements.hasAccess({ customerId: cid('nobody'), featureId: 'sso' }), false);
});

test('entitlements.getEntitlement', async () => {
  const customer = await enterpriseCustomer();
  const e = await client.entitlements.getEntitlement({ customerId: customer, featureId: 'team-size' });
  shape(e, { ...ENTITLEMENT, items: 'array' }, 'entitlement');
  assert.equal(e.usageLimit, 50);
});

test('entitlements.getEntitlements', async () => {
  const customer = await enterpriseCustomer();
  const all = await client.entitlements.getEntitlements({ customerId: customer });
  assert.ok(['sso', 'api-calls', 'team-size'].every((f) => f in all));
});

test('entitlements.getRawEntitlement', async () => {
  const customer = await enterpriseCustomer();
  const r = await client.entitlements.getRawEntitlement({ customerId: customer, featureId: 'api-calls' });
  shape(r, { customerId: 'string', entitlements: 'array' }, 'raw');
  assert.deepEqual(r.entitlements.map((e) => e.featureId), ['api-calls']);
});

test('entitlements.getRawEntitlements', async () => {
  const customer = await enterpriseCustomer();
  const r = await client.entitlements.getRawEntitlements({ customerId: customer });
  r.entitlements.forEach((e) => shape(e, ENTITLEMENT, 'entitlement'));
  assert.ok(r.entitlements.length >= 5);
});

test('reporting.reportUsage', async () => {
  const customer = cid('usage');
  await client.customers.create({ customerId: customer, email: `${customer}@example.com` });
  const r = await client.reporting.reportUsage({ value: 2, customerId: customer, featureId: 'api-calls', behaviour: 'DELTA' });
  shape(r, { value: 'number', customerId: 'string', featureId: 'string', behaviour: 'string', orgId: 'string',
    eventName: 'string', idempotencyKey: 'string', timestamp: 'string' }, 'usage');
  await eventually('usage at the edge', async () =>
    (await client.entitlements.getEntitlement({ customerId: customer, featureId: 'api-calls' })).currentUsage === 2);
});

test('reporting.reportEvent', async () => {
  const customer = cid('events');
  await client.customers.create({ customerId: customer, email: `${customer}@example.com` });
  const ts = new Date().toISOString().replace('T', ' ').replace('Z', '000');
  const r = await client.reporting.reportEvent({ customerId: customer, eventName: 'signed.in', idempotencyKey: `n-${RUN}`, timestamp: ts, properties: { a: 1 } });
  shape(r, { customerId: 'string', eventName: 'string', idempotencyKey: 'string', timestamp: 'string', orgId: 'string' }, 'event');
});

test('license.activate / license.validate / license.deactivate', async () => {
  const plan = `nlic-${RUN}`;
  await raw('POST', '/api/v1/plans/', { identifier: plan, name: 'Node licensed', group: plan,
    prices: [{ chargePeriod: 'MONTHLY', amount: '3.00', currency: 'usd' }], licenseActivationLimit: 1 });
  const { subscription } = await withCard('lic', plan);
  const sub = await raw('GET', `/api/v1/subscriptions/${subscription}/`);
  const licenseKey = sub.license[0].licenseKey;
  const a = await client.license.activate({ licenseKey, instanceName: 'laptop' });
  shape(a, { instanceId: 'string', activatedAt: 'string', license: 'object' }, 'activate');
  shape(a.license, { id: 'string', licenseKey: 'string', activationUsage: 'number', activationLimit: 'number', enabled: 'boolean' }, 'license');
  await assert.rejects(client.license.activate({ licenseKey }), (e) => e.statusCode === 409 || e.status === 409 || /409|limit/.test(String(e)));
  const v = await client.license.validate({ licenseKey, instanceId: a.instanceId });
  shape(v, { valid: 'boolean', code: 'string', detail: 'string' }, 'validate');
  assert.equal(v.valid, true);
  const d = await client.license.deactivate({ licenseKey, instanceId: a.instanceId });
  shape(d, { message: 'string', deactivatedAt: 'string' }, 'deactivate');
});

test('portal.createSession', async () => {
  const { customer } = await withCard('portal');
  const s = await client.portal.createSession({ customerId: customer });
  shape(s, { token: 'string', email: 'string', customerPortalUrl: 'string' }, 'portal');
});

test('validateEvent on real deliveries', async () => {
  const got = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => { got.push({ headers: req.headers, body: Buffer.concat(chunks) }); res.writeHead(204).end(); });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  try {
    const url = `http://127.0.0.1:${server.address().port}/hook`;
    const ep = await raw('POST', '/api/v1/webhook-endpoints/', { url, events: ['customer.created'], signatureScheme: 'kelviq' });
    const customer = cid('hooked');
    await client.customers.create({ customerId: customer, email: `${customer}@example.com` });
    const d = await eventually('a delivery', () => got.find((g) => JSON.parse(g.body).data.customerId === customer));
    const event = validateEvent(d.body, d.headers, ep.secret);
    assert.equal(event.type, 'customer.created');
    assert.throws(() => validateEvent(Buffer.concat([d.body, Buffer.from(' ')]), d.headers, ep.secret), WebhookVerificationError);
    await raw('DELETE', `/api/v1/webhook-endpoints/${ep.id}/`);
  } finally {
    server.close();
  }
});
