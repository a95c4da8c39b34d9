import { useState } from 'preact/hooks';
import { api, get } from '../api';
import { fmtTime } from '../format';
import { errText, Msg, State, useData } from '../ui';

function health(h: any) {
  if (!h) return '—';
  if (h.state === 'healthy') return 'healthy';
  if (h.state === 'cooling_down') return `cooling down until ${fmtTime(h.until)}`;
  if (h.state === 'ejected') return `ejected until ${fmtTime(h.until)}`;
  if (h.state === 'invalid') return `invalid: ${h.reason ?? h.last_error ?? 'refused'}`;
  return h.state;
}

export function Providers() {
  const list = useData(async () => {
    const [p, plugins] = await Promise.all([get('/api/admin/providers'), get('/api/admin/plugins')]);
    const stored = await Promise.all(p.data.filter((r: any) => r.id != null).map((r: any) =>
      get(`/api/admin/providers/${r.id}`).catch(() => null)));
    const detail: Record<number, any> = {};
    for (const d of stored) if (d) detail[d.provider.id] = d;
    return { providers: p.data, problems: p.problems ?? [], plugins: plugins.data, detail };
  });
  const d = list.data;
  return (
    <State loading={list.loading} error={list.error} empty={!d}>
      {d && <>
        <AddProvider plugins={d.plugins} onDone={list.reload} />
        {d.providers.length === 0 && <p class="muted">No providers yet.</p>}
        {d.providers.map((p: any) => <ProviderCard p={p} detail={p.id != null ? d.detail[p.id] : undefined} onChange={list.reload} />)}
        {d.problems.length > 0 && <section class="card"><h2>Problems</h2><ul>{d.problems.map((x: any) => <li>{typeof x === 'string' ? x : JSON.stringify(x)}</li>)}</ul></section>}
      </>}
    </State>
  );
}

function AddProvider(p: { plugins: any[]; onDone: () => void }) {
  const names = Array.from(new Set(p.plugins.filter((x) => x.status === 'loaded' && x.name).map((x) => x.name as string)));
  const [prefix, setPrefix] = useState('');
  const [plugin, setPlugin] = useState(names[0] ?? '');
  const [baseUrl, setBaseUrl] = useState('');
  const [msg, setMsg] = useState<[string, 'ok' | 'error']>(['', 'ok']);
  const submit = async (e: Event) => {
    e.preventDefault();
    try {
      await api('POST', '/api/admin/providers', { prefix, plugin, base_url: baseUrl || null });
      setMsg([`Provider ${prefix} added.`, 'ok']); setPrefix(''); setBaseUrl(''); p.onDone();
    } catch (err) { setMsg([errText(err), 'error']); }
  };
  return (
    <details class="card">
      <summary>Add a provider</summary>
      <form class="form" onSubmit={submit} aria-label="Add a provider">
        <label>Prefix <input name="prefix" required value={prefix} onInput={(e) => setPrefix((e.target as HTMLInputElement).value)} placeholder="e.g. openai-eu" /></label>
        <label>Plugin <select name="plugin" value={plugin} onChange={(e) => setPlugin((e.target as HTMLSelectElement).value)}>
          {names.map((n) => <option value={n}>{n}</option>)}</select></label>
        <label>Base URL <input name="base_url" type="url" value={baseUrl} onInput={(e) => setBaseUrl((e.target as HTMLInputElement).value)} placeholder="plugin default" /></label>
        <button type="submit">Add provider</button>
        <Msg text={msg[0]} kind={msg[1]} />
      </form>
    </details>
  );
}

function ProviderCard(p: { p: any; detail?: any; onChange: () => void }) {
  const r = p.p;
  const [msg, setMsg] = useState<[string, 'ok' | 'error']>(['', 'ok']);
  const enabled = p.detail?.provider?.enabled ?? r.enabled ?? true;
  const act = async (f: () => Promise<unknown>, ok: string) => {
    try { await f(); setMsg([ok, 'ok']); p.onChange(); } catch (e) { setMsg([errText(e), 'error']); }
  };
  const creds: any[] = p.detail?.credentials ?? r.credentials ?? [];
  const healthOf = (id: number) => (r.credentials ?? []).find((c: any) => c.id === id)?.health;
  return (
    <section class="card" aria-label={`Provider ${r.prefix}`}>
      <div class="row">
        <h2>{r.prefix} <span class="muted">· {r.plugin}{r.plugin_version ? ` ${r.plugin_version}` : ''} · {r.source}</span></h2>
        <span class={r.routable ? 'badge ok' : 'badge'}>{r.routable ? 'routable' : 'not routable'}</span>
      </div>
      <p class="muted">{r.base_url || 'default base URL'}{r.models != null ? ` · ${r.models} models` : ''}{r.api_key_env ? ` · key from $${r.api_key_env}` : ''}</p>
      {r.id != null && <button type="button" onClick={() => act(() => api('PATCH', `/api/admin/providers/${r.id}`, { enabled: !enabled }), enabled ? 'Disabled.' : 'Enabled.')}>
        {enabled ? 'Disable provider' : 'Enable provider'}</button>}
      {r.id != null && p.detail?.provider && <EditProvider row={p.detail.provider} act={act} />}
      {creds.length > 0 ? (
        <div class="scroll"><table>
          <caption class="sr-only">Keys of {r.prefix}</caption>
          <thead><tr><th scope="col">Key</th><th scope="col">Secret</th><th scope="col">Weight</th><th scope="col">Health</th><th scope="col">Actions</th></tr></thead>
          <tbody>{creds.map((c) => <KeyRow provider={r.id} c={c} health={healthOf(c.id) ?? { state: c.state, last_error: c.last_error }} act={act} />)}</tbody>
        </table></div>
      ) : <p class="muted">{r.needs_key === false ? 'This provider needs no key.' : 'No keys.'}</p>}
      {r.id != null && <AddKey provider={r.id} prefix={r.prefix} onDone={p.onChange} />}
      <Msg text={msg[0]} kind={msg[1]} />
    </section>
  );
}

