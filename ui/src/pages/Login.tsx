import { useState } from 'preact/hooks';
import { api, Session } from '../api';
import { errText } from '../ui';

export function Login(p: { onLogin: (s: Session) => void }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true); setError('');
    try {
      p.onLogin(await api<Session>('POST', '/api/console/login', { token }));
    } catch (err) { setError(errText(err)); } finally { setBusy(false); }
  };
  return (
    <main id="main" class="login">
      <form onSubmit={submit} class="card">
        <h1>aihub console</h1>
        <p class="muted">Log in with the admin token (printed on first start, or <code>AIHUB_ADMIN_TOKEN</code>).</p>
        <label for="token">Admin token</label>
        <input id="token" name="token" type="password" autocomplete="current-password" required
          value={token} onInput={(e) => setToken((e.target as HTMLInputElement).value)} />
        <button type="submit" disabled={busy || !token}>{busy ? 'Logging in…' : 'Log in'}</button>
        {error && <p class="error" role="alert">{error}</p>}
      </form>
    </main>
  );
}
