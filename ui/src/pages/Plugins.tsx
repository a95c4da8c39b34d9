import { useState } from 'preact/hooks';
import { api, get } from '../api';
import { errText, Msg, State, useData } from '../ui';

export function Plugins() {
  const list = useData(() => get('/api/admin/plugins'));
  const [msg, setMsg] = useState<[string, 'ok' | 'error']>(['', 'ok']);
  const reload = async () => {
    try { await api('POST', '/api/admin/plugins/reload'); setMsg(['Plugin directory rescanned.', 'ok']); list.reload(); }
    catch (e) { setMsg([errText(e), 'error']); }
  };
  const rows: any[] = list.data?.data ?? [];
  return (
    <>
      <div class="toolbar"><button type="button" onClick={reload}>Reload plugins</button><Msg text={msg[0]} kind={msg[1]} /></div>
      <State loading={list.loading} error={list.error} empty={rows.length === 0} emptyText="No plugin libraries in the plugin directory.">
        <div class="scroll"><table>
          <thead><tr><th scope="col">File</th><th scope="col">Status</th><th scope="col">Plugin</th><th scope="col">Version</th><th scope="col">ABI</th><th scope="col">Prefixes</th><th scope="col">Reason</th></tr></thead>
          <tbody>{rows.map((p) => <tr>
            <td><code>{p.file}</code></td>
            <td><span class={`badge ${p.status === 'loaded' ? 'ok' : 'bad'}`}>{p.status}</span></td>
            <td>{p.name ?? '—'}</td><td>{p.version ?? '—'}{p.serving_version ? ` (serving ${p.serving_version})` : ''}</td>
            <td>{p.abi_version ?? '—'}</td><td>{(p.prefixes ?? []).join(', ') || '—'}</td><td>{p.error ?? ''}</td>
          </tr>)}</tbody>
        </table></div>
      </State>
    </>
  );
}
