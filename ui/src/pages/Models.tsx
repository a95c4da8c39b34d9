import { useState } from 'preact/hooks';
import { api, get } from '../api';
import { errText, Msg, State, useData } from '../ui';

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
  const rateOf = (id: string) => d.data?.rates.find((r) => r.model === id);
  const models = (d.data?.models ?? []).filter((m) => m.id.includes(filter));
  return (
    <>
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
          <thead><tr><th scope="col">Model</th><th scope="col">Kind</th><th scope="col">Plugin</th><th scope="col">Rate in / out / cached (USD per 1M)</th><th scope="col"><span class="sr-only">Edit</span></th></tr></thead>
          <tbody>{models.map((m) => {
            const r = rateOf(m.id);
            const plugin = m.pricing ? `plugin: ${m.pricing.input_per_mtok} / ${m.pricing.output_per_mtok}` : '—';
            return <tr>
              <td>{m.id}</td><td>{m.kind}</td><td>{m.owned_by}</td>
              <td>{r ? `${usd(r.input_per_mtok_micros)} / ${usd(r.output_per_mtok_micros)} / ${usd(r.cached_per_mtok_micros) || '—'}` : plugin}</td>
              <td><button type="button" onClick={() => setEdit({ model: m.id, input: usd(r?.input_per_mtok_micros), output: usd(r?.output_per_mtok_micros), cached: usd(r?.cached_per_mtok_micros) })}>Edit rate</button></td>
            </tr>;
          })}</tbody>
        </table></div>
        {d.data && d.data.rates.filter((r) => !d.data!.models.some((m) => m.id === r.model)).length > 0 && <>
          <h2>Rates for models not in the catalog</h2>
          <ul>{d.data.rates.filter((r) => !d.data!.models.some((m) => m.id === r.model)).map((r) =>
            <li>{r.model}: {usd(r.input_per_mtok_micros)} / {usd(r.output_per_mtok_micros)}</li>)}</ul>
        </>}
      </State>
    </>
  );
}
