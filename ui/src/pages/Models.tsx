import { useState } from 'preact/hooks';
import { api, get, Raw } from '../api';
import { fmtTime } from '../format';
import { Drawer, errText, Msg, State, useData } from '../ui';

const usd = (micros: number | null | undefined) => (micros == null ? '' : String(micros / 1e6));

export function Models() {
  const d = useData(async () => {
    const [models, rates] = await Promise.all([get('/api/console/models'), get('/api/admin/rates')]);
    return { models: models.data as any[], rates: rates.data as any[] };
  });
  const [filter, setFilter] = useState('');
  const [msg, setMsg] = useState<[string, 'ok' | 'error']>(['', 'ok']);
  const [edit, setEdit] = useState({ model: '', input: '', output: '', cached: '' });
  const save = async (e: Event) => {
    e.preventDefault();
    try {
      const body: any = { input_per_mtok: Number(edit.input), output_per_mtok: Number(edit.output) };
      if (edit.cached) body.cached_per_mtok = Number(edit.cached);
      await api('PUT', `/api/admin/rates/${edit.model}`, body);
      setMsg([`Rate for ${edit.model} saved.`, 'ok']); d.reload();
    } catch (err) { setMsg([errText(err), 'error']); }
  };
  const [history, setHistory] = useState('');
  const rateOf = (id: string) => d.data?.rates.find((r) => r.model === id);
  const models = (d.data?.models ?? []).filter((m) => m.id.includes(filter));
  return (
    <>
      <Import onDone={d.reload} />
      <form class="form inline card" onSubmit={save} aria-label="Set a model rate">
        <label>Model <input name="rate_model" required value={edit.model} placeholder="prefix/model" onInput={(e) => setEdit({ ...edit, model: (e.target as HTMLInputElement).value })} /></label>
        <label>Input USD / 1M <input name="input" inputMode="decimal" required value={edit.input} onInput={(e) => setEdit({ ...edit, input: (e.target as HTMLInputElement).value })} /></label>
        <label>Output USD / 1M <input name="output" inputMode="decimal" required value={edit.output} onInput={(e) => setEdit({ ...edit, output: (e.target as HTMLInputElement).value })} /></label>
        <label>Cached USD / 1M <input name="cached" inputMode="decimal" value={edit.cached} onInput={(e) => setEdit({ ...edit, cached: (e.target as HTMLInputElement).value })} /></label>
        <button type="submit">Save rate</button>
        <Msg text={msg[0]} kind={msg[1]} />
      </form>
      <label class="toolbar">Filter models <input type="search" value={filter} onInput={(e) => setFilter((e.target as HTMLInputElement).value)} /></label>
      <State loading={d.loading} error={d.error} empty={models.length === 0} emptyText="No models.">
        <div class="scroll"><table>
          <thead><tr><th scope="col">Model</th><th scope="col">Kind</th><th scope="col">Plugin</th><th scope="col">Rate in / out / cached (USD per 1M)</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
          <tbody>{models.map((m) => {
            const r = rateOf(m.id);
            const plugin = m.pricing ? `plugin: ${m.pricing.input_per_mtok} / ${m.pricing.output_per_mtok}` : '—';
            return <tr>
              <td>{m.id}</td><td>{m.kind}</td><td>{m.owned_by}</td>
              <td>{r ? `${usd(r.input_per_mtok_micros)} / ${usd(r.output_per_mtok_micros)} / ${usd(r.cached_per_mtok_micros) || '—'}` : plugin}</td>
              <td class="actions"><button type="button" aria-label={`Edit rate of ${m.id}`} onClick={() => setEdit({ model: m.id, input: usd(r?.input_per_mtok_micros), output: usd(r?.output_per_mtok_micros), cached: usd(r?.cached_per_mtok_micros) })}>Edit rate</button>
                <button type="button" aria-label={`Rate history of ${m.id}`} onClick={() => setHistory(m.id)}>History</button></td>
            </tr>;
          })}</tbody>
        </table></div>
        {d.data && d.data.rates.filter((r) => !d.data!.models.some((m) => m.id === r.model)).length > 0 && <>
          <h2>Rates for models not in the catalog</h2>
          <ul>{d.data.rates.filter((r) => !d.data!.models.some((m) => m.id === r.model)).map((r) =>
            <li>{r.model}: {usd(r.input_per_mtok_micros)} / {usd(r.output_per_mtok_micros)}{' '}
              <button type="button" aria-label={`Rate history of ${r.model}`} onClick={() => setHistory(r.model)}>History</button></li>)}</ul>
        </>}
      </State>
      {history && <History model={history} onClose={() => setHistory('')} />}
    </>
  );
}

const FIELD_NAMES: Record<string, string> = {
  input: 'input', output: 'output', cached: 'cached input', cache_write: 'cache write',
  per_image: 'per image', per_second: 'per second', per_mchar: 'per 1M characters',
};
const PREVIEW_ROWS = 200;

