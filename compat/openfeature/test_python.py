"""OpenFeature's Python SDK (PyPI openfeature-sdk) with its OFREP provider (PyPI
openfeature-provider-ofrep), unchanged, against a Tollgate edge fed by a real control plane.

The provider evaluates one flag per call (POST /ofrep/v1/evaluate/flags/{key}); the context's
targeting key is the customer id. Started by compat/openfeature/run.sh, which exports
TOLLGATE_URL, TOLLGATE_EDGE_URL, TOLLGATE_SECRET_KEY and TOLLGATE_PUBLISHABLE_KEY. Customers are
made over plain HTTP: the SDK only reads.
"""

import os
import time
import uuid

import pytest
import requests

from openfeature import api
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason

CP = os.environ["TOLLGATE_URL"]
EDGE = os.environ["TOLLGATE_EDGE_URL"]
SK = os.environ["TOLLGATE_SECRET_KEY"]
PK = os.environ["TOLLGATE_PUBLISHABLE_KEY"]
RUN = uuid.uuid4().hex[:8]
UNLIMITED = 2**53 - 1


def write(method, path, body):
    r = requests.request(method, CP + path, json=body, headers={"Authorization": f"Bearer {SK}"}, timeout=10)
    assert r.status_code < 300, f"{method} {path}: {r.status_code} {r.text}"
    version = r.headers.get("tollgate-version")
    return r.json(), None if version is None else int(version)


def edge_entitlement(customer, feature):
    r = requests.get(
        f"{EDGE}/api/v1/entitlements/{feature}/",
        params={"customerId": customer},
        headers={"Authorization": f"Bearer {PK}"},
        timeout=10,
    )
    return r.json() if r.status_code == 200 else None


def eventually(what, check, timeout=20.0):
    deadline = time.time() + timeout
    while True:
        v = check()
        if v:
            return v
        if time.time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def customer(name, plan=None, usage=0):
    cid = f"py-{RUN}-{name}"
    write("POST", "/api/v1/customers/", {"customerId": cid, "email": f"{cid}@example.com"})
    if plan:
        write("POST", f"/api/v1/customers/{cid}/payment-methods/", {"token": "pm_card_visa"})
        write("POST", "/api/v1/subscribe/", {"customerId": cid, "planIdentifier": plan, "chargePeriod": "MONTHLY"})
    if usage:
        write("POST", "/api/v1/usage/", {"customerId": cid, "featureId": "api-calls", "quantity": usage})

    def arrived():
        e = edge_entitlement(cid, "api-calls")
        if not e or e.get("currentUsage") != usage:
            return False
        return plan != "pro" or edge_entitlement(cid, "export-data")["hasAccess"]

    eventually(f"{cid} at the edge", arrived)
    return cid


@pytest.fixture(scope="module")
def client():
    api.set_provider(OFREPProvider(EDGE, headers_factory=lambda: {"Authorization": f"Bearer {PK}"}))
    yield api.get_client()
    api.shutdown()


@pytest.fixture(scope="module")
def ids():
    return {
        "free": customer("free"),
        "pro": customer("pro", plan="pro", usage=5),
        "ent": customer("ent", plan="enterprise"),
    }


def ctx(cid):
    return EvaluationContext(targeting_key=cid, attributes={"email": "someone@example.com"})


def test_booleans(client, ids):
    free = client.get_boolean_details("export-data", True, ctx(ids["free"]))
    assert free.value is False
    assert free.reason == Reason.TARGETING_MATCH
    assert free.variant == "off"
    assert free.error_code is None
    assert client.get_boolean_value("export-data", False, ctx(ids["pro"])) is True
    assert client.get_boolean_value("sso", False, ctx(ids["ent"])) is True
    nobody = client.get_boolean_details("sso", True, ctx(f"py-{RUN}-never-seen"))
    assert (nobody.value, nobody.reason) == (False, Reason.STATIC)


def test_integers(client, ids):
    assert client.get_integer_value("api-calls.limit", 0, ctx(ids["free"])) == 100
    assert client.get_integer_value("api-calls.limit", 0, ctx(ids["pro"])) == 10000
    assert client.get_integer_value("api-calls.remaining", 0, ctx(ids["pro"])) == 9995
    assert client.get_integer_value("team-size.limit", 0, ctx(ids["ent"])) == 50
    unlimited = client.get_integer_details("api-calls.limit", 0, ctx(ids["ent"]))
    assert (unlimited.value, unlimited.variant) == (UNLIMITED, "unlimited")


def test_metadata(client, ids):
    d = client.get_boolean_details("api-calls", False, ctx(ids["pro"]))
    assert d.value is True
    m = d.flag_metadata
    assert m["featureType"] == "METER"
    assert (m["usageLimit"], m["currentUsage"], m["remaining"]) == (10000, 5, 9995)
    assert m["resetAt"].endswith("Z")
    team = client.get_boolean_details("team-size", False, ctx(ids["pro"]))
    assert team.flag_metadata == {"featureType": "CUSTOMIZABLE", "usageLimit": 5}


def test_missing_flag(client, ids):
    d = client.get_boolean_details("no-such-feature", True, ctx(ids["pro"]))
    assert d.value is True
    assert d.error_code == ErrorCode.FLAG_NOT_FOUND
    assert d.reason == Reason.ERROR
    n = client.get_integer_details("sso.limit", 7, ctx(ids["pro"]))
    assert (n.value, n.error_code) == (7, ErrorCode.FLAG_NOT_FOUND)


def test_missing_targeting_key(client):
    d = client.get_boolean_details("export-data", True, EvaluationContext(attributes={"email": "x@example.com"}))
    assert d.value is True
    assert d.error_code == ErrorCode.TARGETING_KEY_MISSING
    e = client.get_boolean_details("export-data", True)
    assert e.error_code == ErrorCode.TARGETING_KEY_MISSING


def test_type_mismatch(client, ids):
    # An integer flag read as a boolean. (A boolean read as an integer passes the provider's
    # check: Python's bool is an int.)
    d = client.get_boolean_details("api-calls.limit", False, ctx(ids["pro"]))
    assert (d.value, d.error_code) == (False, ErrorCode.TYPE_MISMATCH)


def test_read_your_writes(ids):
    """The write's Tollgate-Version, sent as Tollgate-Min-Version: the next read sees it."""
    _, version = write("POST", "/api/v1/usage/", {"customerId": ids["free"], "featureId": "api-calls", "quantity": 2})
    if version is None:
        pytest.skip("SKIPPED: this control plane answers writes without Tollgate-Version")
    provider = OFREPProvider(
        EDGE,
        headers_factory=lambda: {"Authorization": f"Bearer {PK}", "Tollgate-Min-Version": str(version)},
    )
    api.set_provider(provider, domain="ryw")
    d = api.get_client("ryw").get_boolean_details("api-calls", False, ctx(ids["free"]))
    assert d.flag_metadata["currentUsage"] == 2
