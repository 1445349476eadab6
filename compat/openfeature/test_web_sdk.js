// OpenFeature's web SDK (npm @openfeature/web-sdk) with its OFREP web provider
// (npm @openfeature/ofrep-web-provider), unchanged, against a Tollgate edge fed by a real
// control plane. The provider evaluates every flag at once (POST /ofrep/v1/evaluate/flags) for
// the static context, caches them, and — polling off, its default change detection `sse` —
// listens on the event stream the bulk answer advertises (ADR-0008) for `refetchEvaluation`.
// Node 20 has no EventSource: the browser API is supplied by npm `eventsource`, as a browser
// would. Run by compat/openfeature/run.sh.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const { EventSource } = require('eventsource');
const { OpenFeature, ProviderEvents } = require('@openfeature/web-sdk');
const { OFREPWebProvider } = require('@openfeature/ofrep-web-provider');
const f = require('./fixtures.js');

globalThis.EventSource = EventSource;

/** Counts the provider's bulk requests and keeps the last answer (it is handed fetch, as a
 * page would hand it window.fetch; the answer reaches the provider untouched). */
let bulkRequests = 0;
let lastBulk = null;
async function countingFetch(input, init) {
  const url = typeof input === 'string' ? input : input.url;
  const resp = await fetch(input, init);
  if (url.includes('/ofrep/v1/evaluate/flags')) {
    bulkRequests += 1;
    lastBulk = { status: resp.status, body: await resp.clone().text() };
  }
  return resp;
}

function provider() {
  return new OFREPWebProvider({
    baseUrl: f.EDGE,
    headers: [['Authorization', `Bearer ${f.PK}`]],
    pollInterval: 0,
    changeDetection: 'sse',
    cacheMode: 'disabled', // Node has no localStorage
    fetchImplementation: countingFetch,
  });
}

const ids = {};

test.before(async () => {
  ids.pro = await f.freeCustomer('web-pro');
  await f.subscribe(ids.pro, 'pro');
  await f.usage(ids.pro, 11);
  ids.free = await f.freeCustomer('web-free');
  await f.eventually('the writes at the edge', async () => {
    const pro = await f.entitlement(ids.pro, 'api-calls');
    const free = await f.entitlement(ids.free, 'api-calls');
    return pro && pro.currentUsage === 11 && free;
  });
  await OpenFeature.setContext({ targetingKey: ids.pro });
  await OpenFeature.setProviderAndWait(provider());
});

test.after(() => OpenFeature.close());

test('bulk: booleans, integers and metadata from one evaluation', () => {
  const client = OpenFeature.getClient();
  const exp = client.getBooleanDetails('export-data', false);
  assert.equal(exp.value, true);
  assert.equal(exp.reason, 'TARGETING_MATCH');
  assert.equal(exp.variant, 'on');
  assert.equal(client.getBooleanValue('sso', true), false);
  assert.equal(client.getNumberValue('api-calls.limit', 0), 10000);
  assert.equal(client.getNumberValue('api-calls.remaining', 0), 9989);
  assert.equal(client.getNumberValue('max-projects.limit', 0), 100);
  const calls = client.getBooleanDetails('api-calls', false);
  assert.equal(calls.value, true);
  assert.equal(calls.flagMetadata.usageLimit, 10000);
  assert.equal(calls.flagMetadata.currentUsage, 11);
  assert.equal(calls.flagMetadata.remaining, 9989);
  assert.match(calls.flagMetadata.resetAt, /^\d{4}-\d\d-\d\dT/);
});

test('bulk: a missing flag is FLAG_NOT_FOUND, with the default', () => {
  const d = OpenFeature.getClient().getBooleanDetails('no-such-feature', true);
  assert.equal(d.value, true);
  assert.equal(d.errorCode, 'FLAG_NOT_FOUND');
  const n = OpenFeature.getClient().getNumberDetails('sso.limit', 9);
  assert.equal(n.value, 9);
  assert.equal(n.errorCode, 'FLAG_NOT_FOUND');
});

test('a change at the control plane arrives over the event stream, polling off', async () => {
  const client = OpenFeature.getClient();
  assert.equal(client.getBooleanValue('sso', true), false);
  const before = bulkRequests;
  const changed = new Promise((resolve) => {
    client.addHandler(ProviderEvents.ConfigurationChanged, (details) => resolve(details));
  });
  // Enterprise grants sso: an upgrade at the control plane.
  await f.subscribe(ids.pro, 'enterprise');
  let timer;
  const details = await Promise.race([
    changed,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error('no ConfigurationChanged within 20 s')), 20000);
    }),
  ]);
  clearTimeout(timer);
  assert.ok(details.flagsChanged.includes('sso'), JSON.stringify(details));
  assert.equal(client.getBooleanValue('sso', false), true);
  assert.equal(client.getNumberValue('api-calls.limit', 0), f.UNLIMITED);
  // One refetch for the notice, not a poll loop.
  assert.ok(bulkRequests - before >= 1 && bulkRequests - before <= 2, `${bulkRequests - before} refetches`);
});

test('a usage report at the control plane reaches the cached metadata', async () => {
  const client = OpenFeature.getClient();
  const changed = new Promise((resolve) => {
    client.addHandler(ProviderEvents.ConfigurationChanged, resolve);
  });
  await f.usage(ids.pro, 4);
  await changed;
  assert.equal(client.getBooleanDetails('api-calls', false).flagMetadata.currentUsage, 15);
});

test('a new context: the other customer\'s flags', async () => {
  await OpenFeature.setContext({ targetingKey: ids.free });
  const client = OpenFeature.getClient();
  assert.equal(client.getBooleanValue('export-data', true), false);
  assert.equal(client.getNumberValue('api-calls.limit', 0), 100);
});

test('a missing targeting key: TARGETING_KEY_MISSING, the provider reports an error', async () => {
  const errored = new Promise((resolve) => {
    OpenFeature.getClient().addHandler(ProviderEvents.Error, resolve);
  });
  await OpenFeature.setContext({ email: 'nobody@example.com' });
  await errored;
  assert.equal(lastBulk.status, 400);
  assert.equal(JSON.parse(lastBulk.body).errorCode, 'TARGETING_KEY_MISSING');
});
