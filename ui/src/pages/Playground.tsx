import { useState } from 'preact/hooks';
import { get, request } from '../api';
import { fmtInt, fmtMs, fmtUsd } from '../format';
import { errText, State, useData } from '../ui';

interface Turn { role: 'user' | 'assistant'; content: string }
interface Stats { ttft?: number; total?: number; prompt?: number; completion?: number; cost?: number; requestId?: string }

/** Reads an OpenAI SSE stream, calling `onData` with each JSON event. */
async function readSse(body: ReadableStream<Uint8Array>, onData: (j: any) => void) {
  const reader = body.getReader();
  const dec = new TextDecoder();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const frame = buf.slice(0, i); buf = buf.slice(i + 2);
      for (const line of frame.split('\n')) {
        if (!line.startsWith('data:')) continue;
        const data = line.slice(5).trim();
        if (data && data !== '[DONE]') onData(JSON.parse(data));
      }
    }
  }
}

export function Playground() {
  const models = useData(async () => (await get('/api/console/models')).data.filter((m: any) => m.kind === 'chat' || m.kind === 'alias') as any[]);
  const [model, setModel] = useState('');
  const [input, setInput] = useState('');
  const [turns, setTurns] = useState<Turn[]>([]);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState('');
  const [stats, setStats] = useState<Stats>({});
  const chosen = model || models.data?.[0]?.id || '';

  const send = async (e: Event) => {
    e.preventDefault();
    if (!input.trim() || !chosen) return;
    const history: Turn[] = [...turns, { role: 'user', content: input }];
    setTurns([...history, { role: 'assistant', content: '' }]);
    setInput(''); setBusy(true); setError('');
    const start = performance.now();
    const st: Stats = {};
    let text = '';
    try {
      const r = await request('POST', '/api/console/playground', {
        model: chosen, stream: true, stream_options: { include_usage: true }, messages: history,
      });
      st.requestId = r.headers.get('x-request-id') ?? undefined;
      await readSse(r.body!, (j) => {
        if (j.error) throw new Error(j.error.message ?? 'stream error');
        const piece = j.choices?.[0]?.delta?.content;
        if (piece) {
          if (st.ttft == null) st.ttft = performance.now() - start;
          text += piece;
          setTurns([...history, { role: 'assistant', content: text }]);
        }
        if (j.usage) { st.prompt = j.usage.prompt_tokens; st.completion = j.usage.completion_tokens; }
      });
      st.total = performance.now() - start;
      setStats({ ...st });
      if (st.requestId) lookUpCost(st);
    } catch (err) {
      setError(errText(err));
      setTurns(history);
    } finally { setBusy(false); }
  };

  // The cost is known once the call is written to the log (a moment after the stream ends).
  const lookUpCost = async (st: Stats) => {
    for (let i = 0; i < 10; i++) {
      const calls = await get('/api/admin/calls?limit=20').catch(() => null);
      const row = calls?.data?.find((c: any) => c.request_id === st.requestId);
      if (row) { setStats({ ...st, cost: row.cost_micros }); return; }
      await new Promise((r) => setTimeout(r, 300));
    }
  };

  return (
    <State loading={models.loading} error={models.error} empty={!models.data?.length} emptyText="No routable chat models: add a provider first.">
      <form class="form card" onSubmit={send} aria-label="Playground">
        <label>Model <select name="model" value={chosen} onChange={(e) => setModel((e.target as HTMLSelectElement).value)}>
          {models.data?.map((m) => <option value={m.id}>{m.id}</option>)}</select></label>
        <div class="chat" aria-live="polite" aria-label="Conversation">
          {turns.length === 0 && <p class="muted">Send a message to start. Calls run as the built-in app “playground” and appear in the call log.</p>}
          {turns.map((t) => <div class={`msg ${t.role}`}><span class="who">{t.role === 'user' ? 'You' : 'Model'}</span><p>{t.content || (busy ? '…' : '')}</p></div>)}
        </div>
        <label>Message <textarea name="message" rows={3} value={input} onInput={(e) => setInput((e.target as HTMLTextAreaElement).value)}
          onKeyDown={(e) => { if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) send(e); }} /></label>
        <div class="row">
          <button type="submit" disabled={busy || !input.trim()}>{busy ? 'Streaming…' : 'Send'}</button>
          <button type="button" onClick={() => { setTurns([]); setStats({}); }}>Clear</button>
        </div>
        {error && <p class="error" role="alert">{error}</p>}
        <p class="muted" data-testid="stats">
          Time to first token {fmtMs(stats.ttft)} · total {fmtMs(stats.total)} · tokens {fmtInt(stats.prompt)} in / {fmtInt(stats.completion)} out · cost {fmtUsd(stats.cost)}
        </p>
      </form>
    </State>
  );
}
