"""Schemathesis hooks for Tollgate's fuzz run (loaded through SCHEMATHESIS_HOOKS).

Idempotency-Key: the API replays a key's first answer and refuses (422) the same key with a
different body, which is exactly right, but the generator reuses the few values it likes for
a header ("0", "") across unrelated requests. Each request gets a fresh key instead, so every
generated request is judged on its own merits. Replays themselves are tested in the Rust suite.
"""

import uuid

import schemathesis


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    if case.headers is not None and "Idempotency-Key" in case.headers:
        case.headers["Idempotency-Key"] = str(uuid.uuid4())
