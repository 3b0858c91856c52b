/** Path and text helpers of the sandbox page's Files tab (absolute POSIX paths in the sandbox). */

/** `name` inside the directory `dir`. */
export function joinPath(dir: string, name: string): string {
  return dir.endsWith("/") ? `${dir}${name}` : `${dir}/${name}`;
}

/** The directory holding `path` ("/" for "/" itself). */
export function parentPath(path: string): string {
  const trimmed = path.replace(/\/+$/, "");
  const cut = trimmed.lastIndexOf("/");
  return cut <= 0 ? "/" : trimmed.slice(0, cut);
}

/** The last part of `path` (a download's file name). */
export function baseName(path: string): string {
  const trimmed = path.replace(/\/+$/, "");
  return trimmed.slice(trimmed.lastIndexOf("/") + 1) || "/";
}

/**
 * The bytes as text when they look like text: valid UTF-8 without NUL bytes. A binary file is
 * offered as a download instead of being drawn as noise.
 */
export function asText(bytes: Uint8Array): string | undefined {
  if (bytes.includes(0)) return undefined;
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return undefined;
  }
}

/** A process's command as it was typed: a string the API ran through `sh -c` shows as that string. */
export function describeCommand(command: readonly string[]): string {
  if (command.length === 3 && command[0] === "sh" && command[1] === "-c") return command[2] ?? "";
  return command.join(" ");
}
