/** A small live line chart (uPlot on a canvas) that follows its box's width. */

import { useEffect, useRef } from "react";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

import { MAX_POINTS, POLL_SECONDS, chartData } from "../metrics";
import type { MetricsPoint, SeriesKey } from "../metrics";

const WINDOW_SECONDS = MAX_POINTS * POLL_SECONDS;

export interface ChartSeries {
  key: SeriesKey;
  label: string;
  color: string;
}

interface Props {
  title: string;
  points: readonly MetricsPoint[];
  series: readonly ChartSeries[];
  format: (value: number) => string;
  /** The y axis starts at 0 and goes at least this high. */
  minMax?: number;
}

export function Chart({ title, points, series, format, minMax = 1 }: Props) {
  const host = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | undefined>(undefined);
  const formatRef = useRef(format);
  formatRef.current = format;
  const keys = series.map((s) => s.key);
  const keysRef = useRef(keys);
  keysRef.current = keys;
  const pointsRef = useRef(points);
  pointsRef.current = points;

  useEffect(() => {
    const element = host.current;
    if (!element) return;
    const options: uPlot.Options = {
      width: Math.max(200, element.clientWidth),
      height: 160,
      legend: { show: true, live: false },
      cursor: { show: true, drag: { x: false, y: false } },
      scales: {
        // A rolling window ending at the newest sample, also while there is only one.
        x: { time: true, range: (_u, _min, max) => [max - WINDOW_SECONDS, max] },
        y: { range: (_u, _min, max) => [0, Math.max(minMax, max * 1.1)] },
      },
      axes: [
        { stroke: "#64748b", grid: { stroke: "#e2e8f0" } },
        { stroke: "#64748b", grid: { stroke: "#e2e8f0" }, size: 70, values: (_u, values) => values.map((v) => formatRef.current(v)) },
      ],
      series: [
        {},
        ...series.map((s) => ({ label: s.label, stroke: s.color, width: 2, value: (_u: uPlot, v: number | null) => (v === null ? "–" : formatRef.current(v)) })),
      ],
    };
    const chart = new uPlot(options, chartData(pointsRef.current, keysRef.current) as uPlot.AlignedData, element);
    plot.current = chart;
    const observer = new ResizeObserver(() => {
      chart.setSize({ width: Math.max(200, element.clientWidth), height: 160 });
    });
    observer.observe(element);
    return () => {
      observer.disconnect();
      chart.destroy();
      plot.current = undefined;
    };
    // The chart is made once; its data changes below.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  useEffect(() => {
    plot.current?.setData(chartData(points, keysRef.current) as uPlot.AlignedData);
  }, [points]);

  const last = points[points.length - 1];
  return (
    <figure className="chart" data-points={points.length} data-chart={title}>
      <figcaption>
        <strong>{title}</strong>{" "}
        <span className="muted">{last ? series.map((s) => `${s.label} ${format(last[s.key])}`).join(" · ") : "no data yet"}</span>
      </figcaption>
      <div ref={host} className="chart-host" role="img" aria-label={`${title} over the last two minutes`} />
    </figure>
  );
}