/** Imports LiteLLM's price list: a dry run first, shown field by field, then applied. */
function Import(p: { onDone: () => void }) {
  const [text, setText] = useState('');
  const [file, setFile] = useState('');
  const [margin, setMargin] = useState('');
  const [all, setAll] = useState(false);
  const [preview, setPreview] = useState<any>(null);
  const [busy, setBusy] = useState(false);
  const [msg, setMsg] = useState<[string, 'ok' | 'error']>(['', 'ok']);
  const url = (dry: boolean) => {
    const q = new URLSearchParams({ dry_run: String(dry), all: String(all) });
    if (margin.trim()) q.set('margin', margin.trim());
    return `/api/admin/rates/import?${q}`;
  };
  const pick = async (e: Event) => {
    const f = (e.target as HTMLInputElement).files?.[0];
    setPreview(null); setMsg(['', 'ok']);
    if (!f) { setText(''); setFile(''); return; }
    try { setText(await f.text()); setFile(f.name); } catch (err) { setMsg([errText(err), 'error']); }
  };
  const run = async (dry: boolean) => {
    setBusy(true);
    try {
      const r = await api('POST', url(dry), new Raw(text));
      if (dry) { setPreview(r); setMsg(['', 'ok']); } else {
        setPreview(null);
        setMsg([`Imported ${r.written} rates from ${file}; they are charged from the next call on.`, 'ok']);
        p.onDone();
      }
    } catch (err) { setPreview(null); setMsg([errText(err), 'error']); } finally { setBusy(false); }
  };
  const c = preview?.counts;
  return (
    <details class="card">
      <summary>Import prices from LiteLLM</summary>
      <p class="muted">LiteLLM's <code>model_prices_and_context_window.json</code> (up to 16 MB), as <code>aihub rates import</code> does.
        By default only models a provider here serves are imported.</p>
      <form class="form inline" aria-label="Import a price file" onSubmit={(e) => { e.preventDefault(); run(true); }}>
        <label>Price file (JSON) <input name="price_file" type="file" accept=".json,application/json" required onChange={pick} /></label>
        <label>Margin % <input name="margin" inputMode="decimal" class="narrow" value={margin} placeholder="0"
          onInput={(e) => { setMargin((e.target as HTMLInputElement).value); setPreview(null); }} /></label>
        <label class="check"><input type="checkbox" checked={all} onChange={(e) => { setAll((e.target as HTMLInputElement).checked); setPreview(null); }} /> Every mappable model, served or not</label>
        <button type="submit" disabled={busy || !text}>Preview import</button>
      </form>
      <Msg text={msg[0]} kind={msg[1]} />
      {preview && <section aria-label="Import preview">
        <p role="status">Dry run, nothing written yet: <strong>{c.new} new, {c.changed} changed</strong>, {c.unchanged} unchanged;
          skipped {c.not_served} not served, {c.unpriced} without a price, {c.duplicates} duplicates, {c.not_in_catalog} not in a loaded catalog.</p>
        {preview.changes.length > 0 && <div class="scroll"><table>
          <caption class="sr-only">Changes the import would make</caption>
          <thead><tr><th scope="col">Model</th><th scope="col">Change</th><th scope="col">Fields (USD per 1M, or per image / second)</th></tr></thead>
          <tbody>{preview.changes.slice(0, PREVIEW_ROWS).map((ch: any) => <tr>
            <td>{ch.model}</td><td>{ch.kind}</td>
            <td>{ch.fields.map((f: any) => `${FIELD_NAMES[f.field] ?? f.field} ${ch.kind === 'new' ? usd(f.after_micros) : `${usd(f.before_micros) || '—'} → ${usd(f.after_micros) || '—'}`}`).join(', ')}</td>
          </tr>)}</tbody>
        </table></div>}
        {preview.changes.length > PREVIEW_ROWS && <p class="muted">…and {preview.changes.length - PREVIEW_ROWS} more.</p>}
        <div class="toolbar">
          <button type="button" disabled={busy || preview.changes.length === 0} onClick={() => run(false)}>
            Apply import ({preview.changes.length} rates)</button>
          <button type="button" onClick={() => setPreview(null)}>Discard preview</button>
        </div>
      </section>}
    </details>
  );
}

/** A model's rate changes, newest first. */
function History(p: { model: string; onClose: () => void }) {
  const h = useData(() => get(`/api/admin/rates/history?model=${encodeURIComponent(p.model)}&limit=100`), [p.model]);
  const rows: any[] = h.data?.data ?? [];
  return (
    <Drawer title={`Rate history of ${p.model}`} onClose={p.onClose}>
      <State loading={h.loading} error={h.error} empty={rows.length === 0} emptyText="No changes recorded for this model.">
        <div class="scroll"><table>
          <thead><tr><th scope="col">When</th><th scope="col">Change</th><th scope="col">Scope</th><th scope="col">In / out / cached</th><th scope="col">Note</th></tr></thead>
          <tbody>{rows.map((e) => <tr>
            <td>{fmtTime(e.created_at)}</td><td>{e.action}</td><td>{e.app_id != null ? `app ${e.app_id} (credits)` : 'USD'}</td>
            <td>{e.action === 'delete' ? '—' : `${usd(e.input_per_mtok_micros)} / ${usd(e.output_per_mtok_micros)} / ${usd(e.cached_per_mtok_micros) || '—'}`}</td>
            <td>{e.note ?? ''}</td>
          </tr>)}</tbody>
        </table></div>
        {h.data?.has_more && <p class="muted">The latest 100 changes; older ones are in <code>GET /api/admin/rates/history</code> (cursor {h.data.next_cursor}).</p>}
      </State>
    </Drawer>
  );
}
