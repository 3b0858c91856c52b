import type { LogLine, Metrics, Sandbox, SandboxEvent, Snapshot } from "@sandbox-platform/sdk";
import { describe, expect, it } from "vitest";

import { diffVersions } from "./envdiff";
import { describeAllowProblem, otherFieldLines, problemsUnder, readableError } from "./errors";
import { formatBytes, formatExpiry, parseExpiryDays } from "./format";
import { formatPorts, parseDisk, parseEnv, parsePorts } from "./keyvalue";
import { appendLines, compileQuery, filterLogs } from "./logfilter";
import { EMPTY_HISTORY, addSample, chartData } from "./metrics";
import { describeNetwork, formatAllow, parseAllow, policyOf, samePolicy } from "./network";
import { LatestEvents, isLaterEvent, listAfterEvent, matchesFilter } from "./sandboxes";
import { joinCommand, splitCommand } from "./shellwords";
import { mountsFromRows, readySnapshots, waitForSnapshot } from "./snapshots";
import { asText, baseName, describeCommand, joinPath, parentPath } from "./workspace";
import { SandboxApiError } from "@sandbox-platform/sdk";

function line(seq: number, text: string, stream: "stdout" | "stderr" = "stdout"): LogLine {
  return { seq, text, stream, timestamp: new Date(1_700_000_000_000 + seq * 1000).toISOString() };
}

describe("log search", () => {
  const lines = [line(1, "tick"), line(2, "Error: disk full", "stderr"), line(3, "tock"), line(4, "TICK again")];

  it("matches text case-insensitively", () => {
    expect(filterLogs(lines, { text: "tick" }).map((l) => l.seq)).toEqual([1, 4]);
  });

  it("keeps every line for an empty query", () => {
    expect(filterLogs(lines, { text: "  " })).toHaveLength(4);
  });

  it("takes /regex/flags", () => {
    expect(filterLogs(lines, { text: "/^t.ck$/" }).map((l) => l.seq)).toEqual([1, 3]);
    expect(filterLogs(lines, { text: "/^tick/i" }).map((l) => l.seq)).toEqual([1, 4]);
  });

  it("reports a broken pattern instead of throwing", () => {
    const compiled = compileQuery("/(unclosed/");
    expect(compiled.error).toMatch(/regular expression/);
    expect(compiled.test("anything")).toBe(true);
  });

  it("filters by stream", () => {
    expect(filterLogs(lines, { text: "", stream: "stderr" }).map((l) => l.seq)).toEqual([2]);
  });

  it("appends only unseen lines and keeps the newest", () => {
    const first = appendLines([], [line(1, "a"), line(2, "b")]);
    const second = appendLines(first, [line(2, "b"), line(3, "c"), line(4, "d")], 3);
    expect(second.map((l) => l.seq)).toEqual([2, 3, 4]);
    expect(appendLines(second, [line(3, "c")])).toBe(second);
  });
});

function sample(seconds: number, cpu: number, rx: number, read: number): Metrics {
  return {
    cpu: { usagePercent: cpu, cores: 1 },
    memory: { usageBytes: 1024 * 1024 * (seconds + 1), limitBytes: 256 * 1024 * 1024, usagePercent: 1 },
    network: { rxBytes: rx, txBytes: 0, rxPackets: 0, txPackets: 0 },
    io: { readBytes: read, writeBytes: 0 },
    pids: 3,
    timestamp: new Date(1_700_000_000_000 + seconds * 1000).toISOString(),
  };
}

