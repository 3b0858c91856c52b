/**
 * Who is signed in, and the SDK client that acts for them. The JWT and the user it was issued
 * for are kept in localStorage, so a reload stays signed in without asking the API: `/auth/*`
 * is rate limited per address (SBX_AUTH_RATE_LIMIT), and a dashboard reloaded often must not
 * spend it. The first call that answers UNAUTHORIZED (the token expired or was revoked) signs
 * out. Logging out revokes the token on the API (`POST /auth/logout`), then forgets it here even
 * when that call fails: a person who asked to log out is logged out of this browser either way.
 */

import { SandboxClient } from "@sandbox-platform/sdk";
import type { User } from "@sandbox-platform/sdk";
import { createContext, useCallback, useContext, useMemo, useState } from "react";
import type { ReactNode } from "react";

import { isUnauthorized } from "./errors";

const SESSION_KEY = "sbx.session";
// How long logging out waits for the API to revoke the token before forgetting it anyway.
const LOGOUT_WAIT_MS = 5000;

interface Stored {
  token: string;
  user: User;
}

export type SessionState =
  | { status: "signed-out"; notice?: string | undefined }
  | { status: "signed-in"; user: User };

export interface Session {
  state: SessionState;
  client: SandboxClient;
  login: (email: string, password: string) => Promise<void>;
  signup: (email: string, password: string) => Promise<void>;
  /** Revoke the token on the API (best effort), then forget it here. */
  logout: () => Promise<void>;
  /** Change the password; the API revokes every earlier token and answers with a new one, kept. */
  changePassword: (currentPassword: string, newPassword: string) => Promise<void>;
  /** Call with any error: an UNAUTHORIZED one (expired or revoked token) signs out. */
  check: (error: unknown) => void;
}

const SessionContext = createContext<Session | undefined>(undefined);

function stored(): Stored | undefined {
  try {
    const text = window.localStorage.getItem(SESSION_KEY);
    if (text === null) return undefined;
    const value = JSON.parse(text) as Partial<Stored> | null;
    return typeof value?.token === "string" && typeof value.user?.email === "string"
      ? { token: value.token, user: value.user }
      : undefined;
  } catch {
    return undefined;
  }
}

function store(session: Stored | undefined): void {
  try {
    if (session === undefined) window.localStorage.removeItem(SESSION_KEY);
    else window.localStorage.setItem(SESSION_KEY, JSON.stringify(session));
  } catch {
    // Storage refused (private mode): the session lasts as long as the page.
  }
}

/** The API serves the dashboard, so it is at this page's own origin. */
export function newClient(token?: string): SandboxClient {
  return new SandboxClient({ baseUrl: window.location.origin, token, retry: { maxAttempts: 3 } });
}

export function SessionProvider({ children }: { children: ReactNode }) {
  const [initial] = useState(stored);
  const [client] = useState(() => newClient(initial?.token));
  const [state, setState] = useState<SessionState>(() =>
    initial ? { status: "signed-in", user: initial.user } : { status: "signed-out" },
  );

  const signedIn = useCallback(
    (token: string, user: User) => {
      client.token = token;
      store({ token, user });
      setState({ status: "signed-in", user });
    },
    [client],
  );

  const login = useCallback(
    async (email: string, password: string) => {
      const result = await client.login(email, password);
      signedIn(result.token, result.user);
    },
    [client, signedIn],
  );

  const signup = useCallback(
    async (email: string, password: string) => {
      const result = await client.signup(email, password);
      signedIn(result.token, result.user);
    },
    [client, signedIn],
  );

  const signOut = useCallback(
    (notice: string) => {
      client.token = undefined;
      store(undefined);
      setState({ status: "signed-out", notice });
    },
    [client],
  );

  const logout = useCallback(async () => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await Promise.race([
        client.logout(),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, LOGOUT_WAIT_MS);
        }),
      ]);
    } catch {
      // Unreachable API or a token already refused: forgetting it locally is what is left to do.
    } finally {
      clearTimeout(timer);
    }
    signOut("You are logged out.");
  }, [client, signOut]);

  const changePassword = useCallback(
    async (currentPassword: string, newPassword: string) => {
      const result = await client.changePassword(currentPassword, newPassword);
      signedIn(result.token, result.user);
    },
    [client, signedIn],
  );

  const check = useCallback(
    (error: unknown) => {
      if (isUnauthorized(error) && client.token !== undefined) signOut("Your session has ended. Log in again.");
    },
    [client, signOut],
  );

  const session = useMemo(
    () => ({ state, client, login, signup, logout, changePassword, check }),
    [state, client, login, signup, logout, changePassword, check],
  );
  return <SessionContext.Provider value={session}>{children}</SessionContext.Provider>;
}

export function useSession(): Session {
  const session = useContext(SessionContext);
  if (!session) throw new Error("useSession outside SessionProvider");
  return session;
}
