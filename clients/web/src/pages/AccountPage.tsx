/** The account: who is signed in, and changing the password (which ends every other session). */

import { useId, useState } from "react";
import type { SyntheticEvent } from "react";

import { ErrorMessage, Spinner } from "../components/Feedback";
import { problemsUnder } from "../errors";
import { useAction } from "../hooks";
import { useSession } from "../session";

/** The API's problems with one field, under it (referenced by the input's aria-describedby). */
function FieldProblems({ id, messages }: { id: string; messages: string[] }) {
  if (messages.length === 0) return null;
  return (
    <span className="field-problems" id={id} role="alert">
      {messages.join(" ")}
    </span>
  );
}

function PasswordForm() {
  const id = useId();
  const { changePassword } = useSession();
  const action = useAction();
  const [current, setCurrent] = useState("");
  const [next, setNext] = useState("");
  const [again, setAgain] = useState("");
  const [problem, setProblem] = useState<string | undefined>(undefined);
  const [done, setDone] = useState(false);

  const currentProblems = problemsUnder(action.error, "currentPassword").map((p) => p.message);
  const nextProblems = problemsUnder(action.error, "newPassword").map((p) => p.message);

  const submit = async (event: SyntheticEvent<HTMLFormElement>) => {
    event.preventDefault();
    setDone(false);
    if (next !== again) {
      setProblem("The new password and its repetition differ.");
      return;
    }
    setProblem(undefined);
    const changed = await action.run(async () => {
      await changePassword(current, next);
      return true;
    });
    if (changed) {
      setCurrent("");
      setNext("");
      setAgain("");
      setDone(true);
    }
  };

  return (
    <form onSubmit={submit} className="form" aria-label="Change password">
      <label>
        Current password
        <input
          type="password"
          autoComplete="current-password"
          required
          maxLength={1024}
          value={current}
          onChange={(e) => { setCurrent(e.target.value); }}
          aria-invalid={currentProblems.length > 0}
          aria-describedby={currentProblems.length > 0 ? `${id}-current` : undefined}
        />
        <FieldProblems id={`${id}-current`} messages={currentProblems} />
      </label>
      <label>
        New password
        <input
          type="password"
          autoComplete="new-password"
          required
          minLength={8}
          maxLength={128}
          value={next}
          onChange={(e) => { setNext(e.target.value); }}
          aria-invalid={nextProblems.length > 0}
          aria-describedby={nextProblems.length > 0 ? `${id}-next` : undefined}
        />
        <FieldProblems id={`${id}-next`} messages={nextProblems} />
      </label>
      <label>
        Repeat the new password
        <input type="password" autoComplete="new-password" required minLength={8} maxLength={128} value={again} onChange={(e) => { setAgain(e.target.value); }} />
      </label>
      <p className="hint">8 to 128 characters. Every other session and browser is logged out; this one stays signed in.</p>
      {problem && (
        <div className="error" role="alert">
          <p>{problem}</p>
        </div>
      )}
      <ErrorMessage error={action.error} shownOnFields={["currentPassword", "newPassword"]} />
      {done && (
        <p className="notice" role="status">
          Password changed. Sessions signed in with the old one have ended.
        </p>
      )}
      <button type="submit" className="primary" disabled={action.pending}>
        {action.pending && <Spinner label="Changing the password" />} Change password
      </button>
    </form>
  );
}

export function AccountPage() {
  const { state } = useSession();
  return (
    <section>
      <h1>Account</h1>
      {state.status === "signed-in" && (
        <p>
          Signed in as <strong>{state.user.email}</strong>.
        </p>
      )}
      <div className="panel">
        <h2>Change password</h2>
        <PasswordForm />
      </div>
    </section>
  );
}
