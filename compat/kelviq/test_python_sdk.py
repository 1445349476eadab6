"""Kelviq's Python SDK (PyPI kelviq-sdk 2.9.x), unchanged, against a running Tollgate stack.

Every SDK call is a named test; each parses the answer into the SDK's pydantic models, so a
missing or mistyped field fails here. Started by compat/kelviq/run.sh, which exports
TOLLGATE_URL, TOLLGATE_EDGE_URL and TOLLGATE_SECRET_KEY. Setup the SDK has no call for (a
test card on file, a plan granting licenses, a webhook endpoint) goes over plain HTTP.
"""

import datetime
import http.server
import json
import os
import threading
import time
import uuid

import httpx
import pytest

from kelviq_sdk import Kelviq
from kelviq_sdk.exceptions import NotFoundError
from kelviq_sdk.webhook import WebhookVerificationError, validate_event

URL = os.environ["TOLLGATE_URL"]
EDGE = os.environ["TOLLGATE_EDGE_URL"]
KEY = os.environ["TOLLGATE_SECRET_KEY"]
RUN = uuid.uuid4().hex[:8]  # ids unique to this run, so the suite can run twice on one server


def cid(name):
    return f"py-{RUN}-{name}"


def raw(method, path, body=None):
    r = httpx.request(method, URL + path, json=body, headers={"Authorization": f"Bearer {KEY}"}, timeout=10)
    assert r.status_code < 300, f"{method} {path}: {r.status_code} {r.text}"
    return r.json() if r.content else {}


def eventually(what, check, timeout=10.0):
    # Edges apply the control plane's changes asynchronously (milliseconds later): until a
    # customer's delta arrives, a feature new to that customer is 404 at the edge, which is
    # "not yet" here, not a failure.
    deadline = time.time() + timeout
    while True:
        try:
            value = check()
        except NotFoundError:
            value = None
        if value:
            return value
        if time.time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def client():
    # The entitlement cache is turned off so each read sees the edge as it is now.
    c = Kelviq.create_sync_client(access_token=KEY, base_url=URL, edge_api_url=EDGE, enable_cache=False)
    yield c
    c.close()


@pytest.fixture(scope="module")
def carded(client):
    """A customer with a card on file and a Pro subscription started directly."""
    customer = cid("carded")
    client.customers.create(customerId=customer, email=f"{customer}@example.com", name="Carded")
    raw("POST", f"/api/v1/customers/{customer}/payment-methods/", {"token": "pm_card_visa"})
    sub = client.subscriptions.create(planIdentifier="pro", chargePeriod="MONTHLY", customerId=customer)
    return {"customer": customer, "subscription": sub.id}


# ---- customers ------------------------------------------------------------------------------

def test_customers_create(client):
    c = client.customers.create(customerId=cid("c1"), email="c1@example.com", name="One", metadata={"plan_Tier": "a"})
    assert c.customerId == cid("c1") and c.email == "c1@example.com"
    assert c.metadata == {"plan_Tier": "a"}
    assert isinstance(c.createdOn, datetime.datetime)


def test_customers_retrieve(client):
    client.customers.create(customerId=cid("c2"), email="c2@example.com")
    c = client.customers.retrieve(customerId=cid("c2"))
    assert c.customerId == cid("c2")


def test_customers_update(client):
    client.customers.create(customerId=cid("c3"), email="c3@example.com")
    c = client.customers.update(customerId=cid("c3"), name="Renamed", metadata={"k": 1})
    assert c.name == "Renamed" and c.metadata == {"k": 1} and c.email == "c3@example.com"


def test_customers_list(client):
    client.customers.create(customerId=cid("c4"), email="c4@example.com")
    page = client.customers.list(page=1, page_size=2)
    assert page.count >= 1 and len(page.results) <= 2
    assert page.next is None or page.next.startswith("http")


def test_customers_archive(client):
    client.customers.create(customerId=cid("c5"), email="c5@example.com")
    done = client.customers.archive(customerId=cid("c5"))
    assert done.message
    listed = [c.customerId for c in client.customers.list(page_size=100).results]
    assert cid("c5") not in listed
    assert client.customers.retrieve(customerId=cid("c5")).customerId == cid("c5")


# ---- checkout -------------------------------------------------------------------------------

def test_checkout_create_session(client):
    s = client.checkout.create_session(
        planIdentifier="enterprise", chargePeriod="YEARLY", successUrl="https://app.example.com/ok",
        customerId=cid("checkout"), ipAddress="203.0.113.9",
    )
    assert s.checkoutSessionId and s.checkoutUrl.startswith("http")
    page = httpx.get(s.checkoutUrl, timeout=10)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]


