/** The fields of an environment, for creating one and for saving a new version of one. */

import { useId, useState } from "react";
import type { PlatformInfo } from "@sandbox-platform/sdk";
import type { SyntheticEvent } from "react";
import type { EnvironmentConfig, EnvironmentPatch, EnvironmentVersion } from "@sandbox-platform/sdk";

import { problemsUnder } from "../errors";
import { useLoad } from "../hooks";
import { formatEnv, formatPorts, parseDisk, parseEnv, parsePorts } from "../keyvalue";
import { formatAllow, policyOf, samePolicy } from "../network";
import type { Egress } from "../network";
import { joinCommand, splitCommand } from "../shellwords";
import { useSession } from "../session";
import { ErrorMessage, Spinner } from "./Feedback";
import { NetworkFields } from "./NetworkFields";

type Current = Pick<
  EnvironmentVersion,
  "image" | "cpu" | "memory" | "ports" | "env" | "command" | "network" | "runtime" | "disk"
>;

/** What the form sends (a patch takes the fields that differ); no disk: the platform's default. */
type Parsed = Pick<
  Required<EnvironmentConfig>,
  "image" | "cpu" | "memory" | "ports" | "env" | "command" | "network" | "runtime"
> & { disk?: number };

interface Fields {
  name: string;
  image: string;
  cpu: string;
  memory: string;
  ports: string;
  env: string;
  command: string;
  egress: Egress;
  allow: string;
  runtime: string;
  disk: string;
}

function fieldsOf(current: Current | undefined): Fields {
  return {
    name: "",
    image: current?.image ?? "",
    cpu: String(current?.cpu ?? 1),
    memory: String(current?.memory ?? 256),
    ports: formatPorts(current?.ports),
    env: formatEnv(current?.env),
    command: current?.command ? joinCommand(current.command) : "",
    egress: current?.network.egress ?? "internet",
    allow: formatAllow(current?.network.allow),
    runtime: current?.runtime ?? "runc",
    disk: current ? String(current.disk) : "",
  };
}

/** The form's text as the API's fields; throws an Error naming the field that is wrong. */
function parse(fields: Fields): Parsed {
  const cpu = Number(fields.cpu);
  if (!Number.isFinite(cpu) || cpu <= 0) throw new Error("CPU: a number of cores above 0, e.g. 0.5.");
  const memory = Number(fields.memory);
  if (!Number.isInteger(memory) || memory <= 0) throw new Error("Memory: a whole number of MiB, e.g. 256.");
  let ports, env, command;
  try {
    ports = parsePorts(fields.ports);
  } catch (error) {
    throw new Error(`Ports: ${(error as Error).message}`, { cause: error });
  }
  try {
    env = parseEnv(fields.env);
  } catch (error) {
    throw new Error(`Variables: ${(error as Error).message}`, { cause: error });
  }
  try {
    const args = splitCommand(fields.command);
    command = args.length > 0 ? args : null;
  } catch (error) {
    throw new Error(`Command: ${(error as Error).message}`, { cause: error });
  }
  let disk;
  try {
    disk = parseDisk(fields.disk);
  } catch (error) {
    throw new Error(`Disk: ${(error as Error).message}`, { cause: error });
  }
  const network = policyOf(fields.egress, fields.allow);
  const parsed: Parsed = { image: fields.image.trim(), cpu, memory, ports, env, command, network, runtime: fields.runtime };
  if (disk !== undefined) parsed.disk = disk;
  return parsed;
}

/** Only what differs from `current`, so the new version says what was changed. */
function patchOf(current: Current, next: Parsed): EnvironmentPatch {
  const patch: EnvironmentPatch = {};
  if (next.image !== current.image) patch.image = next.image;
  if (next.cpu !== current.cpu) patch.cpu = next.cpu;
  if (next.memory !== current.memory) patch.memory = next.memory;
  if (JSON.stringify(next.ports) !== JSON.stringify(current.ports)) patch.ports = next.ports;
  if (JSON.stringify(next.env) !== JSON.stringify(current.env)) patch.env = next.env;
  if (JSON.stringify(next.command) !== JSON.stringify(current.command)) patch.command = next.command;
  if (!samePolicy(next.network, current.network)) patch.network = next.network;
  if (next.runtime !== current.runtime) patch.runtime = next.runtime;
  if (next.disk !== undefined && next.disk !== current.disk) patch.disk = next.disk;
  return patch;
}

interface Props {
  /** Editing: the current version; creating: undefined (the form then asks for a name). */
  current?: Current | undefined;
  submitLabel: string;
  onCreate?: (config: EnvironmentConfig) => Promise<unknown>;
  onUpdate?: (patch: EnvironmentPatch) => Promise<unknown>;
  onCancel?: () => void;
  pending: boolean;
  error: unknown;
}

/** The runtimes to offer: those `GET /info` lists, and the current one even if it is gone. */
function runtimeChoices(info: PlatformInfo | undefined, current: string): string[] {
  const listed = info?.runtimes ?? [];
  return [...new Set([...listed, current])];
}

