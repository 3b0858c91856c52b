/** Environments: the list, and a form for a new one. */

import { useState } from "react";
import { Link, useNavigate } from "react-router";
import type { EnvironmentConfig } from "@sandbox-platform/sdk";

import { EnvironmentForm } from "../components/EnvironmentForm";
import { ErrorMessage, Loading } from "../components/Feedback";
import { formatAgo, formatTime } from "../format";
import { useAction, useLoad } from "../hooks";
import { useSession } from "../session";

export function EnvironmentsPage() {
  const { client } = useSession();
  const navigate = useNavigate();
  const environments = useLoad(() => client.listEnvironments(), [client]);
  const create = useAction();
  const [creating, setCreating] = useState(false);

  const onCreate = async (config: EnvironmentConfig) => {
    const environment = await create.run(() => client.createEnvironment(config));
    if (environment) void navigate(`/environments/${environment.id}`);
  };

  return (
    <section>
      <div className="page-head">
        <h1>Environments</h1>
        {!creating && (
          <button type="button" className="primary" onClick={() => { setCreating(true); }}>
            New environment
          </button>
        )}
      </div>
      <p className="hint">An environment is what a sandbox runs: an image, its resources and settings. Every edit is a new version.</p>
      {creating && (
        <div className="panel">
          <h2>New environment</h2>
          <EnvironmentForm
            submitLabel="Create environment"
            onCreate={onCreate}
            onCancel={() => { setCreating(false); create.clear(); }}
            pending={create.pending}
            error={create.error}
          />
        </div>
      )}
      {environments.loading && !environments.data ? (
        <Loading />
      ) : (
        <>
          <ErrorMessage error={environments.error} />
          {environments.data?.length === 0 && <p>No environments yet: create one to start sandboxes from it.</p>}
          {environments.data && environments.data.length > 0 && (
            <div className="table-wrap">
              <table>
                <thead>
                  <tr>
                    <th scope="col">Name</th>
                    <th scope="col">Image</th>
                    <th scope="col">Version</th>
                    <th scope="col">Resources</th>
                    <th scope="col">Updated</th>
                  </tr>
                </thead>
                <tbody>
                  {environments.data.map((env) => (
                    <tr key={env.id}>
                      <td>
                        <Link to={`/environments/${env.id}`}>{env.name}</Link>
                      </td>
                      <td>
                        <code>{env.image}</code>
                      </td>
                      <td>v{env.version}</td>
                      <td>
                        {env.cpu} CPU, {env.memory} MiB, {env.disk} MiB disk{env.runtime !== "runc" && `, ${env.runtime}`}
                      </td>
                      <td title={formatTime(env.updatedAt)}>{formatAgo(env.updatedAt)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </>
      )}
    </section>
  );
}