# ---- subscriptions --------------------------------------------------------------------------

def test_subscriptions_create(client, carded):
    sub = client.subscriptions.retrieve(subscriptionId=carded["subscription"])
    assert sub.billingType == "SUBSCRIPTION" and sub.status == "active"
    assert sub.plan.identifier == "pro" and sub.customerId == carded["customer"]


def test_subscriptions_retrieve(client, carded):
    sub = client.subscriptions.retrieve(subscriptionId=carded["subscription"])
    assert sub.id == carded["subscription"]
    assert sub.startDate == datetime.date.today().isoformat() or sub.startDate


def test_subscriptions_list(client, carded):
    today = datetime.datetime.now(datetime.timezone.utc).date()
    page = client.subscriptions.list(
        customerId=carded["customer"],
        startDateAfter=(today - datetime.timedelta(days=1)).isoformat(),
        startDateBefore=(today + datetime.timedelta(days=1)).isoformat(),
        modifiedOnAfter=(today - datetime.timedelta(days=1)).isoformat(),
        page=1, page_size=10,
    )
    assert page.count >= 1 and all(s.billingType in ("SUBSCRIPTION", "ONE_TIME") for s in page.results)
    empty = client.subscriptions.list(customerId=carded["customer"], startDateBefore="2000-01-01")
    assert empty.count == 0


def test_subscriptions_preview_update(client, carded):
    p = client.subscriptions.preview_update(
        subscriptionId=carded["subscription"], planIdentifier="enterprise", chargePeriod="MONTHLY",
        prorationBehavior="IMMEDIATE_CHARGE",
    )
    assert p.currency == "usd" and p.recurringAmount == 199.0
    assert p.amountChargedImmediatelyUnits is not None and p.nextInvoice is not None
    assert client.subscriptions.retrieve(subscriptionId=carded["subscription"]).plan.identifier == "pro"


def test_subscriptions_update(client, carded):
    p = client.subscriptions.preview_update(
        subscriptionId=carded["subscription"], planIdentifier="pro", chargePeriod="MONTHLY",
        features=[{"identifier": "team-size", "quantity": 3}],
    )
    u = client.subscriptions.update(
        subscriptionId=carded["subscription"], planIdentifier="pro", chargePeriod="MONTHLY",
        features=[{"identifier": "team-size", "quantity": 3}], prorationBehavior="IMMEDIATE_CHARGE",
    )
    assert u.subscriptionId == carded["subscription"]
    sub = client.subscriptions.retrieve(subscriptionId=carded["subscription"])
    assert sub.amount == "147.00"
    assert p.recurringAmountUnits == 14_700


def test_subscriptions_cancel_current_period_ends(client, carded):
    r = client.subscriptions.cancel(subscriptionId=carded["subscription"], cancellationType="CURRENT_PERIOD_ENDS")
    assert r.message
    sub = client.subscriptions.retrieve(subscriptionId=carded["subscription"])
    assert sub.status == "active" and sub.endDate


def _fresh_subscription(client, name, plan="pro"):
    customer = cid(name)
    client.customers.create(customerId=customer, email=f"{customer}@example.com")
    raw("POST", f"/api/v1/customers/{customer}/payment-methods/", {"token": "pm_card_visa"})
    return client.subscriptions.create(planIdentifier=plan, chargePeriod="MONTHLY", customerId=customer).id


def test_subscriptions_cancel_specific_date(client):
    sid = _fresh_subscription(client, "cancel-date")
    when = (datetime.date.today() + datetime.timedelta(days=10)).isoformat()
    r = client.subscriptions.cancel(subscriptionId=sid, cancellationType="SPECIFIC_DATE", cancellationDate=when)
    assert r.message
    assert client.subscriptions.retrieve(subscriptionId=sid).endDate == when


def test_subscriptions_cancel_immediate(client):
    sid = _fresh_subscription(client, "cancel-now")
    client.subscriptions.cancel(subscriptionId=sid, cancellationType="IMMEDIATE")
    assert client.subscriptions.retrieve(subscriptionId=sid).status == "canceled"


# ---- entitlements (edge) --------------------------------------------------------------------

