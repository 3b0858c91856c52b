/** API keys: create one (its key is shown once, to copy), list them, revoke one. */

import { useId, useState } from "react";
import type { SyntheticEvent } from "react";
import type { ApiKey, CreatedApiKey } from "@sandbox-platform/sdk";

import { CopyButton } from "../components/CopyButton";
import { ErrorMessage, Loading, Spinner } from "../components/Feedback";
import { problemsUnder } from "../errors";
import { formatAgo, formatExpiry, formatTime, parseExpiryDays } from "../format";
import { useAction, useLoad } from "../hooks";
import { useSession } from "../session";

function RevokeButton({ apiKey, onRevoked }: { apiKey: ApiKey; onRevoked: () => void }) {
  const { client } = useSession();
  const action = useAction();
  const revoke = async () => {
    if (!window.confirm(`Revoke the key "${apiKey.name}"? Programs using it stop working at once.`)) return;
    const done = await action.run(() => client.revokeApiKey(apiKey.id));
    if (done) onRevoked();
  };
  return (
    <>
      <button type="button" className="danger" onClick={revoke} disabled={action.pending} aria-label={`Revoke ${apiKey.name}`}>
        {action.pending && <Spinner label="Revoking" />} Revoke
      </button>
      <ErrorMessage error={action.error} />
    </>
  );
}

export function ApiKeysPage() {
  const { client } = useSession();
  const keys = useLoad(() => client.listApiKeys(), [client]);
  const create = useAction();
  const id = useId();
  const [name, setName] = useState("");
  const [days, setDays] = useState("");
  const [problem, setProblem] = useState<string | undefined>(undefined);
  const [created, setCreated] = useState<CreatedApiKey | undefined>(undefined);
  const daysProblems = [
    ...(problem ? [problem] : []),
    ...problemsUnder(create.error, "expiresInDays").map((p) => `Expires in days: ${p.message}`),
  ];

  const submit = async (event: SyntheticEvent<HTMLFormElement>) => {
    event.preventDefault();
    let expiresInDays;
    try {
      expiresInDays = parseExpiryDays(days);
    } catch (failure) {
      setProblem((failure as Error).message);
      return;
    }
    setProblem(undefined);
    const key = await create.run(() => client.createApiKey(name, expiresInDays === undefined ? {} : { expiresInDays }));
    if (key) {
      setCreated(key);
      setName("");
      setDays("");
      keys.reload();
    }
  };
  const now = Date.now();

  return (
    <section>
      <h1>API keys</h1>
      <p className="hint">Programs use an API key instead of your password: send it as <code>Authorization: Bearer sk_…</code>.</p>
      <form onSubmit={submit} className="form inline" aria-label="New API key">
        <label>
          Name
          <input required maxLength={100} value={name} onChange={(e) => { setName(e.target.value); }} placeholder="ci-runner" />
        </label>
        <label>
          Expires in days (optional)
          <input
            type="number"
            inputMode="numeric"
            min={1}
            max={3650}
            step={1}
            value={days}
            onChange={(e) => { setDays(e.target.value); }}
            placeholder="never"
            aria-invalid={daysProblems.length > 0}
            aria-describedby={daysProblems.length > 0 ? `${id}-days` : undefined}
          />
        </label>
        <button type="submit" className="primary" disabled={create.pending}>
          {create.pending && <Spinner label="Creating" />} Create key
        </button>
      </form>
      {daysProblems.length > 0 && (
        <div className="error" role="alert" id={`${id}-days`}>
          {daysProblems.map((text) => (
            <p key={text}>{text}</p>
          ))}
        </div>
      )}
      <ErrorMessage error={create.error} shownOnFields={["expiresInDays"]} />
      {created && (
        <div className="reveal" role="status">
          <p>
            <strong>Copy the key &quot;{created.name}&quot; now:</strong> it is shown only this once.
          </p>
          <div className="reveal-row">
            <code className="secret-value" data-testid="new-api-key">{created.key}</code>
            <CopyButton text={created.key} />
            <button type="button" onClick={() => { setCreated(undefined); }}>
              Done
            </button>
          </div>
        </div>
      )}
      <h2>Your keys</h2>
      {keys.loading && !keys.data ? (
        <Loading />
      ) : (
        <>
          <ErrorMessage error={keys.error} />
          {keys.data?.length === 0 && <p>No API keys yet.</p>}
          {keys.data && keys.data.length > 0 && (
            <div className="table-wrap">
              <table>
                <thead>
                  <tr>
                    <th scope="col">Name</th>
                    <th scope="col">Key</th>
                    <th scope="col">Created</th>
                    <th scope="col">Last used</th>
                    <th scope="col">Expires</th>
                    <th scope="col">
                      <span className="visually-hidden">Actions</span>
                    </th>
                  </tr>
                </thead>
                <tbody>
                  {keys.data.map((key) => {
                    const expiry = formatExpiry(key.expiresAt, now);
                    return (
                      <tr key={key.id} className={expiry.expired ? "expired" : undefined} data-expired={expiry.expired}>
                        <td>{key.name}</td>
                        <td>
                          <code>{key.keyPrefix}…</code>
                        </td>
                        <td title={formatTime(key.createdAt)}>{formatAgo(key.createdAt)}</td>
                        <td>{key.lastUsedAt ? formatAgo(key.lastUsedAt) : "never"}</td>
                        <td title={key.expiresAt ? formatTime(key.expiresAt) : undefined} data-testid="key-expiry">
                          {key.expiresAt && <time dateTime={key.expiresAt}>{expiry.text}</time>}
                          {!key.expiresAt && expiry.text}
                          {expiry.expired && <span className="tag danger">expired</span>}
                        </td>
                        <td>
                          <RevokeButton apiKey={key} onRevoked={keys.reload} />
                        </td>
                      </tr>
                    );
                  })}
                </tbody>
              </table>
            </div>
          )}
        </>
      )}
    </section>
  );
}
