/** Volumes: create one (name, size), the list (size, used, the sandboxes mounting it), delete. */

import { useState } from "react";
import type { SyntheticEvent } from "react";
import { Link } from "react-router";

import { ErrorMessage, Loading, Spinner } from "../components/Feedback";
import { formatAgo, formatBytes, formatTime, shortId } from "../format";
import { useAction, useLoad } from "../hooks";
import { useSession } from "../session";

export function VolumesPage() {
  const { client } = useSession();
  const volumes = useLoad(() => client.listVolumes(), [client]);
  const { setData } = volumes;
  const create = useAction();
  const remove = useAction();
  const [removing, setRemoving] = useState<string | undefined>(undefined);
  const [name, setName] = useState("");
  const [size, setSize] = useState("");

  const submit = async (event: SyntheticEvent<HTMLFormElement>) => {
    event.preventDefault();
    const sizeMiB = size.trim() === "" ? undefined : Number(size);
    const volume = await create.run(() => client.createVolume({ name: name.trim(), sizeMiB }));
    if (volume) {
      setName("");
      setSize("");
      setData((current) => [volume, ...(current ?? [])]);
    }
  };

  const onDelete = async (id: string, volumeName: string) => {
    if (!window.confirm(`Delete the volume ${volumeName} and everything on it?`)) return;
    setRemoving(id);
    const done = await remove.run(() => client.deleteVolume(id));
    setRemoving(undefined);
    if (done) setData((current) => (current ?? []).filter((v) => v.id !== id));
  };

  return (
    <section>
      <div className="page-head">
        <h1>Volumes</h1>
      </div>
      <p className="hint">A volume keeps files across sandboxes: mount it when creating a sandbox.</p>
      <div className="panel">
        <h2>New volume</h2>
        <form onSubmit={submit} className="form inline" aria-label="New volume">
          <label>
            Name
            <input required value={name} maxLength={100} onChange={(e) => { setName(e.target.value); }} spellCheck={false} />
          </label>
          <label>
            Size (MiB, optional)
            <input inputMode="numeric" pattern="\d*" value={size} onChange={(e) => { setSize(e.target.value); }} placeholder="1024" />
          </label>
          <div className="actions">
            <button type="submit" className="primary" disabled={create.pending}>
              {create.pending && <Spinner label="Creating" />} Create volume
            </button>
          </div>
          <ErrorMessage error={create.error} />
        </form>
      </div>
      <ErrorMessage error={remove.error} onDismiss={remove.clear} />
      {volumes.loading && !volumes.data ? (
        <Loading />
      ) : (
        <>
          <ErrorMessage error={volumes.error} />
          {volumes.data?.length === 0 && <p>No volumes yet.</p>}
          {volumes.data && volumes.data.length > 0 && (
            <div className="table-wrap">
              <table className="volumes">
                <thead>
                  <tr>
                    <th scope="col">Name</th>
                    <th scope="col">Size</th>
                    <th scope="col">Used</th>
                    <th scope="col">Attached to</th>
                    <th scope="col">Created</th>
                    <th scope="col">Actions</th>
                  </tr>
                </thead>
                <tbody>
                  {volumes.data.map((volume) => (
                    <tr key={volume.id} data-volume-id={volume.id}>
                      <td>
                        {volume.name} <code className="muted">{shortId(volume.id)}</code>
                      </td>
                      <td>{volume.sizeMiB} MiB</td>
                      <td>{formatBytes(volume.usedBytes)}</td>
                      <td>
                        {volume.attachedTo.length === 0
                          ? "none"
                          : volume.attachedTo.map((sandboxId) => (
                              <Link key={sandboxId} to={`/sandboxes/${sandboxId}`} className="endpoint">
                                {shortId(sandboxId)}
                              </Link>
                            ))}
                      </td>
                      <td title={formatTime(volume.createdAt)}>{formatAgo(volume.createdAt)}</td>
                      <td>
                        <button
                          type="button"
                          className="danger"
                          aria-label={`Delete volume ${volume.name}`}
                          disabled={removing === volume.id}
                          onClick={() => void onDelete(volume.id, volume.name)}
                        >
                          {removing === volume.id && <Spinner label="Deleting" />} Delete
                        </button>
                      </td>
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