def _on_enterprise(client):
    customer = cid("ent")
    if not any(c.customerId == customer for c in client.customers.list(page_size=100).results):
        client.customers.create(customerId=customer, email=f"{customer}@example.com")
        raw("POST", f"/api/v1/customers/{customer}/payment-methods/", {"token": "pm_card_visa"})
        client.subscriptions.create(planIdentifier="enterprise", chargePeriod="MONTHLY", customerId=customer)
    eventually("sso at the edge", lambda: client.entitlements.has_access(customerId=customer, featureId="sso"))
    return customer


def test_entitlements_has_access(client):
    customer = _on_enterprise(client)
    assert client.entitlements.has_access(customerId=customer, featureId="sso") is True
    assert client.entitlements.has_access(customerId=cid("nobody"), featureId="sso") is False


def test_entitlements_get_entitlement(client):
    customer = _on_enterprise(client)
    e = client.entitlements.get_entitlement(customerId=customer, featureId="team-size")
    assert e.featureType == "CUSTOMIZABLE" and e.usageLimit == 50 and e.items


def test_entitlements_get_entitlements(client):
    customer = _on_enterprise(client)
    all_ = client.entitlements.get_entitlements(customerId=customer)
    assert {"sso", "api-calls", "team-size"} <= set(all_)


def test_entitlements_get_raw_entitlement(client):
    customer = _on_enterprise(client)
    r = client.entitlements.get_raw_entitlement(customerId=customer, featureId="api-calls")
    assert r.customerId == customer
    assert [e.featureId for e in r.entitlements] == ["api-calls"]


def test_entitlements_get_raw_entitlements(client):
    customer = _on_enterprise(client)
    r = client.entitlements.get_raw_entitlements(customerId=customer)
    assert len(r.entitlements) >= 5 and all(e.featureId for e in r.entitlements)


# ---- reporting ------------------------------------------------------------------------------

def test_reporting_report_usage(client):
    customer = cid("usage")
    client.customers.create(customerId=customer, email=f"{customer}@example.com")
    r = client.reporting.report_usage(value=3, customerId=customer, featureId="api-calls", behaviour="DELTA", resourceId="r1")
    assert (r.value, r.behaviour, r.eventName, r.resourceId) == (3, "DELTA", "$usage.reported", "r1")
    assert r.orgId and r.idempotencyKey and r.timestamp
    eventually("usage at the edge", lambda: client.entitlements.get_entitlement(
        customerId=customer, featureId="api-calls").currentUsage == 3)


def test_reporting_report_event(client):
    customer = cid("events")
    client.customers.create(customerId=customer, email=f"{customer}@example.com")
    raw("POST", "/api/v1/features/", {"identifier": f"ev-{RUN}", "name": "Events", "type": "METER", "eventName": f"did.{RUN}"})
    ts = datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M:%S.%f")
    key = f"evt-{RUN}"
    r = client.reporting.report_event(customerId=customer, eventName=f"did.{RUN}", idempotencyKey=key, timestamp=ts, properties={"a": 1})
    assert (r.customerId, r.idempotencyKey, r.properties) == (customer, key, {"a": 1}) and r.orgId
    again = client.reporting.report_event(customerId=customer, eventName=f"did.{RUN}", idempotencyKey=key, timestamp=ts, properties={"a": 1})
    assert again.idempotencyKey == key
    eventually("the event counted once", lambda: client.entitlements.get_raw_entitlement(
        customerId=customer, featureId=f"ev-{RUN}").entitlements[0].currentUsage == 1)


# ---- payment methods, charges, refunds, transactions ----------------------------------------

def test_payment_methods_list(client, carded):
    page = client.payment_methods.list(customer_id=carded["customer"])
    assert page.count == 1
    pm = page.results[0]
    assert isinstance(pm.id, int) and pm.customer.customerId == carded["customer"]
    assert pm.isDefault and pm.status == "succeeded" and pm.methodType == "card"
    by_email = client.payment_methods.list(customer_email=f"{carded['customer']}@example.com")
    assert by_email.count == 1


@pytest.fixture(scope="module")
def charged(client):
    customer = cid("buyer")
    client.customers.create(customerId=customer, email=f"{customer}@example.com")
    raw("POST", f"/api/v1/customers/{customer}/payment-methods/", {"token": "pm_card_visa"})
    return client.charges.create(planIdentifier="sso-lifetime", chargePeriod="ONE_TIME", customerId=customer)


def test_charges_create(charged):
    assert charged.id and charged.billingType == "ONE_TIME" and charged.amount == "299.00"


def _order(charged):
    return raw("GET", f"/api/v1/subscriptions/{charged.id}/") and charged.id


