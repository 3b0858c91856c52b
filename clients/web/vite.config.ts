// Vite builds the dashboard into dist/, which the API serves at /ui/ (SBX_UI_DIR).
import react from "@vitejs/plugin-react";
import { defineConfig } from "vitest/config";

export default defineConfig({
  base: "/ui/",
  plugins: [react()],
  build: {
    outDir: "dist",
    emptyOutDir: true,
    // Never inline assets as data: URLs: the API's Content-Security-Policy allows 'self' only.
    assetsInlineLimit: 0,
    sourcemap: true,
    chunkSizeWarningLimit: 1024,
  },
  server: {
    // `npm run dev`: the API answers the dashboard's requests (same origin as in production).
    proxy: {
      "^/(auth|api-keys|environments|sandboxes|events|health|audit|docs|redoc|openapi.json)": "http://127.0.0.1:3001",
      "/ws": { target: "ws://127.0.0.1:3001", ws: true },
    },
  },
  test: {
    include: ["src/**/*.test.ts"],
    environment: "node",
  },
});
