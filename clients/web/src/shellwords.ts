/**
 * An environment's `command` is a list of arguments; people type it as one line, the way a
 * shell would read it: `sh -c 'while true; do echo tick; sleep 0.5; done'`.
 */

export class CommandSyntaxError extends Error {}

/** Split a command line into arguments: spaces separate, quotes group, backslash escapes. */
export function splitCommand(text: string): string[] {
  const args: string[] = [];
  let current = "";
  let inArg = false;
  let quote: "'" | '"' | undefined;
  for (let i = 0; i < text.length; i++) {
    const char = text.charAt(i);
    if (quote === "'") {
      if (char === "'") quote = undefined;
      else current += char;
      continue;
    }
    if (quote === '"') {
      if (char === '"') quote = undefined;
      else if (char === "\\" && i + 1 < text.length && '"\\$`'.includes(text.charAt(i + 1))) current += text.charAt(++i);
      else current += char;
      continue;
    }
    if (char === "'" || char === '"') {
      quote = char;
      inArg = true;
    } else if (char === "\\") {
      if (i + 1 >= text.length) throw new CommandSyntaxError("The command ends with a lone backslash.");
      current += text.charAt(++i);
      inArg = true;
    } else if (/\s/.test(char)) {
      if (inArg) args.push(current);
      current = "";
      inArg = false;
    } else {
      current += char;
      inArg = true;
    }
  }
  if (quote !== undefined) throw new CommandSyntaxError(`The command has an unclosed ${quote} quote.`);
  if (inArg) args.push(current);
  return args;
}

/** The arguments as one line that `splitCommand` reads back to the same list. */
export function joinCommand(args: readonly string[]): string {
  return args.map((arg) => (arg !== "" && /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", `'"'"'`)}'`)).join(" ");
}
