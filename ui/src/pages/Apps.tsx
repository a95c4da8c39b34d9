import { useMemo, useState } from 'preact/hooks';
import { api, get } from '../api';
import { Chart, fillSeries } from '../Chart';
import { fmtInt, fmtMs, fmtTime, fmtUsd } from '../format';
import { navigate } from '../nav';
import { errText, Msg, State, useData } from '../ui';

export function Apps() {
  const since = Date.now() - 30 * 24 * 3600_000;
  const list = useData(async () => {
    const [apps, usage] = await Promise.all([get('/api/admin/apps'), get(`/api/admin/usage?group_by=app&since=${since}`)]);
    const spend: Record<number, any> = {};
    for (const u of usage.data) spend[u.key] = u;
    return { apps: apps.data as any[], spend };
  });
  const [open, setOpen] = useState<number | null>(null);
  const [name, setName] = useState('');
  const [msg, setMsg] = useState<[string, 'ok' | 'error']>(['', 'ok']);
  const create = async (e: Event) => {
    e.preventDefault();
    try {
      const app = await api('POST', '/api/admin/apps', { name });
      setName(''); setMsg([`App ${app.name} created.`, 'ok']); setOpen(app.id); list.reload();
    } catch (err) { setMsg([errText(err), 'error']); }
  };
  return (
    <>
      <form class="form inline card" onSubmit={create} aria-label="Create an app">
        <label>New app name <input name="app_name" required value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} /></label>
        <button type="submit">Create app</button>
        <Msg text={msg[0]} kind={msg[1]} />
      </form>
      <State loading={list.loading} error={list.error} empty={!list.data?.apps.length} emptyText="No apps yet: create one above.">
        <div class="scroll"><table>
          <thead><tr><th scope="col">App</th><th scope="col">Status</th><th scope="col">Active keys</th><th scope="col">Calls (30 d)</th><th scope="col">Spend (30 d)</th><th scope="col"><span class="sr-only">Open</span></th></tr></thead>
          <tbody>{list.data?.apps.map((a) => (
            <tr>
              <td>{a.name} <span class="muted">#{a.id}</span></td>
              <td>{a.enabled ? 'enabled' : 'disabled'}</td>
              <td>{a.active_keys}</td>
              <td>{fmtInt(list.data!.spend[a.id]?.calls ?? 0)}</td>
              <td>{fmtUsd(list.data!.spend[a.id]?.cost_micros ?? 0)}</td>
              <td><button type="button" aria-expanded={open === a.id} onClick={() => setOpen(open === a.id ? null : a.id)}>{open === a.id ? 'Close' : 'Manage'}</button></td>
            </tr>
          ))}</tbody>
        </table></div>
      </State>
      {open != null && list.data?.apps.find((a) => a.id === open) &&
        <AppDetail app={list.data.apps.find((a) => a.id === open)} onChange={list.reload} />}
    </>
  );
}