def test_refunds_create(client, charged):
    r = client.refunds.create(orderId=_order(charged), amountUnits=1_000, reason="REQUESTED_BY_CUSTOMER", internalNote="n")
    assert (r.amountUnits, r.amount, r.status) == (1_000, 10.0, "SUCCEEDED")
    full = client.refunds.create(orderId=_order(charged))
    assert full.amountUnits == 29_900 - 1_000


def test_refunds_list(client, charged):
    page = client.refunds.list(search=charged.customerId, page_size=10)
    assert page.count >= 1 and all(r.status == "SUCCEEDED" for r in page.results)


def test_refunds_retrieve(client, charged):
    first = client.refunds.list(search=charged.customerId).results[0]
    assert client.refunds.retrieve(refundId=first.id).id == first.id


def test_transactions_list(client, charged):
    page = client.transactions.list(search=charged.customerId, page_size=50)
    kinds = sorted(t.transactionType for t in page.results)
    assert "CHARGE" in kinds
    assert all(t.currencySymbol == "$" and t.status in ("success", "failure") for t in page.results)


# ---- licenses -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def license_key(client):
    plan = f"desk-{RUN}"
    raw("POST", "/api/v1/plans/", {"identifier": plan, "name": "Desk", "group": f"desk-{RUN}",
                                   "prices": [{"chargePeriod": "MONTHLY", "amount": "5.00", "currency": "usd"}],
                                   "licenseActivationLimit": 1})
    customer = cid("licensed")
    client.customers.create(customerId=customer, email=f"{customer}@example.com")
    raw("POST", f"/api/v1/customers/{customer}/payment-methods/", {"token": "pm_card_visa"})
    sub = client.subscriptions.create(planIdentifier=plan, chargePeriod="MONTHLY", customerId=customer)
    assert sub.license and sub.license[0].activationLimit == 1
    return sub.license[0].licenseKey


def test_license_activate(client, license_key):
    a = client.license.activate(licenseKey=license_key, instanceName="laptop", metadata={"os": "linux"})
    assert a.instanceId and a.license.activationUsage == 1 and a.license.activationLimit == 1
    with pytest.raises(Exception):
        client.license.activate(licenseKey=license_key, instanceName="second")
    client.license.deactivate(licenseKey=license_key, instanceId=a.instanceId)


def test_license_validate(client, license_key):
    a = client.license.activate(licenseKey=license_key, instanceName="box")
    v = client.license.validate(licenseKey=license_key, instanceId=a.instanceId)
    assert v.valid and v.code == "VALID" and v.license.licenseKey == license_key
    assert client.license.validate(licenseKey="NOT-A-KEY").valid is False
    client.license.deactivate(licenseKey=license_key, instanceId=a.instanceId)


def test_license_deactivate(client, license_key):
    a = client.license.activate(licenseKey=license_key)
    d = client.license.deactivate(licenseKey=license_key, instanceId=a.instanceId)
    assert d.message and d.deactivatedAt


# ---- portal ----------------------------------------------------------------------------------

def test_portal_create_session(client, carded):
    s = client.portal.create_session(customerId=carded["customer"])
    assert s.token and s.customerPortalUrl.startswith("http") and s.email


# ---- webhooks: validate_event on real deliveries --------------------------------------------

class _Receiver(http.server.BaseHTTPRequestHandler):
    got = []

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        _Receiver.got.append((dict(self.headers.items()), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def receiver():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()


def test_webhook_validate_event(client, receiver):
    kelviq = raw("POST", "/api/v1/webhook-endpoints/", {"url": receiver + "?k", "events": ["customer.created"], "signatureScheme": "kelviq"})
    standard = raw("POST", "/api/v1/webhook-endpoints/", {"url": receiver + "?s", "events": ["customer.created"]})
    customer = cid("hooked")
    client.customers.create(customerId=customer, email=f"{customer}@example.com")

    def deliveries():
        mine = [(h, b) for h, b in _Receiver.got if json.loads(b)["data"].get("customerId") == customer]
        return mine if len(mine) >= 2 else None

    got = eventually("both deliveries", deliveries)
    verified = []
    for headers, body in got:
        try:
            verified.append(validate_event(body, headers, kelviq["secret"]))
        except WebhookVerificationError:
            with pytest.raises(WebhookVerificationError):
                validate_event(body, headers, standard["secret"])  # Standard Webhooks is not Kelviq's
    assert len(verified) == 1 and verified[0]["type"] == "customer.created"
    with pytest.raises(WebhookVerificationError):
        validate_event(got[0][1] + b" ", got[0][0], kelviq["secret"])
