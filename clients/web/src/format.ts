/** Numbers and times as people read them. */

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];

export function formatBytes(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined || !Number.isFinite(bytes)) return "–";
  let value = Math.abs(bytes);
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const text = unit === 0 || value >= 100 ? value.toFixed(0) : value.toFixed(1);
  return `${bytes < 0 ? "-" : ""}${text} ${UNITS[unit] ?? "B"}`;
}

export function formatRate(bytesPerSecond: number): string {
  return `${formatBytes(bytesPerSecond)}/s`;
}

export function formatTime(iso: string | null | undefined): string {
  if (!iso) return "–";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return date.toLocaleString();
}

/** "3 s ago", "5 min ago", "2 h ago", else the date. */
export function formatAgo(iso: string | null | undefined, now: number = Date.now()): string {
  if (!iso) return "–";
  const then = new Date(iso).getTime();
  if (Number.isNaN(then)) return iso;
  const seconds = Math.round((now - then) / 1000);
  if (seconds < 5) return "just now";
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return new Date(iso).toLocaleDateString();
}

export function shortId(id: string): string {
  return id.slice(0, 8);
}

/** When an API key stops working: "never", "in 30 days", "in 5 h", or "expired 2 h ago". */
export function formatExpiry(iso: string | null | undefined, now: number = Date.now()): { text: string; expired: boolean } {
  if (!iso) return { text: "never", expired: false };
  const at = new Date(iso).getTime();
  if (Number.isNaN(at)) return { text: iso, expired: false };
  const seconds = Math.round((at - now) / 1000);
  if (seconds <= 0) return { text: `expired ${formatAgo(iso, now)}`, expired: true };
  if (seconds < 3600) return { text: `in ${Math.max(1, Math.floor(seconds / 60))} min`, expired: false };
  if (seconds < 86400) return { text: `in ${Math.floor(seconds / 3600)} h`, expired: false };
  const days = Math.floor(seconds / 86400);
  return { text: days === 1 ? "in 1 day" : `in ${days} days`, expired: false };
}

/** The "expires in days" field: empty for never, else a whole number from 1 to 3650. */
export function parseExpiryDays(text: string): number | undefined {
  const trimmed = text.trim();
  if (trimmed === "") return undefined;
  const days = Number(trimmed);
  if (!/^\d+$/.test(trimmed) || days < 1 || days > 3650) {
    throw new Error("Expires in days: a whole number from 1 to 3650, or empty for a key that never expires.");
  }
  return days;
}