describe("metrics to chart", () => {
  it("turns counters into rates per second", () => {
    let history = addSample(EMPTY_HISTORY, sample(0, 5, 1000, 0));
    history = addSample(history, sample(2, 10, 5000, 4096));
    expect(history.points).toHaveLength(2);
    expect(history.points[0]?.rxRate).toBe(0);
    expect(history.points[1]?.rxRate).toBe(2000);
    expect(history.points[1]?.readRate).toBe(2048);
    expect(history.points[1]?.cpuPercent).toBe(10);
  });

  it("never draws a negative rate when a counter restarts", () => {
    let history = addSample(EMPTY_HISTORY, sample(0, 5, 9000, 0));
    history = addSample(history, sample(2, 5, 100, 0));
    expect(history.points[1]?.rxRate).toBe(0);
  });

  it("ignores a repeated sample and keeps a bounded window", () => {
    let history = EMPTY_HISTORY;
    for (let i = 0; i < 10; i++) history = addSample(history, sample(i * 2, i, i * 100, 0), 5);
    const again = addSample(history, sample(18, 1, 1, 0), 5);
    expect(again).toBe(history);
    expect(history.points).toHaveLength(5);
    expect(history.points[0]?.cpuPercent).toBe(5);
  });

  it("lays out uPlot data: x values then one array per series", () => {
    let history = addSample(EMPTY_HISTORY, sample(0, 1, 0, 0));
    history = addSample(history, sample(2, 3, 0, 0));
    const [xs, cpu, memory] = chartData(history.points, ["cpuPercent", "memoryBytes"]);
    expect(xs).toEqual([1_700_000_000, 1_700_000_002]);
    expect(cpu).toEqual([1, 3]);
    expect(memory).toEqual([1024 * 1024, 3 * 1024 * 1024]);
  });
});

describe("command lines", () => {
  it("splits like a shell", () => {
    expect(splitCommand(`sh -c 'while true; do echo tick; sleep 0.5; done'`)).toEqual([
      "sh",
      "-c",
      "while true; do echo tick; sleep 0.5; done",
    ]);
    expect(splitCommand(`echo "a \\"b\\"" c\\ d ''`)).toEqual(["echo", 'a "b"', "c d", ""]);
  });

  it("refuses an unclosed quote", () => {
    expect(() => splitCommand("echo 'oops")).toThrow(/unclosed/);
  });

  it("joins so that splitting gives the same list", () => {
    const args = ["sh", "-c", "echo 'hi' && ls", ""];
    expect(splitCommand(joinCommand(args))).toEqual(args);
  });
});

describe("form fields", () => {
  it("reads variables and ports", () => {
    expect(parseEnv("A=1\n# note\n\nB=x=y")).toEqual({ A: "1", B: "x=y" });
    expect(() => parseEnv("NOEQUALS")).toThrow(/Line 1/);
    expect(parsePorts("8080, 3000:3001")).toEqual([{ container: 8080 }, { container: 3000, host: 3001 }]);
    expect(() => parsePorts("99999")).toThrow(/not a port/);
    expect(formatPorts([{ container: 80 }, { container: 3000, host: 3001 }])).toBe("80, 3000:3001");
  });

  it("compares versions field by field", () => {
    const network = { egress: "internet" as const, allow: [] };
    const base = { image: "busybox", cpu: 1, memory: 256, ports: [], env: { A: "1" }, command: null, network, runtime: "runc", disk: 1024 };
    const changes = diffVersions(base, { ...base, memory: 512, command: ["sleep", "1"] });
    expect(changes.map((c) => c.field)).toEqual(["memory", "command"]);
    expect(changes[1]).toEqual({ field: "command", before: "the image's own", after: "sleep 1" });
    const closed = diffVersions(base, { ...base, network: { egress: "allowlist", allow: ["pypi.org", "10.0.0.0/8"] } });
    expect(closed).toEqual([{ field: "network", before: "internet", after: "allowlist: pypi.org, 10.0.0.0/8" }]);
    expect(diffVersions(base, { ...base, runtime: "gvisor", disk: 2048 })).toEqual([
      { field: "disk", before: "1024 MiB", after: "2048 MiB" },
      { field: "runtime", before: "runc", after: "gvisor" },
    ]);
  });

  it("reads the disk field, empty for the default", () => {
    expect(parseDisk("")).toBeUndefined();
    expect(parseDisk(" 512 ")).toBe(512);
    expect(() => parseDisk("1.5")).toThrow(/whole number of MiB/);
    expect(() => parseDisk("0")).toThrow(/whole number of MiB/);
  });
});

