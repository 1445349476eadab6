import { defineConfig } from "vitest/config";

// React in jsdom, against a real edge the global setup starts (clients/js/test/stack.mjs).
export default defineConfig({
  test: {
    environment: "jsdom",
    globalSetup: ["./test/setup.mjs"],
    include: ["test/**/*.test.jsx"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
  esbuild: { jsx: "automatic" },
});