function KeyRow(p: { provider: number | null; c: any; health: any; act: (f: () => Promise<unknown>, ok: string) => void }) {
  const c = p.c;
  const [weight, setWeight] = useState(String(c.weight ?? 1));
  const base = `/api/admin/providers/${p.provider}/credentials/${c.id}`;
  const stored = p.provider != null;
  return (
    <tr>
      <td>{c.name}{c.enabled === false ? ' (disabled)' : ''}</td>
      <td><code>{c.secret ?? '••••'}</code></td>
      <td>{stored ? <input aria-label={`Weight of ${c.name}`} type="number" min="0" class="narrow" value={weight}
        onInput={(e) => setWeight((e.target as HTMLInputElement).value)}
        onBlur={() => Number(weight) !== c.weight && p.act(() => api('PATCH', base, { weight: Number(weight) }), 'Weight saved.')} /> : c.weight}</td>
      <td>{health(p.health)}</td>
      <td class="actions">{stored && <>
        <button type="button" onClick={() => p.act(async () => {
          const r = await api('POST', `${base}/test`, {});
          if (!r.ok) throw new Error(`test failed: ${r.error?.message ?? r.state}`);
        }, `Key ${c.name} works.`)}>Test</button>
        <button type="button" onClick={() => p.act(() => api('PATCH', base, { enabled: c.enabled === false }), 'Saved.')}>
          {c.enabled === false ? 'Enable' : 'Disable'}</button>
      </>}</td>
    </tr>
  );
}

function AddKey(p: { provider: number; prefix: string; onDone: () => void }) {
  const [name, setName] = useState('');
  const [secret, setSecret] = useState('');
  const [weight, setWeight] = useState('1');
  const [msg, setMsg] = useState<[string, 'ok' | 'error']>(['', 'ok']);
  const submit = async (e: Event) => {
    e.preventDefault();
    try {
      await api('POST', `/api/admin/providers/${p.provider}/credentials`, { name, secret, weight: Number(weight) });
      setSecret(''); setName(''); setMsg(['Key added.', 'ok']); p.onDone();
    } catch (err) { setMsg([errText(err), 'error']); }
  };
  return (
    <form class="form inline" onSubmit={submit} aria-label={`Add a key to ${p.prefix}`}>
      <label>Key name <input name="key_name" required value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} /></label>
      <label>Secret <input name="secret" type="password" autocomplete="off" required value={secret} onInput={(e) => setSecret((e.target as HTMLInputElement).value)} /></label>
      <label>Weight <input name="weight" type="number" min="0" class="narrow" value={weight} onInput={(e) => setWeight((e.target as HTMLInputElement).value)} /></label>
      <button type="submit">Add key</button>
      <Msg text={msg[0]} kind={msg[1]} />
    </form>
  );
}

/** Changes a stored provider: prefix, base URL, model list and plugin options (PATCH). */
function EditProvider(p: { row: any; act: (f: () => Promise<unknown>, ok: string) => void }) {
  const r = p.row;
  const [prefix, setPrefix] = useState(r.prefix);
  const [baseUrl, setBaseUrl] = useState(r.base_url ?? '');
  const [models, setModels] = useState((r.models ?? []).join(', '));
  const [options, setOptions] = useState(JSON.stringify(r.options ?? {}, null, 2));
  const [err, setErr] = useState('');
  const submit = (e: Event) => {
    e.preventDefault();
    let opts: unknown;
    try { opts = JSON.parse(options || '{}'); } catch (x) { setErr(`Options: not JSON (${errText(x)})`); return; }
    setErr('');
    const list = models.split(/[\s,]+/).filter(Boolean);
    p.act(() => api('PATCH', `/api/admin/providers/${r.id}`, {
      prefix, base_url: baseUrl.trim() || null, models: list.length ? list : null, options: opts,
    }), `Provider ${prefix} saved.`);
  };
  return (
    <details>
      <summary>Edit provider</summary>
      <form class="form" onSubmit={submit} aria-label={`Edit provider ${r.prefix}`}>
        <label>Prefix <input name="edit_prefix" required value={prefix} onInput={(e) => setPrefix((e.target as HTMLInputElement).value)} /></label>
        <label>Base URL <input name="edit_base_url" type="url" value={baseUrl} placeholder="plugin default" onInput={(e) => setBaseUrl((e.target as HTMLInputElement).value)} /></label>
        <label>Models (comma-separated; empty: the plugin's catalog) <input name="edit_models" value={models} onInput={(e) => setModels((e.target as HTMLInputElement).value)} /></label>
        <label>Plugin options (JSON) <textarea name="edit_options" rows={3} value={options} onInput={(e) => setOptions((e.target as HTMLTextAreaElement).value)} /></label>
        <button type="submit">Save provider</button>
        <Msg text={err} kind="error" />
      </form>
    </details>
  );
}
