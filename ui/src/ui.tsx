// Small shared pieces: loading/error/empty states, a data hook, a modal drawer.
import { ComponentChildren } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';

export function useData<T>(load: () => Promise<T>, deps: unknown[] = []) {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<string>('');
  const [loading, setLoading] = useState(true);
  const reload = useCallback(() => {
    setLoading(true);
    load().then((d) => { setData(d); setError(''); })
      .catch((e) => setError(String(e?.message ?? e)))
      .finally(() => setLoading(false));
  }, deps);
  useEffect(reload, [reload]);
  return { data, error, loading, reload };
}

export function State(p: { loading: boolean; error: string; empty?: boolean; emptyText?: string; children?: ComponentChildren }) {
  if (p.error) return <p class="error" role="alert">Error: {p.error}</p>;
  if (p.loading && p.empty !== false) return <p class="muted" aria-busy="true">Loading…</p>;
  if (p.empty) return <p class="muted">{p.emptyText ?? 'Nothing here yet.'}</p>;
  return <>{p.children}</>;
}

export function Drawer(p: { title: string; onClose: () => void; children: ComponentChildren }) {
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => {
    ref.current?.focus();
    const k = (e: KeyboardEvent) => { if (e.key === 'Escape') p.onClose(); };
    window.addEventListener('keydown', k);
    return () => window.removeEventListener('keydown', k);
  }, []);
  return (
    <div class="drawer-backdrop" onClick={p.onClose}>
      <div class="drawer" role="dialog" aria-modal="true" aria-label={p.title} tabIndex={-1} ref={ref}
        onClick={(e) => e.stopPropagation()}>
        <div class="drawer-head">
          <h2>{p.title}</h2>
          <button type="button" onClick={p.onClose}>Close</button>
        </div>
        {p.children}
      </div>
    </div>
  );
}

export function Msg(p: { text: string; kind?: 'error' | 'ok' }) {
  if (!p.text) return null;
  return <p class={p.kind === 'error' ? 'error' : 'ok'} role={p.kind === 'error' ? 'alert' : 'status'}>{p.text}</p>;
}

export function errText(e: any) { return String(e?.message ?? e); }
