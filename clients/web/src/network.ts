/** The text form of a network policy in the forms, and the policy as people read it. */

import type { NetworkPolicy, NetworkPolicyOut } from "@sandbox-platform/sdk";

export type Egress = NetworkPolicyOut["egress"];

export const EGRESS_CHOICES: readonly { value: Egress; label: string }[] = [
  { value: "internet", label: "Internet (everything but private and platform addresses)" },
  { value: "allowlist", label: "Allow list (DNS and the entries below only)" },
  { value: "none", label: "None (no network at all, not even DNS)" },
];

/** The API's own limit on `allow` entries. */
export const MAX_ALLOW = 64;

/** Entries separated by new lines, commas or spaces; blanks dropped, repeats kept once. */
export function parseAllow(text: string): string[] {
  const entries = text.split(/[\s,]+/).filter((entry) => entry !== "");
  return [...new Set(entries)];
}

export function formatAllow(allow: readonly string[] | null | undefined): string {
  return (allow ?? []).join("\n");
}

/** The policy the form's fields say: `allow` is sent only with the allowlist egress. */
export function policyOf(egress: Egress, allowText: string): NetworkPolicy {
  if (egress !== "allowlist") return { egress, allow: [] };
  const allow = parseAllow(allowText);
  if (allow.length === 0) throw new Error("Allow list: at least one CIDR or hostname, or choose another egress.");
  if (allow.length > MAX_ALLOW) throw new Error(`Allow list: at most ${MAX_ALLOW} entries (${allow.length} given).`);
  return { egress, allow };
}

/** "internet", "none", or "allowlist: a, b". */
export function describeNetwork(policy: Partial<NetworkPolicyOut> | null | undefined): string {
  const egress = policy?.egress ?? "internet";
  if (egress !== "allowlist") return egress;
  const allow = policy?.allow ?? [];
  return allow.length === 0 ? "allowlist: nothing" : `allowlist: ${allow.join(", ")}`;
}

export function samePolicy(a: Partial<NetworkPolicyOut> | null | undefined, b: Partial<NetworkPolicyOut> | null | undefined): boolean {
  return describeNetwork(a) === describeNetwork(b);
}