function AppDetail(p: { app: any; onChange: () => void }) {
  const id = p.app.id;
  const d = useData(async () => {
    const [keys, limits, credits, ledger] = await Promise.all([
      get(`/api/admin/apps/${id}/keys`), get(`/api/admin/apps/${id}/limits`),
      get(`/api/admin/apps/${id}/credits`).catch(() => null), get(`/api/admin/ledger?app=${id}&limit=20`).catch(() => null),
    ]);
    return { keys: keys.data as any[], limits, credits, ledger: ledger?.data ?? [] };
  }, [id]);
  const [newKey, setNewKey] = useState('');
  const [keyName, setKeyName] = useState('');
  const [copied, setCopied] = useState('');
  const [msg, setMsg] = useState<[string, 'ok' | 'error']>(['', 'ok']);
  const act = async (f: () => Promise<unknown>, ok: string) => {
    try { await f(); setMsg([ok, 'ok']); d.reload(); p.onChange(); } catch (e) { setMsg([errText(e), 'error']); }
  };
  const mint = (e: Event) => {
    e.preventDefault();
    act(async () => {
      const r = await api('POST', `/api/admin/apps/${id}/keys`, { name: keyName || null });
      setNewKey(r.key); setKeyName(''); setCopied('');
    }, 'Key created.');
  };
  const copy = async () => {
    try { await navigator.clipboard.writeText(newKey); setCopied('Copied.'); } catch { setCopied('Copy failed: select the key and copy it.'); }
  };
  return (
    <section class="card" aria-label={`App ${p.app.name}`}>
      <div class="row"><h2>{p.app.name}</h2>
        <button type="button" onClick={() => act(() => api('PATCH', `/api/admin/apps/${id}`, { enabled: !p.app.enabled }), 'Saved.')}>
          {p.app.enabled ? 'Disable app' : 'Enable app'}</button></div>
      <Msg text={msg[0]} kind={msg[1]} />
      <Usage id={id} />
      <RecentCalls id={id} />
      {newKey && <div class="newkey" role="status">
        <p><strong>New key — shown once.</strong> Store it now; aihub keeps only its hash.</p>
        <code class="secret" data-testid="new-key">{newKey}</code>
        <button type="button" onClick={copy}>Copy key</button> <span>{copied}</span>
        <button type="button" onClick={() => setNewKey('')}>Done</button>
      </div>}
      <form class="form inline" onSubmit={mint} aria-label="Create a key">
        <label>Key name <input name="new_key_name" value={keyName} onInput={(e) => setKeyName((e.target as HTMLInputElement).value)} /></label>
        <button type="submit">Create key</button>
      </form>
      <State loading={d.loading} error={d.error} empty={!d.data}>
        {d.data && <>
          <h3>Keys</h3>
          {d.data.keys.length === 0 ? <p class="muted">No keys.</p> : <div class="scroll"><table>
            <thead><tr><th scope="col">Prefix</th><th scope="col">Name</th><th scope="col">Created</th><th scope="col">Last used</th><th scope="col">Status</th></tr></thead>
            <tbody>{d.data.keys.map((k) => <tr>
              <td><code>{k.prefix}…</code></td><td>{k.name ?? '—'}</td><td>{fmtTime(k.created_at)}</td><td>{fmtTime(k.last_used_at)}</td>
              <td>{k.revoked_at ? `revoked ${fmtTime(k.revoked_at)}` :
                <button type="button" onClick={() => act(() => api('POST', `/api/admin/apps/${id}/keys/${k.id}/revoke`), 'Key revoked.')}>Revoke</button>}</td>
            </tr>)}</tbody></table></div>}
          <Budget id={id} act={act} />
          <Prices id={id} act={act} />
          <Limits id={id} limits={d.data.limits} act={act} />
          <Credits id={id} credits={d.data.credits} ledger={d.data.ledger} act={act} />
        </>}
      </State>
    </section>
  );
}

