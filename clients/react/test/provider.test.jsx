// @tollgate/react in jsdom against a real edge fed by a real control plane (vitest's global
// setup starts both): useEntitlement renders the customer's state, and re-renders when a change
// made at the control plane is pushed over the edge's event stream.
import { afterEach, expect, inject, test } from "vitest";
import { act, cleanup, render, screen, waitFor } from "@testing-library/react";
import { randomBytes } from "node:crypto";

import { TollgateProvider, useEntitlement, useEntitlements, useTollgate } from "../dist/esm/index.js";

const stack = inject("stack");
const RUN = randomBytes(4).toString("hex");

afterEach(cleanup);

async function write(method, path, body) {
  const r = await fetch(stack.controlPlane + path, {
    method,
    headers: { Authorization: `Bearer ${stack.secretKey}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${text}`);
  return text ? JSON.parse(text) : {};
}

async function customer(name) {
  const customerId = `react-${RUN}-${name}`;
  await write("POST", "/api/v1/customers/", { customerId, email: `${customerId}@example.com` });
  await write("POST", `/api/v1/customers/${customerId}/payment-methods/`, { token: "pm_card_visa" });
  return customerId;
}

let renders = 0;

function ExportButton() {
  renders += 1;
  const { hasAccess, loading, entitlement } = useEntitlement("export-data");
  if (loading) return <p>loading</p>;
  return <button disabled={!hasAccess}>{hasAccess ? "Export" : `Upgrade to export (${entitlement?.featureType})`}</button>;
}

function Calls() {
  const { entitlement } = useEntitlement("api-calls");
  return <p data-testid="calls">{entitlement ? `${entitlement.currentUsage}/${entitlement.usageLimit}` : "-"}</p>;
}

test("useEntitlement renders the customer's access and re-renders on a pushed change", async () => {
  const id = await customer("upgrade");
  render(
    <TollgateProvider edgeUrl={stack.edge} publishableKey={stack.publishableKey} customerId={id}>
      <ExportButton />
      <Calls />
    </TollgateProvider>,
  );
  expect(screen.getByText("loading")).toBeTruthy();
  const button = await screen.findByRole("button", {}, { timeout: 20_000 });
  expect(button.textContent).toBe("Upgrade to export (BOOLEAN)");
  expect(button.disabled).toBe(true);
  await waitFor(() => expect(screen.getByTestId("calls").textContent).toBe("0/100"), { timeout: 20_000 });
  const before = renders;

  // An upgrade at the control plane: the edge pushes it, the component follows.
  await act(() => write("POST", "/api/v1/subscribe/", { customerId: id, planIdentifier: "pro", chargePeriod: "MONTHLY" }));
  await waitFor(() => expect(screen.getByRole("button").textContent).toBe("Export"), { timeout: 20_000 });
  expect(screen.getByRole("button").disabled).toBe(false);
  expect(renders).toBeGreaterThan(before);
  await waitFor(() => expect(screen.getByTestId("calls").textContent).toBe("0/10000"), { timeout: 20_000 });

  await act(() => write("POST", "/api/v1/usage/", { customerId: id, featureId: "api-calls", quantity: 12 }));
  await waitFor(() => expect(screen.getByTestId("calls").textContent).toBe("12/10000"), { timeout: 20_000 });
});

test("useEntitlements and useTollgate: the whole state, and the client for one-off reads", async () => {
  const id = await customer("whole");
  let client;
  function Whole() {
    client = useTollgate();
    const { entitlements, loading } = useEntitlements();
    return <p data-testid="whole">{loading ? "…" : entitlements.entitlements.map((e) => e.featureId).join(",")}</p>;
  }
  render(
    <TollgateProvider edgeUrl={stack.edge} publishableKey={stack.publishableKey} customerId={id}>
      <Whole />
    </TollgateProvider>,
  );
  await waitFor(() => expect(screen.getByTestId("whole").textContent).toContain("api-calls"), { timeout: 20_000 });
  expect((await client.getEntitlements(id)).customerId).toBe(id);
});

test("a bad key reports the error instead of loading forever", async () => {
  function Status() {
    const { loading, error } = useEntitlement("export-data");
    return <p data-testid="status">{loading ? "loading" : error ? `error ${error.status}` : "ok"}</p>;
  }
  render(
    <TollgateProvider edgeUrl={stack.edge} publishableKey="pk_test_nobodyHasThisKey00000000" customerId="x">
      <Status />
    </TollgateProvider>,
  );
  await waitFor(() => expect(screen.getByTestId("status").textContent).toBe("error 401"), { timeout: 20_000 });
});

test("hooks outside the provider say so", () => {
  function Lost() {
    useEntitlement("x");
    return null;
  }
  expect(() => render(<Lost />)).toThrow(/inside <TollgateProvider>/);
});
