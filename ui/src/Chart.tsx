// One time series drawn with uPlot (canvas; ~45 KB minified, no dependencies).
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

export function Chart(p: { xs: number[]; ys: (number | null)[]; label: string; points: number }) {
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    const width = Math.max(280, el.clientWidth || 600);
    const plot = new uPlot({
      width, height: 260,
      series: [{}, { label: p.label, stroke: '#2563eb', width: 2, fill: 'rgba(37,99,235,0.08)', points: { show: true, size: 5 }, spanGaps: false }],
      axes: [{}, { size: 70 }],
      scales: { x: { time: true } },
      legend: { show: true },
    }, [p.xs, p.ys as number[]], el);
    const ro = new ResizeObserver(() => plot.setSize({ width: Math.max(280, el.clientWidth), height: 260 }));
    ro.observe(el);
    return () => { ro.disconnect(); plot.destroy(); };
  }, [p.xs, p.ys, p.label]);
  return <div class="chart" ref={ref} role="img" aria-label={`${p.label} over time`} data-points={p.points} />;
}

/** An overview answer's series over every bucket of its period, so empty hours/days draw
 * as zero (counts) or gaps (latencies). */
export function fillSeries(data: any, metric: string): [number[], (number | null)[]] {
  if (!data?.series?.length) return [[], []];
  const step = data.bucket === 'day' ? 86400 : 3600;
  const by = new Map<number, any>(data.series.map((p: any) => [p.t, p]));
  const counts = !metric.endsWith('_ms');
  const x: number[] = [], y: (number | null)[] = [];
  for (let t = Math.floor(data.since / 1000 / step) * step; t < data.until / 1000; t += step) {
    x.push(t);
    y.push(by.get(t)?.[metric] ?? (counts ? 0 : null));
  }
  return [x, y];
}