function Limits(p: { id: number; limits: any; act: (f: () => Promise<unknown>, ok: string) => void }) {
  const { effective, ...own } = p.limits ?? {};
  const [text, setText] = useState(JSON.stringify(own, null, 2));
  return (
    <>
      <h3>Limits</h3>
      <p class="muted">In force (with the config's defaults): <code>{JSON.stringify(effective ?? {})}</code></p>
      <form class="form" onSubmit={(e) => { e.preventDefault(); p.act(() => api('PUT', `/api/admin/apps/${p.id}/limits`, JSON.parse(text)), 'Limits saved.'); }}>
        <label>App limits (JSON patch) <textarea rows={4} value={text} onInput={(e) => setText((e.target as HTMLTextAreaElement).value)} /></label>
        <button type="submit">Save limits</button>
      </form>
    </>
  );
}

function Credits(p: { id: number; credits: any; ledger: any[]; act: (f: () => Promise<unknown>, ok: string) => void }) {
  const [amount, setAmount] = useState('');
  const [note, setNote] = useState('');
  if (!p.credits) return null;
  return (
    <>
      <h3>Credits</h3>
      <p>Balance: <strong>{p.credits.balance ?? '—'}</strong>{p.credits.held != null ? ` (held ${p.credits.held})` : ''}{p.credits.available != null ? ` · available ${p.credits.available}` : ''}</p>
      <form class="form inline" onSubmit={(e) => { e.preventDefault(); p.act(() => api('POST', `/api/admin/apps/${p.id}/credits`, { amount, note: note || null }), 'Credits granted.'); setAmount(''); }}>
        <label>Grant credits <input name="amount" inputMode="decimal" required value={amount} onInput={(e) => setAmount((e.target as HTMLInputElement).value)} /></label>
        <label>Note <input name="note" value={note} onInput={(e) => setNote((e.target as HTMLInputElement).value)} /></label>
        <button type="submit">Grant</button>
      </form>
      {p.ledger.length > 0 && <div class="scroll"><table>
        <caption class="sr-only">Ledger</caption>
        <thead><tr><th scope="col">When</th><th scope="col">Kind</th><th scope="col">Amount</th><th scope="col">Note</th></tr></thead>
        <tbody>{p.ledger.map((e) => <tr><td>{fmtTime(e.created_at)}</td><td>{e.kind}</td><td>{e.amount}</td><td>{e.note ?? e.request_id ?? ''}</td></tr>)}</tbody>
      </table></div>}
    </>
  );
}

const DAY = 24 * 3600_000;
const USAGE_METRICS: [string, string][] = [['calls', 'Calls'], ['tokens', 'Tokens'], ['cost_micros', 'Cost (µUSD)'], ['errors', 'Errors']];

/** The app's last 30 days, aggregated by the server (`/api/admin/overview?app=`). */
function Usage(p: { id: number }) {
  const [metric, setMetric] = useState('calls');
  const u = useData(() => {
    const now = Date.now();
    return get(`/api/admin/overview?app=${p.id}&since=${now - 30 * DAY}&until=${now}&bucket=day`);
  }, [p.id]);
  const [xs, ys] = useMemo(() => fillSeries(u.data, metric), [u.data, metric]);
  const t = u.data?.totals;
  return (
    <section aria-label="Usage, last 30 days">
      <div class="row"><h3>Usage, last 30 days <span class="muted">(per day)</span></h3>
        <label>Usage metric <select value={metric} onChange={(e) => setMetric((e.target as HTMLSelectElement).value)}>
          {USAGE_METRICS.map(([k, l]) => <option value={k}>{l}</option>)}</select></label></div>
      <State loading={u.loading} error={u.error} empty={!u.data}>
        {t && <p data-testid="app-usage-totals">{fmtInt(t.calls)} calls · {fmtInt(t.tokens)} tokens · {fmtUsd(t.cost_micros)} · p50 latency {fmtMs(t.latency_p50_ms)}</p>}
        {u.data && (u.data.series.length === 0 ? <p class="muted">No calls in the last 30 days.</p>
          : <Chart xs={xs} ys={ys} points={u.data.series.length} label={USAGE_METRICS.find(([k]) => k === metric)![1]} />)}
      </State>
    </section>
  );
}

/** The app's ten latest calls, and a link into the Calls page filtered to the app. */
function RecentCalls(p: { id: number }) {
  const c = useData(() => get(`/api/admin/calls?app=${p.id}&limit=10`), [p.id]);
  const rows: any[] = c.data?.data ?? [];
  const href = `/calls?app=${p.id}`;
  return (
    <section aria-label="Recent calls">
      <div class="row"><h3>Recent calls</h3>
        <a href={href} onClick={(e) => { e.preventDefault(); navigate(href); }}>All of this app's calls</a></div>
      <State loading={c.loading} error={c.error} empty={rows.length === 0} emptyText="No calls yet.">
        <div class="scroll"><table>
          <thead><tr><th scope="col">Time</th><th scope="col">Model</th><th scope="col">Status</th><th scope="col">Tokens</th><th scope="col">Cost</th></tr></thead>
          <tbody>{rows.map((r) => <tr>
            <td>{fmtTime(r.created_at)}</td><td>{r.model}</td>
            <td><span class={`badge ${r.status === 'ok' ? 'ok' : 'bad'}`}>{r.status} {r.http_status}</span></td>
            <td>{fmtInt(r.input_tokens + r.output_tokens)}</td><td>{fmtUsd(r.cost_micros)}</td>
          </tr>)}</tbody>
        </table></div>
      </State>
    </section>
  );
}

type Act = (f: () => Promise<unknown>, ok: string) => void;

/** "5.000000" -> "5", "0.120000" -> "0.12": the server's exact decimal, shorter. */
const dec = (v: string | null | undefined) => (v == null ? '' : v.includes('.') ? v.replace(/0+$/, '').replace(/\.$/, '') : v);

/** Daily and monthly spend caps (USD); an empty field is no cap. */
function Budget(p: { id: number; act: Act }) {
  const b = useData(() => get(`/api/admin/apps/${p.id}/budget`), [p.id]);
  const [daily, setDaily] = useState<string | null>(null);
  const [monthly, setMonthly] = useState<string | null>(null);
  const dv = daily ?? dec(b.data?.daily_usd);
  const mv = monthly ?? dec(b.data?.monthly_usd);
  const save = (e: Event) => {
    e.preventDefault();
    p.act(async () => {
      await api('PUT', `/api/admin/apps/${p.id}/budget`, { daily_usd: dv.trim() || null, monthly_usd: mv.trim() || null });
      setDaily(null); setMonthly(null); b.reload();
    }, 'Budget saved.');
  };
  const s = b.data?.spent;
  return (
    <>
      <h3>Budget</h3>
      <State loading={b.loading} error={b.error} empty={!b.data}>
        {s && <p>Spent today <strong>${dec(s.daily_usd)}</strong> of {b.data.daily_usd ? `$${dec(b.data.daily_usd)}` : 'no cap'} ·
          this month <strong>${dec(s.monthly_usd)}</strong> of {b.data.monthly_usd ? `$${dec(b.data.monthly_usd)}` : 'no cap'}
          {Number(s.in_flight_usd) > 0 ? ` · $${dec(s.in_flight_usd)} in flight` : ''}</p>}
        <form class="form inline" aria-label="Budget" onSubmit={save}>
          <label>Daily cap (USD) <input name="daily_usd" inputMode="decimal" value={dv} placeholder="none" onInput={(e) => setDaily((e.target as HTMLInputElement).value)} /></label>
          <label>Monthly cap (USD) <input name="monthly_usd" inputMode="decimal" value={mv} placeholder="none" onInput={(e) => setMonthly((e.target as HTMLInputElement).value)} /></label>
          <button type="submit">Save budget</button>
        </form>
      </State>
    </>
  );
}

const num = (micros: number | null | undefined) => (micros == null ? '—' : String(micros / 1e6));

/** Prices this app pays instead of rate plus margin (credits per million tokens). */
function Prices(p: { id: number; act: Act }) {
  const l = useData(() => get(`/api/admin/apps/${p.id}/prices`), [p.id]);
  const [f, setF] = useState({ model: '', input: '', output: '', cached: '' });
  const rows: any[] = l.data?.data ?? [];
  const path = (model: string) => `/api/admin/apps/${p.id}/prices/${model.split('/').map(encodeURIComponent).join('/')}`;
  const add = (e: Event) => {
    e.preventDefault();
    p.act(async () => {
      const body: any = { input_per_mtok: Number(f.input), output_per_mtok: Number(f.output) };
      if (f.cached.trim()) body.cached_per_mtok = Number(f.cached);
      await api('PUT', path(f.model.trim()), body);
      setF({ model: '', input: '', output: '', cached: '' }); l.reload();
    }, `Price for ${f.model.trim()} saved.`);
  };
  const set = (k: keyof typeof f) => (e: Event) => setF({ ...f, [k]: (e.target as HTMLInputElement).value });
  return (
    <>
      <h3>Explicit prices</h3>
      <p class="muted">Credits per million tokens this app pays for a model, instead of the rate plus margin.</p>
      <State loading={l.loading} error={l.error} empty={rows.length === 0} emptyText="No explicit prices: this app pays the rate plus margin.">
        <div class="scroll"><table>
          <caption class="sr-only">Explicit prices</caption>
          <thead><tr><th scope="col">Model</th><th scope="col">Input</th><th scope="col">Output</th><th scope="col">Cached</th><th scope="col"><span class="sr-only">Remove</span></th></tr></thead>
          <tbody>{rows.map((r) => <tr>
            <td>{r.model}</td><td>{num(r.input_per_mtok_micros)}</td><td>{num(r.output_per_mtok_micros)}</td><td>{num(r.cached_per_mtok_micros)}</td>
            <td><button type="button" aria-label={`Remove the price for ${r.model}`}
              onClick={() => p.act(async () => { await api('DELETE', path(r.model)); l.reload(); }, `Price for ${r.model} removed.`)}>Remove</button></td>
          </tr>)}</tbody>
        </table></div>
      </State>
      <form class="form inline" aria-label="Add a price" onSubmit={add}>
        <label>Price model <input name="price_model" required placeholder="prefix/model" value={f.model} onInput={set('model')} /></label>
        <label>Input / 1M <input name="price_input" inputMode="decimal" class="narrow" required value={f.input} onInput={set('input')} /></label>
        <label>Output / 1M <input name="price_output" inputMode="decimal" class="narrow" required value={f.output} onInput={set('output')} /></label>
        <label>Cached / 1M <input name="price_cached" inputMode="decimal" class="narrow" value={f.cached} onInput={set('cached')} /></label>
        <button type="submit">Save price</button>
      </form>
    </>
  );
}
