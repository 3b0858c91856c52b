/**
 * A sandbox's files: a directory's entries (into a directory, up, or to a typed path), a small
 * text file shown, a file uploaded into the directory, downloaded or deleted.
 */

import { useState } from "react";
import type { ChangeEvent, SyntheticEvent } from "react";
import type { FileEntry } from "@sandbox-platform/sdk";

import { formatBytes, formatTime } from "../format";
import { useAction, useLoad } from "../hooks";
import { useSession } from "../session";
import { asText, baseName, joinPath, parentPath } from "../workspace";
import { ErrorMessage, Loading, Spinner } from "./Feedback";

// Larger files are offered as downloads only: the page holds what it shows in memory.
const VIEW_LIMIT = 256 * 1024;

interface Viewed {
  path: string;
  text: string | undefined;
}

export function FilesTab({ sandboxId }: { sandboxId: string }) {
  const { client } = useSession();
  const [dir, setDir] = useState("/");
  const [typed, setTyped] = useState("/");
  const [viewed, setViewed] = useState<Viewed | undefined>(undefined);
  const loaded = useLoad(() => client.listFiles(sandboxId, dir), [client, sandboxId, dir]);
  const action = useAction();

  const go = (path: string) => {
    setDir(path);
    setTyped(path);
    setViewed(undefined);
  };

  const submitPath = (event: SyntheticEvent<HTMLFormElement>) => {
    event.preventDefault();
    go(typed.trim() || "/");
  };

  const view = async (entry: FileEntry) => {
    const bytes = await action.run(() => client.readFile(sandboxId, entry.path, { length: VIEW_LIMIT }));
    if (bytes) setViewed({ path: entry.path, text: entry.size > VIEW_LIMIT ? undefined : asText(bytes) });
  };

  const download = async (entry: FileEntry) => {
    const bytes = await action.run(() => client.readFile(sandboxId, entry.path));
    if (!bytes) return;
    const url = URL.createObjectURL(new Blob([bytes as BlobPart], { type: "application/octet-stream" }));
    const link = document.createElement("a");
    link.href = url;
    link.download = baseName(entry.path);
    link.click();
    // The browser has taken the bytes once the click is handled.
    setTimeout(() => { URL.revokeObjectURL(url); }, 0);
  };

  const remove = async (entry: FileEntry) => {
    const what = entry.type === "dir" ? `the directory ${entry.path} and everything in it` : entry.path;
    if (!window.confirm(`Delete ${what}?`)) return;
    const done = await action.run(() => client.deleteFile(sandboxId, entry.path, { recursive: entry.type === "dir" }));
    if (done) {
      if (viewed?.path === entry.path) setViewed(undefined);
      loaded.reload();
    }
  };

  const upload = async (event: ChangeEvent<HTMLInputElement>) => {
    const input = event.currentTarget;
    const file = input.files?.[0];
    if (!file) return;
    const done = await action.run(() => client.writeFile(sandboxId, joinPath(dir, file.name), file));
    input.value = "";
    if (done) loaded.reload();
  };

  const entries = loaded.data ?? [];
  return (
    <div className="files" data-path={dir}>
      <form onSubmit={submitPath} className="form inline" aria-label="Go to a directory">
        <button type="button" disabled={dir === "/"} onClick={() => { go(parentPath(dir)); }}>
          Up
        </button>
        <label className="grow">
          Directory
          <input value={typed} onChange={(e) => { setTyped(e.target.value); }} spellCheck={false} />
        </label>
        <button type="submit">Go</button>
        <label className="button">
          Upload a file
          <input type="file" className="visually-hidden" onChange={(e) => void upload(e)} disabled={action.pending} />
        </label>
        {action.pending && <Spinner label="Working" />}
      </form>
      <ErrorMessage error={action.error} onDismiss={action.clear} />
      <ErrorMessage error={loaded.error} />
      {loaded.loading && !loaded.data && <Loading />}
      {loaded.data && entries.length === 0 && <p className="muted">This directory is empty.</p>}
      {entries.length > 0 && (
        <div className="table-wrap">
          <table className="files-table" aria-label="Files">
            <thead>
              <tr>
                <th>Name</th>
                <th>Size</th>
                <th>Mode</th>
                <th>Modified</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {entries.map((entry) => (
                <tr key={entry.path} data-path={entry.path} data-type={entry.type}>
                  <td>
                    {entry.type === "dir" ? (
                      <button type="button" className="link" onClick={() => { go(entry.path); }}>
                        {entry.name}/
                      </button>
                    ) : entry.type === "file" ? (
                      <button type="button" className="link" onClick={() => void view(entry)}>
                        {entry.name}
                      </button>
                    ) : (
                      <span>
                        {entry.name} <span className="muted">({entry.type})</span>
                      </span>
                    )}
                  </td>
                  <td>{entry.type === "file" ? formatBytes(entry.size) : ""}</td>
                  <td>
                    <code>{entry.mode}</code>
                  </td>
                  <td>{formatTime(entry.modifiedAt)}</td>
                  <td>
                    <div className="actions">
                    {entry.type === "file" && (
                      <button type="button" className="small" onClick={() => void download(entry)}>
                        Download
                      </button>
                    )}
                    <button type="button" className="small danger" onClick={() => void remove(entry)}>
                      Delete
                    </button>
                    </div>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {viewed && (
        <div className="file-view" data-path={viewed.path}>
          <h4>
            <code>{viewed.path}</code>{" "}
            <button type="button" className="link" onClick={() => { setViewed(undefined); }}>
              Close
            </button>
          </h4>
          {viewed.text === undefined ? (
            <p className="muted">Not shown: binary or larger than {formatBytes(VIEW_LIMIT)}. Download it instead.</p>
          ) : (
            <pre className="output" aria-label="File content">{viewed.text}</pre>
          )}
        </div>
      )}
    </div>
  );
}
