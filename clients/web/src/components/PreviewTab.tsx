/** A preview link to one port of the running sandbox: a URL a browser opens without signing in. */

import { useState } from "react";
import type { SyntheticEvent } from "react";
import type { PreviewUrl } from "@sandbox-platform/sdk";

import { formatTime } from "../format";
import { useAction } from "../hooks";
import { useSession } from "../session";
import { CopyButton } from "./CopyButton";
import { ErrorMessage, Spinner } from "./Feedback";

/** The port typed, if it is one (1-65535); the form says so otherwise. */
function parsePort(text: string): number | undefined {
  if (!/^\d{1,5}$/.test(text.trim())) return undefined;
  const port = Number(text.trim());
  return port >= 1 && port <= 65535 ? port : undefined;
}

export function PreviewTab({ sandboxId, running }: { sandboxId: string; running: boolean }) {
  const { client } = useSession();
  const action = useAction();
  const [port, setPort] = useState("");
  const [hours, setHours] = useState("1");
  const [previews, setPreviews] = useState<(PreviewUrl & { port: number })[]>([]);
  const parsed = parsePort(port);

  const submit = async (event: SyntheticEvent<HTMLFormElement>) => {
    event.preventDefault();
    if (parsed === undefined) return;
    const expiresInSeconds = Math.round((Number(hours) || 1) * 3600);
    const answer = await action.run(() => client.getPreviewUrl(sandboxId, parsed, { expiresInSeconds }));
    if (answer) setPreviews((current) => [{ ...answer, port: parsed }, ...current]);
  };

  return (
    <div className="previews">
      <form onSubmit={submit} className="form inline" aria-label="Create a preview URL">
        <label>
          Port
          <input required inputMode="numeric" value={port} onChange={(e) => { setPort(e.target.value); }} size={6} placeholder="8000" aria-invalid={port !== "" && parsed === undefined} />
        </label>
        <label>
          Valid for (hours)
          <input inputMode="decimal" value={hours} onChange={(e) => { setHours(e.target.value); }} size={4} />
        </label>
        <button type="submit" className="primary" disabled={action.pending || !running || parsed === undefined}>
          {action.pending && <Spinner label="Creating" />} Preview
        </button>
      </form>
      {port !== "" && parsed === undefined && <p className="hint" role="alert">A port is a number from 1 to 65535.</p>}
      {!running && <p className="muted">Previews are made while the sandbox is running.</p>}
      <ErrorMessage error={action.error} onDismiss={action.clear} />
      {previews.length > 0 && (
        <ul className="preview-links" aria-label="Preview URLs">
          {previews.map((preview) => (
            <li key={preview.url} data-port={preview.port}>
              <strong>{preview.port}</strong>{" "}
              <a href={preview.url} target="_blank" rel="noopener noreferrer">
                {preview.url}
              </a>{" "}
              <CopyButton text={preview.url} /> <span className="muted">until {formatTime(preview.expiresAt)}</span>
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}
