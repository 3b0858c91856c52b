/** What changed between two versions of an environment, field by field. */

import type { EnvironmentVersion } from "@sandbox-platform/sdk";

import { formatEnv, formatPorts } from "./keyvalue";
import { describeNetwork } from "./network";
import { joinCommand } from "./shellwords";

export interface FieldChange {
  field: string;
  before: string;
  after: string;
}

type Comparable = Pick<EnvironmentVersion, "image" | "cpu" | "memory" | "ports" | "env" | "command" | "network" | "runtime" | "disk">;

export function describeVersion(version: Comparable): Record<string, string> {
  return {
    image: version.image,
    cpu: version.cpu === 1 ? "1 core" : `${version.cpu} cores`,
    memory: `${version.memory} MiB`,
    disk: `${version.disk} MiB`,
    runtime: version.runtime,
    ports: formatPorts(version.ports) || "none",
    env: formatEnv(version.env) || "none",
    command: version.command ? joinCommand(version.command) : "the image's own",
    network: describeNetwork(version.network),
  };
}

export function diffVersions(before: Comparable, after: Comparable): FieldChange[] {
  const a = describeVersion(before);
  const b = describeVersion(after);
  return Object.keys(a).flatMap((field) =>
    a[field] === b[field] ? [] : [{ field, before: a[field] ?? "", after: b[field] ?? "" }],
  );
}
