import { useState } from 'preact/hooks';
import { api, get } from '../api';
import { fmtInt, fmtTime, fmtUsd } from '../format';
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
      <p><a href={`/calls?app=${id}`} onClick={(e) => { e.preventDefault(); navigate(`/calls?app=${id}`); }}>This app's calls</a></p>
      <Msg text={msg[0]} kind={msg[1]} />
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
