/**
 * Who is signed in, and the SDK client that acts for them. The JWT is kept in localStorage so
 * a reload stays signed in; logging out forgets it here (the API has no logout route yet: the
 * token expires by itself after SBX_JWT_TTL_HOURS).
 */

import { SandboxClient } from "@sandbox-platform/sdk";
import type { User } from "@sandbox-platform/sdk";
import { createContext, useCallback, useContext, useEffect, useMemo, useState } from "react";
import type { ReactNode } from "react";

import { isUnauthorized } from "./errors";

const TOKEN_KEY = "sbx.token";

export type SessionState =
  | { status: "loading" }
  | { status: "signed-out"; notice?: string | undefined }
  | { status: "signed-in"; user: User };

export interface Session {
  state: SessionState;
  client: SandboxClient;
  login: (email: string, password: string) => Promise<void>;
  signup: (email: string, password: string) => Promise<void>;
  logout: () => void;
  /** Call with any error: an UNAUTHORIZED one (expired or revoked token) signs out. */
  check: (error: unknown) => void;
}

const SessionContext = createContext<Session | undefined>(undefined);

function storedToken(): string | undefined {
  try {
    return window.localStorage.getItem(TOKEN_KEY) ?? undefined;
  } catch {
    return undefined;
  }
}

function storeToken(token: string | undefined): void {
  try {
    if (token === undefined) window.localStorage.removeItem(TOKEN_KEY);
    else window.localStorage.setItem(TOKEN_KEY, token);
  } catch {
    // Storage refused (private mode): the session lasts as long as the page.
  }
}

/** The API serves the dashboard, so it is at this page's own origin. */
export function newClient(token?: string): SandboxClient {
  return new SandboxClient({ baseUrl: window.location.origin, token, retry: { maxAttempts: 3 } });
}

export function SessionProvider({ children }: { children: ReactNode }) {
  const [client] = useState(() => newClient(storedToken()));
  const [state, setState] = useState<SessionState>(() =>
    client.token === undefined ? { status: "signed-out" } : { status: "loading" },
  );

  useEffect(() => {
    if (client.token === undefined) return;
    let live = true;
    client.me().then(
      (user) => {
        if (live) setState({ status: "signed-in", user });
      },
      (error: unknown) => {
        if (!live) return;
        if (isUnauthorized(error)) {
          client.token = undefined;
          storeToken(undefined);
          setState({ status: "signed-out", notice: "Your session has ended. Log in again." });
        } else {
          // The platform is down or slow: stay signed in with what is known; pages show the error.
          setState({ status: "signed-in", user: { id: "", email: "", createdAt: "" } });
        }
      },
    );
    return () => {
      live = false;
    };
  }, [client]);

  const login = useCallback(
    async (email: string, password: string) => {
      const result = await client.login(email, password);
      storeToken(result.token);
      setState({ status: "signed-in", user: result.user });
    },
    [client],
  );

  const signup = useCallback(
    async (email: string, password: string) => {
      const result = await client.signup(email, password);
      storeToken(result.token);
      setState({ status: "signed-in", user: result.user });
    },
    [client],
  );

  const logout = useCallback(() => {
    client.token = undefined;
    storeToken(undefined);
    setState({ status: "signed-out", notice: "You are logged out." });
  }, [client]);

  const check = useCallback(
    (error: unknown) => {
      if (!isUnauthorized(error) || client.token === undefined) return;
      client.token = undefined;
      storeToken(undefined);
      setState({ status: "signed-out", notice: "Your session has ended. Log in again." });
    },
    [client],
  );

  const session = useMemo(() => ({ state, client, login, signup, logout, check }), [state, client, login, signup, logout, check]);
  return <SessionContext.Provider value={session}>{children}</SessionContext.Provider>;
}

export function useSession(): Session {
  const session = useContext(SessionContext);
  if (!session) throw new Error("useSession outside SessionProvider");
  return session;
}
