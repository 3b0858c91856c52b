/** The sandbox page's Processes, Files and Preview tabs (one shown at a time, WAI-ARIA tabs). */

import { useState } from "react";
import type { KeyboardEvent } from "react";

import { FilesTab } from "./FilesTab";
import { PreviewTab } from "./PreviewTab";
import { ProcessesTab } from "./ProcessesTab";

const TABS = ["Processes", "Files", "Preview"] as const;
type Tab = (typeof TABS)[number];

export function SandboxWorkspace({ sandboxId, running }: { sandboxId: string; running: boolean }) {
  const [tab, setTab] = useState<Tab>("Processes");

  // Arrow keys move between tabs, as the tabs pattern expects.
  const onKey = (event: KeyboardEvent<HTMLDivElement>) => {
    const step = event.key === "ArrowRight" ? 1 : event.key === "ArrowLeft" ? -1 : 0;
    if (step === 0) return;
    const next = TABS[(TABS.indexOf(tab) + step + TABS.length) % TABS.length] ?? "Processes";
    setTab(next);
    document.getElementById(`workspace-tab-${next}`)?.focus();
  };

  return (
    <div className="workspace">
      <div className="tabs" role="tablist" aria-label="Workspace" onKeyDown={onKey}>
        {TABS.map((name) => (
          <button
            key={name}
            type="button"
            role="tab"
            id={`workspace-tab-${name}`}
            aria-selected={tab === name}
            aria-controls={`workspace-panel-${name}`}
            tabIndex={tab === name ? 0 : -1}
            onClick={() => { setTab(name); }}
          >
            {name}
          </button>
        ))}
      </div>
      <div role="tabpanel" id={`workspace-panel-${tab}`} aria-labelledby={`workspace-tab-${tab}`}>
        {tab === "Processes" && <ProcessesTab sandboxId={sandboxId} running={running} />}
        {tab === "Files" && <FilesTab sandboxId={sandboxId} />}
        {tab === "Preview" && <PreviewTab sandboxId={sandboxId} running={running} />}
      </div>
    </div>
  );
}