describe("network policy fields", () => {
  it("reads the allow list from lines, commas and spaces, once each", () => {
    expect(parseAllow("pypi.org\n 203.0.113.0/24, example.com  pypi.org\n\n")).toEqual([
      "pypi.org",
      "203.0.113.0/24",
      "example.com",
    ]);
    expect(parseAllow("  ")).toEqual([]);
    expect(formatAllow(["a.org", "b.org"])).toBe("a.org\nb.org");
    expect(parseAllow(formatAllow(["a.org", "10.0.0.1"]))).toEqual(["a.org", "10.0.0.1"]);
  });

  it("sends the allow list only with the allowlist egress", () => {
    expect(policyOf("none", "pypi.org")).toEqual({ egress: "none", allow: [] });
    expect(policyOf("internet", "")).toEqual({ egress: "internet", allow: [] });
    expect(policyOf("allowlist", "pypi.org")).toEqual({ egress: "allowlist", allow: ["pypi.org"] });
    expect(() => policyOf("allowlist", " ")).toThrow(/at least one/);
    expect(() => policyOf("allowlist", Array.from({ length: 65 }, (_, i) => `h${i}.org`).join("\n"))).toThrow(/at most 64/);
  });

  it("describes and compares policies", () => {
    expect(describeNetwork({ egress: "none", allow: [] })).toBe("none");
    expect(describeNetwork(undefined)).toBe("internet");
    expect(describeNetwork({ egress: "allowlist", allow: ["a.org"] })).toBe("allowlist: a.org");
    expect(samePolicy({ egress: "none", allow: ["x"] }, { egress: "none", allow: [] })).toBe(true);
    expect(samePolicy({ egress: "allowlist", allow: ["x"] }, { egress: "allowlist", allow: ["y"] })).toBe(false);
  });

  it("puts the API's validation problems on the network field, naming the entry", () => {
    const error = new SandboxApiError({
      code: "VALIDATION_ERROR",
      message: "The request is invalid.",
      status: 422,
      details: {
        errors: [
          { path: "network.allow.1", message: "Each entry must be an IPv4 CIDR (such as 203.0.113.0/24) or a hostname." },
          { path: "memory", message: "Too much." },
        ],
      },
    });
    const problems = problemsUnder(error, "network");
    expect(problems).toEqual([{ path: "allow.1", message: "Each entry must be an IPv4 CIDR (such as 203.0.113.0/24) or a hostname." }]);
    expect(problems.map((p) => describeAllowProblem(p, ["pypi.org", "not a host!"]))).toEqual([
      '"not a host!": Each entry must be an IPv4 CIDR (such as 203.0.113.0/24) or a hostname.',
    ]);
    expect(otherFieldLines(error, ["network"])).toEqual(["memory: Too much."]);
    expect(problemsUnder(error, "")).toHaveLength(2);
  });
});

function sandbox(id: string, status: string): Sandbox {
  return {
    id,
    name: id,
    environmentId: "env",
    environmentVersion: 1,
    status,
    statusReason: null,
    image: "busybox",
    cpu: 1,
    memory: 256,
    network: { egress: "internet", allow: [] },
    runtime: "runc",
    hostId: "local",
    disk: 1024,
    env: {},
    metadata: {},
    endpoints: [],
    createdAt: "2024-01-01T00:00:00Z",
    startedAt: null,
    stoppedAt: null,
    expiresAt: "2024-01-01T01:00:00Z",
    onExpire: "destroy",
    destroyedAt: null,
  };
}

function event(id: string, sandboxId: string, status: string): SandboxEvent {
  return { id, type: `sandbox.${status}`, sandboxId, status, occurredAt: "2024-01-01T00:00:05Z", data: {} };
}

