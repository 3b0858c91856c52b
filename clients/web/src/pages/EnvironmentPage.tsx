/** One environment: its current version, editing (a new version), versions compared, secrets. */

import { useState } from "react";
import type { SyntheticEvent } from "react";
import { Link, useNavigate, useParams } from "react-router";
import type { Environment, EnvironmentPatch, EnvironmentVersion } from "@sandbox-platform/sdk";

import { EnvironmentForm } from "../components/EnvironmentForm";
import { ErrorMessage, Loading, Spinner } from "../components/Feedback";
import { describeVersion, diffVersions } from "../envdiff";
import { formatAgo, formatTime } from "../format";
import { useAction, useLoad } from "../hooks";
import { useSession } from "../session";

function Settings({ version }: { version: EnvironmentVersion | Environment }) {
  const fields = describeVersion(version);
  return (
    <dl className="settings">
      {Object.entries(fields).map(([field, value]) => (
        <div key={field}>
          <dt>{field}</dt>
          <dd>
            <code>{value}</code>
          </dd>
        </div>
      ))}
    </dl>
  );
}

function Versions({ versions, current }: { versions: EnvironmentVersion[]; current: number }) {
  const [left, setLeft] = useState(Math.max(1, current - 1));
  const [right, setRight] = useState(current);
  const a = versions.find((v) => v.version === left);
  const b = versions.find((v) => v.version === right);
  const changes = a && b ? diffVersions(a, b) : [];
  return (
    <div>
      <ol className="versions">
        {versions.map((v) => (
          <li key={v.version}>
            <strong>v{v.version}</strong> <span title={formatTime(v.createdAt)}>{formatAgo(v.createdAt)}</span>
            {v.version === current && <span className="tag">current</span>}
          </li>
        ))}
      </ol>
      {versions.length > 1 && (
        <div className="compare">
          <h3>Compare</h3>
          <div className="form inline">
            <label>
              From
              <select value={left} onChange={(e) => { setLeft(Number(e.target.value)); }}>
                {versions.map((v) => (
                  <option key={v.version} value={v.version}>
                    v{v.version}
                  </option>
                ))}
              </select>
            </label>
            <label>
              To
              <select value={right} onChange={(e) => { setRight(Number(e.target.value)); }}>
                {versions.map((v) => (
                  <option key={v.version} value={v.version}>
                    v{v.version}
                  </option>
                ))}
              </select>
            </label>
          </div>
          {changes.length === 0 ? (
            <p>These versions have the same settings.</p>
          ) : (
            <div className="table-wrap">
              <table className="diff" aria-label={`Changes from v${left} to v${right}`}>
                <thead>
                  <tr>
                    <th scope="col">Field</th>
                    <th scope="col">v{left}</th>
                    <th scope="col">v{right}</th>
                  </tr>
                </thead>
                <tbody>
                  {changes.map((change) => (
                    <tr key={change.field}>
                      <th scope="row">{change.field}</th>
                      <td className="before">
                        <code>{change.before}</code>
                      </td>
                      <td className="after">
                        <code>{change.after}</code>
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </div>
      )}
    </div>
  );
}

function Secrets({ environment, onChanged }: { environment: Environment; onChanged: (env: Environment) => void }) {
  const { client } = useSession();
  const save = useAction();
  const remove = useAction();
  const [key, setKey] = useState("");
  const [value, setValue] = useState("");
  const [removing, setRemoving] = useState<string | undefined>(undefined);

  const refresh = async () => {
    onChanged(await client.getEnvironment(environment.id));
  };
  const submit = async (event: SyntheticEvent<HTMLFormElement>) => {
    event.preventDefault();
    const done = await save.run(async () => {
      await client.setSecret(environment.id, key.trim(), value);
      await refresh();
      return true;
    });
    if (done) {
      setKey("");
      setValue("");
    }
  };
  const drop = async (name: string) => {
    if (!window.confirm(`Delete the secret ${name}? Sandboxes created from now on will not have it.`)) return;
    setRemoving(name);
    await remove.run(async () => {
      await client.deleteSecret(environment.id, name);
      await refresh();
    });
    setRemoving(undefined);
  };

  return (
    <div>
      <p className="hint">Values are encrypted and never shown again; sandboxes get them as variables when they are created.</p>
      {environment.secrets.length === 0 ? (
        <p>No secrets.</p>
      ) : (
        <ul className="secrets">
          {environment.secrets.map((secret) => (
            <li key={secret.key}>
              <code>{secret.key}</code> <span className="muted">set {formatAgo(secret.updatedAt)}</span>
              <button
                type="button"
                className="danger small"
                onClick={() => drop(secret.key)}
                disabled={removing !== undefined}
                aria-label={`Delete secret ${secret.key}`}
              >
                {removing === secret.key && <Spinner label="Deleting" />} Delete
              </button>
            </li>
          ))}
        </ul>
      )}
      <ErrorMessage error={remove.error} />
      <form onSubmit={submit} className="form inline" aria-label="Set a secret">
        <label>
          Key
          <input required pattern="[A-Z_][A-Z0-9_]*" title="Capital letters, digits and _, not starting with a digit" value={key} onChange={(e) => { setKey(e.target.value.toUpperCase()); }} placeholder="DATABASE_PASSWORD" />
        </label>
        <label>
          Value
          <input type="password" required autoComplete="off" value={value} onChange={(e) => { setValue(e.target.value); }} />
        </label>
        <button type="submit" disabled={save.pending}>
          {save.pending && <Spinner label="Saving" />} Set secret
        </button>
      </form>
      <ErrorMessage error={save.error} />
    </div>
  );
}

export function EnvironmentPage() {
  const { id = "" } = useParams();
  const { client } = useSession();
  const navigate = useNavigate();
  const environment = useLoad(() => client.getEnvironment(id), [client, id]);
  const versions = useLoad(() => client.listEnvironmentVersions(id), [client, id]);
  const update = useAction();
  const destroy = useAction();
  const [editing, setEditing] = useState(false);

  if (environment.loading && !environment.data) return <Loading />;
  const env = environment.data;
  if (!env) {
    return (
      <section>
        <h1>Environment</h1>
        <ErrorMessage error={environment.error} />
        <Link to="/environments">All environments</Link>
      </section>
    );
  }

  const onUpdate = async (patch: EnvironmentPatch) => {
    const next = await update.run(() => client.updateEnvironment(env.id, patch));
    if (next) {
      environment.setData(() => next);
      versions.reload();
      setEditing(false);
    }
  };
  const onDelete = async () => {
    if (!window.confirm(`Delete the environment "${env.name}" and all its versions?`)) return;
    const done = await destroy.run(() => client.deleteEnvironment(env.id));
    if (done) void navigate("/environments");
  };

  return (
    <section>
      <p className="crumbs">
        <Link to="/environments">Environments</Link> /
      </p>
      <div className="page-head">
        <h1>
          {env.name} <span className="tag">v{env.version}</span>
        </h1>
        <div className="actions">
          <Link className="button primary" to={`/sandboxes?create=${env.id}`}>
            New sandbox
          </Link>
          <button type="button" className="danger" onClick={onDelete} disabled={destroy.pending}>
            {destroy.pending && <Spinner label="Deleting" />} Delete
          </button>
        </div>
      </div>
      <ErrorMessage error={destroy.error} onDismiss={destroy.clear} />
      <div className="columns">
        <div className="panel">
          <div className="page-head">
            <h2>Settings (v{env.version})</h2>
            {!editing && (
              <button type="button" onClick={() => { setEditing(true); }}>
                Edit
              </button>
            )}
          </div>
          {editing ? (
            <EnvironmentForm
              current={env}
              submitLabel={`Save as v${env.version + 1}`}
              onUpdate={onUpdate}
              onCancel={() => { setEditing(false); update.clear(); }}
              pending={update.pending}
              error={update.error}
            />
          ) : (
            <Settings version={env} />
          )}
        </div>
        <div className="panel">
          <h2>Versions</h2>
          {versions.loading && !versions.data ? <Loading /> : <ErrorMessage error={versions.error} />}
          {versions.data && <Versions key={env.version} versions={versions.data} current={env.version} />}
        </div>
        <div className="panel">
          <h2>Secrets</h2>
          <Secrets environment={env} onChanged={(next) => { environment.setData(() => next); }} />
        </div>
      </div>
    </section>
  );
}
