import { useEffect, useState } from 'preact/hooks';
import { get } from '../api';
import { fmtInt, fmtMs, fmtTime, fmtUsd } from '../format';
import { Drawer, State, useData } from '../ui';

interface Filters { app: string; provider: string; model: string; status: string; since: string; until: string; request_id: string }
const EMPTY: Filters = { app: '', provider: '', model: '', status: '', since: '', until: '', request_id: '' };

function query(f: Filters, extra: Record<string, string> = {}) {
  const q = new URLSearchParams();
  for (const k of ['app', 'provider', 'model', 'status'] as const) if (f[k]) q.set(k, f[k]);
  if (f.request_id) q.set('request_id', f.request_id.trim());
  if (f.since) q.set('since', String(new Date(f.since).getTime()));
  if (f.until) q.set('until', String(new Date(f.until).getTime()));
  for (const [k, v] of Object.entries(extra)) q.set(k, v);
  return q.toString();
}

export function Calls() {
  // `/calls?app=3` (linked from an app's page) opens filtered.
  const initial = { ...EMPTY, app: new URLSearchParams(location.search).get('app') ?? '' };
  const [draft, setDraft] = useState<Filters>(initial);
  const [f, setF] = useState<Filters>(initial);
  const [auto, setAuto] = useState(false);
  const [open, setOpen] = useState<any>(null);
  const list = useData(() => get(`/api/admin/calls?${query(f, { limit: '100' })}`), [f]);
  useEffect(() => {
    if (!auto) return;
    const t = setInterval(list.reload, 5000);
    return () => clearInterval(t);
  }, [auto, list.reload]);
  const rows: any[] = list.data?.data ?? [];
  const field = (k: keyof Filters, label: string, type = 'text') => (
    <label>{label} <input name={k} type={type} value={draft[k]} onInput={(e) => setDraft({ ...draft, [k]: (e.target as HTMLInputElement).value })} /></label>
  );
  return (
    <>
      <form class="form inline card" aria-label="Filter calls" onSubmit={(e) => { e.preventDefault(); setF(draft); }}>
        {field('app', 'App id')}{field('provider', 'Provider')}{field('model', 'Model')}
        <label>Status <select name="status" value={draft.status} onChange={(e) => setDraft({ ...draft, status: (e.target as HTMLSelectElement).value })}>
          <option value="">any</option><option value="ok">ok</option><option value="error">error</option><option value="cancelled">cancelled</option></select></label>
        {field('since', 'From', 'datetime-local')}{field('until', 'To', 'datetime-local')}{field('request_id', 'Request id')}
        <button type="submit">Apply</button>
        <button type="button" onClick={() => { setDraft(EMPTY); setF(EMPTY); }}>Reset</button>
      </form>
      <div class="toolbar">
        <label class="check"><input type="checkbox" checked={auto} onChange={(e) => setAuto((e.target as HTMLInputElement).checked)} /> Auto-refresh (5 s)</label>
        <button type="button" onClick={list.reload}>Refresh</button>
        <a class="button" href={`/api/admin/calls?${query(f, { format: 'csv' })}`} download="calls.csv">Export CSV</a>
      </div>
      <State loading={list.loading} error={list.error} empty={rows.length === 0} emptyText="No calls match.">
        <div class="scroll"><table class="calls">
          <thead><tr><th scope="col">Time</th><th scope="col">Model</th><th scope="col">App</th><th scope="col">Status</th><th scope="col">Tokens</th><th scope="col">Cost</th><th scope="col">Latency</th><th scope="col"><span class="sr-only">Details</span></th></tr></thead>
          <tbody>{rows.map((r) => <tr>
            <td>{fmtTime(r.created_at)}</td><td>{r.model}</td><td>{r.app_id ?? '—'}</td>
            <td><span class={`badge ${r.status === 'ok' ? 'ok' : 'bad'}`}>{r.status} {r.http_status}</span></td>
            <td>{fmtInt(r.input_tokens + r.output_tokens)}</td><td>{fmtUsd(r.cost_micros)}</td><td>{fmtMs(r.latency_ms)}</td>
            <td><button type="button" onClick={() => setOpen(r)}>Details</button></td>
          </tr>)}</tbody>
        </table></div>
      </State>
      {open && <Drawer title={`Call ${open.request_id}`} onClose={() => setOpen(null)}>
        <dl class="details">
          {([['Request id', open.request_id], ['Time', fmtTime(open.created_at)], ['Endpoint', `${open.endpoint}${open.stream ? ' (stream)' : ''}`],
            ['Format', open.format], ['Provider', open.provider], ['Model', open.model], ['Requested model', open.requested_model ?? '—'],
            ['App', open.app_id ?? '—'], ['Status', `${open.status} (HTTP ${open.http_status})`], ['Latency', fmtMs(open.latency_ms)],
            ['Time to first byte', fmtMs(open.ttfb_ms)], ['Attempts', open.attempts], ['Keys tried', open.credentials_tried ?? '—'],
            ['Key used', open.credential_id ?? '—'], ['Tokens in / out / cached', `${open.input_tokens} / ${open.output_tokens} / ${open.cached_tokens}`],
            ['Cost', fmtUsd(open.cost_micros)], ['Cache hit', open.cache_hit ? 'yes' : 'no'],
            ['Error', open.error_class ? `${open.error_class}: ${open.error_message ?? ''}` : '—']] as [string, any][]).map(([k, v]) =>
            <><dt>{k}</dt><dd>{String(v)}</dd></>)}
        </dl>
      </Drawer>}
    </>
  );
}
