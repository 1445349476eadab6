// Vitest's global setup: one real stack (control plane + edge) for the React tests.
import { startStack } from "../../js/test/stack.mjs";

let stack;

export async function setup({ provide }) {
  stack = await startStack();
  provide("stack", {
    controlPlane: stack.controlPlane,
    edge: stack.edge,
    secretKey: stack.secretKey,
    publishableKey: stack.publishableKey,
  });
}

export async function teardown() {
  stack?.stop();
}
