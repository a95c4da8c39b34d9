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
