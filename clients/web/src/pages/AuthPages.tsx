/** Log in and sign up: one form each, with the API's own messages on failure. */

import { useState } from "react";
import type { SyntheticEvent } from "react";
import { Link, Navigate, useLocation } from "react-router";

import { ErrorMessage, Spinner } from "../components/Feedback";
import { useAction } from "../hooks";
import { useSession } from "../session";

function destination(state: unknown): string {
  const from = (state as { from?: unknown } | null)?.from;
  return typeof from === "string" && from.startsWith("/") && from !== "/login" ? from : "/sandboxes";
}

function AuthForm({ mode }: { mode: "login" | "signup" }) {
  const session = useSession();
  const location = useLocation();
  const action = useAction();
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");

  if (session.state.status === "signed-in") return <Navigate to={destination(location.state)} replace />;

  const submit = async (event: SyntheticEvent<HTMLFormElement>) => {
    event.preventDefault();
    await action.run(() => (mode === "login" ? session.login(email, password) : session.signup(email, password)));
  };
  const title = mode === "login" ? "Log in" : "Sign up";
  const { notice } = session.state;

  return (
    <section className="auth">
      <h1>{title}</h1>
      {notice && <p className="notice">{notice}</p>}
      <form onSubmit={submit} className="form" aria-label={title}>
        <label>
          Email
          <input type="email" name="email" autoComplete="email" required value={email} onChange={(e) => { setEmail(e.target.value); }} />
        </label>
        <label>
          Password
          <input
            type="password"
            name="password"
            autoComplete={mode === "login" ? "current-password" : "new-password"}
            required
            minLength={mode === "signup" ? 8 : undefined}
            maxLength={128}
            value={password}
            onChange={(e) => { setPassword(e.target.value); }}
          />
        </label>
        {mode === "signup" && <p className="hint">8 to 128 characters.</p>}
        <ErrorMessage error={action.error} />
        <button type="submit" className="primary" disabled={action.pending}>
          {action.pending && <Spinner label={`${title}…`} />} {title}
        </button>
      </form>
      <p>
        {mode === "login" ? (
          <>
            No account yet? <Link to="/signup">Sign up</Link>
          </>
        ) : (
          <>
            Already have an account? <Link to="/login">Log in</Link>
          </>
        )}
      </p>
    </section>
  );
}

export function LoginPage() {
  return <AuthForm mode="login" />;
}

export function SignupPage() {
  return <AuthForm mode="signup" />;
}