describe("the live sandbox list", () => {
  it("moves a sandbox to the status an event carries", () => {
    const next = listAfterEvent([sandbox("a", "pending")], event("7", "a", "running"), {});
    expect(next?.[0]?.status).toBe("running");
    expect(next?.[0]?.startedAt).toBe("2024-01-01T00:00:05Z");
  });

  it("drops a destroyed sandbox from the default view and keeps it when filtered for", () => {
    expect(listAfterEvent([sandbox("a", "running")], event("8", "a", "destroyed"), {})).toEqual([]);
    expect(listAfterEvent([sandbox("a", "running")], event("8", "a", "destroyed"), { status: "destroyed" })).toHaveLength(1);
  });

  it("says when an event names a sandbox it does not hold", () => {
    expect(listAfterEvent([], event("9", "b", "running"), {})).toBeUndefined();
  });

  it("lays the newest event over an older answer", () => {
    const latest = new LatestEvents();
    expect(latest.record(event("10", "a", "running"))).toBe(true);
    expect(latest.record(event("9", "a", "starting"))).toBe(false);
    expect(latest.merge(sandbox("a", "pending")).status).toBe("running");
    expect(isLaterEvent("100", "99")).toBe(true);
  });

  it("filters by environment", () => {
    expect(matchesFilter(sandbox("a", "running"), { environmentId: "other" })).toBe(false);
  });
});

describe("API key expiry", () => {
  const now = Date.parse("2026-01-10T12:00:00Z");

  it("says when a key stops working, and marks an expired one", () => {
    expect(formatExpiry(null, now)).toEqual({ text: "never", expired: false });
    expect(formatExpiry("2026-02-09T12:00:00Z", now)).toEqual({ text: "in 30 days", expired: false });
    expect(formatExpiry("2026-01-11T13:00:00Z", now)).toEqual({ text: "in 1 day", expired: false });
    expect(formatExpiry("2026-01-10T17:30:00Z", now)).toEqual({ text: "in 5 h", expired: false });
    expect(formatExpiry("2026-01-10T12:10:00Z", now)).toEqual({ text: "in 10 min", expired: false });
    expect(formatExpiry("2026-01-10T10:00:00Z", now)).toEqual({ text: "expired 2 h ago", expired: true });
  });

  it("reads the expires-in-days field", () => {
    expect(parseExpiryDays("")).toBeUndefined();
    expect(parseExpiryDays(" 30 ")).toBe(30);
    expect(parseExpiryDays("3650")).toBe(3650);
    for (const wrong of ["0", "3651", "1.5", "-2", "soon"]) expect(() => parseExpiryDays(wrong)).toThrow(/1 to 3650/);
  });
});

describe("errors and numbers for people", () => {
  it("shows the API's message and the fields of a validation error", () => {
    const error = new SandboxApiError({
      code: "VALIDATION_ERROR",
      status: 400,
      message: "The request is invalid.",
      details: { errors: [{ path: "memory", message: "Must be at least 6." }] },
    });
    expect(readableError(error)).toEqual({
      message: "The request is invalid.",
      fields: ["memory: Must be at least 6."],
      problems: [{ path: "memory", message: "Must be at least 6." }],
      code: "VALIDATION_ERROR",
    });
  });

  it("says the platform cannot be reached instead of a stack", () => {
    const error = new SandboxApiError({ code: "NETWORK_ERROR", status: 0, message: "fetch failed" });
    expect(readableError(error).message).toMatch(/cannot be reached/);
  });

  it("formats bytes", () => {
    expect(formatBytes(0)).toBe("0 B");
    expect(formatBytes(1536)).toBe("1.5 KiB");
    expect(formatBytes(256 * 1024 * 1024)).toBe("256 MiB");
  });
});

function snap(status: string, id = "s1"): Snapshot {
  return {
    id,
    name: `snap-${id}`,
    sandboxId: "b1",
    environmentId: "e1",
    environmentVersion: 1,
    status,
    statusReason: null,
    sizeBytes: 0,
    createdAt: "2026-01-01T00:00:00Z",
  };
}

