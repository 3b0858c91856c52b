/**
 * Samples of `GET /sandboxes/:id/metrics` as chart series. The API reports network and block
 * I/O as counters since the container started; the charts show rates, from the difference
 * between two samples over the time between them. A counter that went down (the container
 * restarted) starts again from zero instead of drawing a negative rate.
 */

import type { Metrics } from "@sandbox-platform/sdk";

/** Seconds between two samples (the metrics panel polls this often). */
export const POLL_SECONDS = 2;
/** Points kept per chart: 2 minutes at one sample every 2 s. */
export const MAX_POINTS = 60;

export interface MetricsPoint {
  /** Seconds since the epoch (uPlot's x axis). */
  time: number;
  cpuPercent: number;
  memoryBytes: number;
  memoryLimitBytes: number;
  rxRate: number;
  txRate: number;
  readRate: number;
  writeRate: number;
  pids: number;
}

export interface MetricsHistory {
  points: MetricsPoint[];
  /** The last raw sample, to derive the next rates from. */
  last: Metrics | undefined;
}

export const EMPTY_HISTORY: MetricsHistory = { points: [], last: undefined };

function rate(current: number, previous: number | undefined, seconds: number): number {
  if (previous === undefined || seconds <= 0 || current < previous) return 0;
  return (current - previous) / seconds;
}

/** The history with `sample` added (a repeat of the last sample's timestamp changes nothing). */
export function addSample(history: MetricsHistory, sample: Metrics, max: number = MAX_POINTS): MetricsHistory {
  const time = new Date(sample.timestamp).getTime() / 1000;
  if (Number.isNaN(time)) return history;
  const previous = history.last;
  const previousTime = previous ? new Date(previous.timestamp).getTime() / 1000 : undefined;
  if (previousTime !== undefined && time <= previousTime) return history;
  const seconds = previousTime === undefined ? 0 : time - previousTime;
  const point: MetricsPoint = {
    time,
    cpuPercent: sample.cpu.usagePercent,
    memoryBytes: sample.memory.usageBytes,
    memoryLimitBytes: sample.memory.limitBytes,
    rxRate: rate(sample.network.rxBytes, previous?.network.rxBytes, seconds),
    txRate: rate(sample.network.txBytes, previous?.network.txBytes, seconds),
    readRate: rate(sample.io.readBytes, previous?.io.readBytes, seconds),
    writeRate: rate(sample.io.writeBytes, previous?.io.writeBytes, seconds),
    pids: sample.pids,
  };
  const points = history.points.concat(point);
  return { points: points.length > max ? points.slice(points.length - max) : points, last: sample };
}

export type SeriesKey = Exclude<keyof MetricsPoint, "time">;

/** uPlot's data layout: the x values, then one array per series. */
export function chartData(points: readonly MetricsPoint[], keys: readonly SeriesKey[]): number[][] {
  return [points.map((p) => p.time), ...keys.map((key) => points.map((p) => p[key]))];
}
