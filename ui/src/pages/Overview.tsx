import { useMemo, useState } from 'preact/hooks';
import { get } from '../api';
import { Chart, fillSeries } from '../Chart';
import { fmtInt, fmtMs, fmtPct, fmtUsd } from '../format';
import { State, useData } from '../ui';

const HOUR = 3600_000;
const PRESETS: [string, number][] = [['24h', 24 * HOUR], ['7d', 7 * 24 * HOUR], ['30d', 30 * 24 * HOUR]];
const METRICS: [string, string][] = [
  ['calls', 'Calls'], ['errors', 'Errors'], ['tokens', 'Tokens'], ['cost_micros', 'Cost (µUSD)'],
  ['latency_avg_ms', 'Avg latency (ms)'], ['ttfb_avg_ms', 'Avg TTFT (ms)'],
];

function Card(p: { label: string; value: string; now?: number | null; before?: number | null; lowerIsBetter?: boolean }) {
  let delta = '';
  let cls = 'muted';
  if (p.now != null && p.before != null && p.before !== 0) {
    const d = (p.now - p.before) / Math.abs(p.before);
    delta = `${d >= 0 ? '+' : ''}${(d * 100).toFixed(0)}% vs previous`;
    cls = (d > 0) !== !!p.lowerIsBetter ? 'up' : 'down';
  } else if (p.before === 0 && p.now) delta = 'new this period';
  return (
    <div class="card stat">
      <div class="stat-label">{p.label}</div>
      <div class="stat-value">{p.value}</div>
      <div class={`stat-delta ${cls}`}>{delta || 'no previous data'}</div>
    </div>
  );
}

const toInput = (ms: number) => new Date(ms - new Date(ms).getTimezoneOffset() * 60000).toISOString().slice(0, 16);

export function Overview() {
  const [preset, setPreset] = useState('24h');
  const [custom, setCustom] = useState<[string, string]>([toInput(Date.now() - 24 * HOUR), toInput(Date.now())]);
  const [metric, setMetric] = useState('calls');
  const range = useMemo(() => {
    if (preset === 'custom') return [new Date(custom[0]).getTime(), new Date(custom[1]).getTime()];
    const span = PRESETS.find(([k]) => k === preset)![1];
    const now = Date.now();
    return [now - span, now];
  }, [preset, custom]);
  const { data, error, loading } = useData(
    () => get(`/api/admin/overview?since=${range[0]}&until=${range[1]}`), [range[0], range[1]]);
  const t = data?.totals, pv = data?.previous;
  const [xs, ys] = useMemo(() => fillSeries(data, metric), [data, metric]);
  return (
    <>
      <div class="toolbar" role="group" aria-label="Period">
        {[...PRESETS.map(([k]) => k), 'custom'].map((k) => (
          <button type="button" aria-pressed={preset === k} onClick={() => setPreset(k)}>{k}</button>
        ))}
        {preset === 'custom' && <>
          <label>From <input type="datetime-local" value={custom[0]} onInput={(e) => setCustom([(e.target as HTMLInputElement).value, custom[1]])} /></label>
          <label>To <input type="datetime-local" value={custom[1]} onInput={(e) => setCustom([custom[0], (e.target as HTMLInputElement).value])} /></label>
        </>}
      </div>
      <State loading={loading} error={error} empty={!data}>
        {t && <>
          <section class="cards" aria-label="Totals">
            <Card label="Calls" value={fmtInt(t.calls)} now={t.calls} before={pv.calls} />
            <Card label="Error rate" value={fmtPct(t.error_rate)} now={t.error_rate} before={pv.error_rate} lowerIsBetter />
            <Card label="Tokens" value={fmtInt(t.tokens)} now={t.tokens} before={pv.tokens} />
            <Card label="Cost" value={fmtUsd(t.cost_micros)} now={t.cost_micros} before={pv.cost_micros} />
            <Card label="Latency p50 / p95" value={`${fmtMs(t.latency_p50_ms)} / ${fmtMs(t.latency_p95_ms)}`} now={t.latency_p95_ms} before={pv.latency_p95_ms} lowerIsBetter />
            <Card label="TTFT p50 / p95" value={`${fmtMs(t.ttfb_p50_ms)} / ${fmtMs(t.ttfb_p95_ms)}`} now={t.ttfb_p95_ms} before={pv.ttfb_p95_ms} lowerIsBetter />
          </section>
          <section class="card">
            <div class="row">
              <h2>Over time <span class="muted">(per {data.bucket})</span></h2>
              <label>Metric <select value={metric} onChange={(e) => setMetric((e.target as HTMLSelectElement).value)}>
                {METRICS.map(([k, l]) => <option value={k}>{l}</option>)}
              </select></label>
            </div>
            {!data.series.length ? <p class="muted">No calls in this period.</p>
              : <Chart xs={xs} ys={ys} points={data.series.length} label={METRICS.find(([k]) => k === metric)![1]} />}
          </section>
          <div class="grid2">
            <section class="card"><h2>Top models</h2><TopTable rows={data.top_models} name={(r) => r.key} /></section>
            <section class="card"><h2>Top apps</h2><TopTable rows={data.top_apps} name={(r) => r.app_name ?? `app ${r.key}`} /></section>
          </div>
          <section class="card"><h2>Provider health</h2>
            {data.providers.length === 0 ? <p class="muted">No routable providers.</p> :
              <ul class="health">{data.providers.map((p: any) => (
                <li><span class={`dot ${!p.needs_key || (p.keys > 0 && p.healthy_keys === p.keys) ? 'ok' : p.healthy_keys > 0 ? 'warn' : 'bad'}`} aria-hidden="true" />
                  <strong>{p.prefix}</strong> <span class="muted">({p.plugin})</span>{' '}
                  {p.needs_key ? `${p.healthy_keys}/${p.keys} keys healthy` : 'no key needed'}</li>
              ))}</ul>}
          </section>
        </>}
      </State>
    </>
  );
}

function TopTable(p: { rows: any[]; name: (r: any) => string }) {
  if (!p.rows.length) return <p class="muted">No calls in this period.</p>;
  return (
    <table><thead><tr><th scope="col">Name</th><th scope="col">Calls</th><th scope="col">Tokens</th><th scope="col">Cost</th></tr></thead>
      <tbody>{p.rows.map((r) => <tr><td>{p.name(r)}</td><td>{fmtInt(r.calls)}</td><td>{fmtInt(r.tokens)}</td><td>{fmtUsd(r.cost_micros)}</td></tr>)}</tbody>
    </table>
  );
}
