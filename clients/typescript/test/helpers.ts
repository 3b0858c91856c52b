/**
 * What the tests against a running platform share: where it is (`SBX_API_URL`, `SBX_WS_URL`,
 * `SBX_TEST_IMAGE`), a fresh user per test, and waiting for conditions with a deadline.
 */

import { randomUUID } from "node:crypto";

import WebSocket from "ws";

import { SandboxApiError, SandboxClient } from "../src/index.js";
import type { Environment, EnvironmentConfig, SandboxClientOptions } from "../src/index.js";

function requiredEnv(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} must be set: these tests run against a running platform.`);
  return value;
}

export const platform = {
  get apiUrl(): string {
    return requiredEnv("SBX_API_URL");
  },
  get wsUrl(): string | undefined {
    return process.env.SBX_WS_URL;
  },
  get testImage(): string {
    return requiredEnv("SBX_TEST_IMAGE");
  },
};

export const PASSWORD = "correct horse battery";

/** Longest a suite may run: a stream that hangs fails it instead of holding up the run. */
export const TEST_TIMEOUT_MS = 600_000;

/** A client of the platform under test (Node 20 has no global WebSocket: `ws` stands in). */
export function newClient(options: Partial<SandboxClientOptions> = {}): SandboxClient {
  return new SandboxClient({ baseUrl: platform.apiUrl, wsUrl: platform.wsUrl, WebSocket, ...options });
}

export function uniqueEmail(): string {
  return `ts-sdk-${randomUUID().slice(0, 12)}@example.com`;
}

/** A client signed up as a new user (each test has its own, so tests never share state). */
export async function newUser(options: Partial<SandboxClientOptions> = {}): Promise<SandboxClient> {
  const client = newClient(options);
  await client.signup(uniqueEmail(), PASSWORD);
  return client;
}

export function environmentConfig(overrides: Partial<EnvironmentConfig> = {}): EnvironmentConfig {
  return {
    name: `env-${randomUUID().slice(0, 8)}`,
    image: platform.testImage,
    cpu: 0.5,
    memory: 64,
    ...overrides,
  };
}

export function createEnvironment(client: SandboxClient, overrides: Partial<EnvironmentConfig> = {}): Promise<Environment> {
  return client.createEnvironment(environmentConfig(overrides));
}

/** A `ws` WebSocket class that records its sockets, so a test can cut them like a network would. */
export function trackedWebSocket(): { WebSocket: new (address: string) => WebSocket; sockets: WebSocket[] } {
  const sockets: WebSocket[] = [];
  class Tracked extends WebSocket {
    constructor(address: string) {
      super(address);
      sockets.push(this);
    }
  }
  return { WebSocket: Tracked, sockets };
}

/** Call `probe` until it returns something other than undefined, or fail after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  { timeoutMs = 60_000, intervalMs = 200 }: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      const detail = lastError instanceof Error ? ` (last error: ${lastError.message})` : "";
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail}`);
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** The next item of `iterator`, or a failure naming `what` after `timeoutMs`. */
export async function nextWithin<T>(iterator: AsyncIterator<T>, what: string, timeoutMs = 60_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => {
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
    }, timeoutMs);
  });
  try {
    const result = await Promise.race([iterator.next(), timeout]);
    if (result.done === true) throw new Error(`the stream ended while waiting for ${what}`);
    return result.value;
  } finally {
    clearTimeout(timer);
  }
}

/** The `SandboxApiError` that `action` rejects with (fails when it succeeds or throws something else). */
export async function apiError(action: () => Promise<unknown>): Promise<SandboxApiError> {
  try {
    await action();
  } catch (error) {
    if (error instanceof SandboxApiError) return error;
    throw error;
  }
  throw new Error("expected a SandboxApiError, the call succeeded");
}

/** Destroy what a test created, whatever state it is in (clean-up must not hide the failure). */
export async function destroyQuietly(client: SandboxClient, ...ids: (string | undefined)[]): Promise<void> {
  for (const id of ids) {
    if (id === undefined) continue;
    try {
      await client.destroySandbox(id);
    } catch {
      // Already destroyed, or the test's failure already says what went wrong.
    }
  }
}
