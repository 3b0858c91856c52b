/** The text forms of an environment's `env` map and `ports` list in the forms. */

export interface PortEntry {
  container: number;
  host?: number | null;
}

/** `KEY=value` per line (blank lines and `#` comments skipped); throws on a line without `=`. */
export function parseEnv(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const at = line.indexOf("=");
    if (at <= 0) throw new Error(`Line ${index + 1} is not KEY=value.`);
    env[line.slice(0, at).trim()] = line.slice(at + 1);
  });
  return env;
}

export function formatEnv(env: Record<string, string> | null | undefined): string {
  return Object.entries(env ?? {})
    .map(([key, value]) => `${key}=${value}`)
    .join("\n");
}

function port(text: string): number {
  const value = Number(text);
  if (!/^\d+$/.test(text) || value < 1 || value > 65535) throw new Error(`"${text}" is not a port (1-65535).`);
  return value;
}

/** `8080, 3000:3001` (container, or container:host) separated by commas or spaces. */
export function parsePorts(text: string): PortEntry[] {
  return text
    .split(/[\s,]+/)
    .filter((part) => part !== "")
    .map((part) => {
      const [container = "", host, extra] = part.split(":");
      if (extra !== undefined) throw new Error(`"${part}" is not CONTAINER or CONTAINER:HOST.`);
      return host === undefined ? { container: port(container) } : { container: port(container), host: port(host) };
    });
}

/** Ports as the API echoes them (`{container, host?}` objects). */
export function formatPorts(ports: readonly Partial<Record<string, number | null>>[] | null | undefined): string {
  return (ports ?? [])
    .map((p) => (p.host ? `${String(p.container)}:${String(p.host)}` : String(p.container)))
    .join(", ");
}

/** The disk field: empty for the platform's default (undefined), else a whole number of MiB. */
export function parseDisk(text: string): number | undefined {
  const trimmed = text.trim();
  if (trimmed === "") return undefined;
  const value = Number(trimmed);
  if (!/^\d+$/.test(trimmed) || value <= 0) throw new Error(`"${trimmed}" is not a whole number of MiB.`);
  return value;
}