describe("waiting for a snapshot", () => {
  it("reads it every interval until it is ready, reporting each answer", async () => {
    const answers = [snap("creating"), snap("ready")];
    const slept: number[] = [];
    const seen: string[] = [];
    const done = await waitForSnapshot(() => Promise.resolve(answers.shift() ?? snap("ready")), snap("creating"), {
      intervalMs: 1000,
      sleep: (ms) => {
        slept.push(ms);
        return Promise.resolve();
      },
      onProgress: (s) => seen.push(s.status),
    });
    expect(done.status).toBe("ready");
    expect(slept).toEqual([1000, 1000]);
    expect(seen).toEqual(["creating", "ready"]);
  });

  it("stops at failed", async () => {
    const done = await waitForSnapshot(() => Promise.resolve(snap("failed")), snap("creating"), { sleep: () => Promise.resolve() });
    expect(done.status).toBe("failed");
  });

  it("does not read a snapshot that is already ready", async () => {
    let reads = 0;
    await waitForSnapshot(() => {
      reads += 1;
      return Promise.resolve(snap("ready"));
    }, snap("ready"));
    expect(reads).toBe(0);
  });

  it("gives up after the deadline with a sentence", async () => {
    let clock = 0;
    await expect(
      waitForSnapshot(() => Promise.resolve(snap("creating")), snap("creating"), {
        deadlineMs: 3000,
        intervalMs: 1000,
        now: () => clock,
        sleep: (ms) => {
          clock += ms;
          return Promise.resolve();
        },
      }),
    ).rejects.toThrow(/still being made/);
    expect(clock).toBe(3000);
  });

  it("stops when the page is left", async () => {
    const controller = new AbortController();
    let reads = 0;
    await expect(
      waitForSnapshot(
        () => {
          reads += 1;
          return Promise.resolve(snap("creating"));
        },
        snap("creating"),
        {
          signal: controller.signal,
          sleep: () => {
            controller.abort();
            return Promise.resolve();
          },
        },
      ),
    ).rejects.toThrow(/Stopped/);
    expect(reads).toBe(0);
  });

  it("offers only ready snapshots", () => {
    expect(readySnapshots([snap("ready", "a"), snap("creating", "b"), snap("failed", "c")]).map((s) => s.id)).toEqual(["a"]);
  });
});

describe("volume mounts", () => {
  it("sends the rows with a volume, paths trimmed", () => {
    expect(
      mountsFromRows([
        { volumeId: "v1", mountPath: " /data ", readOnly: true },
        { volumeId: "", mountPath: "", readOnly: false },
      ]),
    ).toEqual({ mounts: [{ volumeId: "v1", mountPath: "/data", readOnly: true }] });
  });

  it("refuses a relative path, a path twice and a volume twice", () => {
    expect(mountsFromRows([{ volumeId: "v1", mountPath: "data", readOnly: false }])).toEqual({
      problem: 'The mount path "data" must start with /.',
    });
    expect(
      mountsFromRows([
        { volumeId: "v1", mountPath: "/a", readOnly: false },
        { volumeId: "v2", mountPath: "/a", readOnly: false },
      ]),
    ).toEqual({ problem: "Two volumes are mounted at /a." });
    expect(
      mountsFromRows([
        { volumeId: "v1", mountPath: "/a", readOnly: false },
        { volumeId: "v1", mountPath: "/b", readOnly: false },
      ]),
    ).toEqual({ problem: "A volume can be mounted only once." });
  });
});

describe("workspace paths and text", () => {
  it("joins a name to a directory", () => {
    expect(joinPath("/", "a.txt")).toBe("/a.txt");
    expect(joinPath("/srv/app", "a.txt")).toBe("/srv/app/a.txt");
  });

  it("goes up to the parent, stopping at the root", () => {
    expect(parentPath("/srv/app")).toBe("/srv");
    expect(parentPath("/srv/")).toBe("/");
    expect(parentPath("/")).toBe("/");
  });

  it("shows a shell command as typed", () => {
    expect(describeCommand(["sh", "-c", "echo hi && ls"])).toBe("echo hi && ls");
    expect(describeCommand(["python", "-m", "http.server"])).toBe("python -m http.server");
  });

  it("names a download after the file", () => {
    expect(baseName("/srv/app/report.csv")).toBe("report.csv");
  });

  it("shows UTF-8 text and refuses binary", () => {
    expect(asText(new TextEncoder().encode("héllo\n"))).toBe("héllo\n");
    expect(asText(new Uint8Array([0x68, 0x00, 0x69]))).toBeUndefined();
    expect(asText(new Uint8Array([0xff, 0xfe, 0x41]))).toBeUndefined();
  });
});
