export const fmtInt = (n: number | null | undefined) =>
  n == null ? '—' : Math.round(n).toLocaleString('en-US');
export const fmtUsd = (micros: number | null | undefined) =>
  micros == null ? '—' : '$' + (micros / 1e6).toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 6 });
export const fmtMs = (ms: number | null | undefined) => (ms == null ? '—' : `${Math.round(ms)} ms`);
export const fmtPct = (x: number | null | undefined) => (x == null ? '—' : `${(x * 100).toFixed(1)}%`);
export const fmtTime = (ms: number | null | undefined) =>
  ms == null ? '—' : new Date(ms).toISOString().replace('T', ' ').slice(0, 19) + 'Z';