export function EnvironmentForm({ current, submitLabel, onCreate, onUpdate, onCancel, pending, error }: Props) {
  const id = useId();
  const { client } = useSession();
  const info = useLoad(() => client.getInfo(), [client]);
  const limits = info.data?.limits;
  const [fields, setFields] = useState<Fields>(() => fieldsOf(current));
  const [problem, setProblem] = useState<string | undefined>(undefined);
  // The allow entries of the last submit: the API names a wrong one by its index.
  const [sentAllow, setSentAllow] = useState<string[]>([]);
  const set = (key: keyof Fields) => (event: { target: { value: string } }) => {
    setFields((f) => ({ ...f, [key]: event.target.value }));
  };

  const submit = async (event: SyntheticEvent<HTMLFormElement>) => {
    event.preventDefault();
    let parsed;
    try {
      parsed = parse(fields);
    } catch (failure) {
      setProblem((failure as Error).message);
      return;
    }
    setProblem(undefined);
    setSentAllow(parsed.network.allow ?? []);
    if (current && onUpdate) {
      const patch = patchOf(current, parsed);
      if (Object.keys(patch).length === 0) {
        setProblem("Nothing changed: a new version needs at least one change.");
        return;
      }
      await onUpdate(patch);
    } else if (onCreate) {
      await onCreate({ name: fields.name.trim(), ...parsed });
    }
  };

  return (
    <form onSubmit={submit} className="form grid" aria-label={submitLabel}>
      {!current && (
        <label>
          Name
          <input required maxLength={100} value={fields.name} onChange={set("name")} placeholder="web-app" />
        </label>
      )}
      <label>
        Image
        <input required value={fields.image} onChange={set("image")} placeholder="busybox:latest" />
      </label>
      <label>
        CPU (cores)
        <input inputMode="decimal" required value={fields.cpu} onChange={set("cpu")} />
      </label>
      <label>
        Memory (MiB)
        <input inputMode="numeric" required value={fields.memory} onChange={set("memory")} />
      </label>
      <div className="field">
        <label htmlFor={`${id}-runtime`}>Runtime</label>
        <select
          id={`${id}-runtime`}
          value={fields.runtime}
          onChange={set("runtime")}
          aria-describedby={`${id}-runtime-hint`}
          aria-invalid={problemsUnder(error, "runtime").length > 0}
        >
          {runtimeChoices(info.data, fields.runtime).map((runtime) => (
            <option key={runtime} value={runtime}>
              {runtime === "gvisor" ? "gvisor (a kernel of its own, stronger isolation)" : runtime}
            </option>
          ))}
        </select>
        <span className="hint" id={`${id}-runtime-hint`}>
          {info.loading && !info.data && <Spinner label="Loading the runtimes" />}
          {info.error !== undefined && !info.data ? "The platform's runtimes could not be listed." : "As this platform offers them."}
          {problemsUnder(error, "runtime").map((p) => ` ${p.message}`)}
        </span>
      </div>
      <div className="field">
        <label htmlFor={`${id}-disk`}>Disk (MiB)</label>
        <input
          id={`${id}-disk`}
          inputMode="numeric"
          value={fields.disk}
          onChange={set("disk")}
          placeholder={limits ? String(limits.defaultDiskMib) : "default"}
          aria-describedby={`${id}-disk-hint`}
          aria-invalid={problemsUnder(error, "disk").length > 0}
        />
        <span className="hint" id={`${id}-disk-hint`}>
          {limits ? `${limits.minDiskMib} to ${limits.maxDiskMib} MiB of writable files.` : "MiB of writable files."}
          {!current && " Empty: the platform's default."}
          {problemsUnder(error, "disk").map((p) => ` ${p.message}`)}
        </span>
      </div>
      <div className="field">
        <label htmlFor={`${id}-ports`}>Ports</label>
        <input id={`${id}-ports`} value={fields.ports} onChange={set("ports")} placeholder="8080, 3000:3001" aria-describedby={`${id}-ports-hint`} />
        <span className="hint" id={`${id}-ports-hint`}>
          Container port, or container:host. A port without a host port gets a free one per sandbox.
        </span>
      </div>
      <div className="field wide">
        <label htmlFor={`${id}-command`}>Command</label>
        <input
          id={`${id}-command`}
          value={fields.command}
          onChange={set("command")}
          placeholder="sh -c 'echo hello; sleep 3600'"
          aria-describedby={`${id}-command-hint`}
          spellCheck={false}
        />
        <span className="hint" id={`${id}-command-hint`}>
          As a shell would split it. Empty: the image&apos;s own command.
        </span>
      </div>
      <div className="field wide">
        <label htmlFor={`${id}-env`}>Variables</label>
        <textarea id={`${id}-env`} rows={4} value={fields.env} onChange={set("env")} placeholder={"LOG_LEVEL=debug\nPORT=8080"} aria-describedby={`${id}-env-hint`} />
        <span className="hint" id={`${id}-env-hint`}>
          One KEY=value per line. Secrets go in the Secrets section: their values are never shown again.
        </span>
      </div>
      <NetworkFields
        egress={fields.egress}
        allow={fields.allow}
        onEgress={(egress) => { setFields((f) => ({ ...f, egress })); }}
        onAllow={(allow) => { setFields((f) => ({ ...f, allow })); }}
        problems={problemsUnder(error, "network")}
        sent={sentAllow}
      />
      {problem && (
        <div className="error wide" role="alert">
          <p>{problem}</p>
        </div>
      )}
      <div className="wide">
        <ErrorMessage error={error} shownOnFields={["network", "runtime", "disk"]} />
      </div>
      <div className="actions wide">
        <button type="submit" className="primary" disabled={pending}>
          {pending && <Spinner label="Saving" />} {submitLabel}
        </button>
        {onCancel && (
          <button type="button" onClick={onCancel} disabled={pending}>
            Cancel
          </button>
        )}
      </div>
    </form>
  );
}
