import { useState } from 'preact/hooks';
import { ApiError, get } from '../api';
import { State, useData } from '../ui';

type Key = 'model' | 'input_per_mtok' | 'output_per_mtok';

export function Pricing() {
  const d = useData(() => get('/api/public/pricing').catch((e) => {
    if (e instanceof ApiError && e.status === 404) return { off: true, data: [] };
    throw e;
  }));
  const [filter, setFilter] = useState('');
  const [sort, setSort] = useState<Key>('model');
  const rows: any[] = (d.data?.data ?? []).filter((r: any) => r.model.includes(filter))
    .sort((a: any, b: any) => sort === 'model' ? a.model.localeCompare(b.model) : Number(a[sort]) - Number(b[sort]));
  const notFound = !!d.data?.off;
  return (
    <>
      <h1>Pricing</h1>
      {notFound ? <p class="muted">This aihub does not sell access (billing is off).</p> :
        <State loading={d.loading} error={d.error} empty={!d.data?.data.length} emptyText="No priced models yet.">
          <p class="muted">Prices in credits per million tokens.</p>
          <div class="toolbar">
            <label>Filter <input type="search" value={filter} onInput={(e) => setFilter((e.target as HTMLInputElement).value)} /></label>
            <label>Sort by <select value={sort} onChange={(e) => setSort((e.target as HTMLSelectElement).value as Key)}>
              <option value="model">model</option><option value="input_per_mtok">input price</option><option value="output_per_mtok">output price</option></select></label>
          </div>
          <div class="scroll" tabIndex={0} role="region" aria-label="Prices"><table>
            <thead><tr><th scope="col">Model</th><th scope="col">Input</th><th scope="col">Output</th><th scope="col">Cached input</th></tr></thead>
            <tbody>{rows.map((r) => <tr><td>{r.model}</td><td>{r.input_per_mtok ?? '—'}</td><td>{r.output_per_mtok ?? '—'}</td><td>{r.cached_per_mtok ?? '—'}</td></tr>)}</tbody>
          </table></div>
        </State>}
    </>
  );
}
