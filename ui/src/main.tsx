import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import './style.css';
import { api, get, Session, setCsrf, setOnUnauthorized } from './api';
import { Login } from './pages/Login';
import { Overview } from './pages/Overview';
import { Providers } from './pages/Providers';
import { Apps } from './pages/Apps';
import { Calls } from './pages/Calls';
import { Plugins } from './pages/Plugins';
import { Playground } from './pages/Playground';
import { Models } from './pages/Models';
import { Pricing } from './pages/Pricing';
import { navigate } from './nav';

const PAGES: [string, string, () => preact.JSX.Element][] = [
  ['/', 'Overview', Overview],
  ['/providers', 'Providers', Providers],
  ['/models', 'Models & prices', Models],
  ['/apps', 'Apps', Apps],
  ['/calls', 'Calls', Calls],
  ['/plugins', 'Plugins', Plugins],
  ['/playground', 'Playground', Playground],
];


function usePath() {
  const [path, setPath] = useState(location.pathname);
  useEffect(() => {
    const f = () => setPath(location.pathname);
    window.addEventListener('popstate', f);
    return () => window.removeEventListener('popstate', f);
  }, []);
  return path;
}

function Link(p: { href: string; children: string; current: boolean }) {
  return (
    <a href={p.href} aria-current={p.current ? 'page' : undefined}
      onClick={(e) => { e.preventDefault(); navigate(p.href); }}>{p.children}</a>
  );
}

function App() {
  const path = usePath();
  const [session, setSession] = useState<Session | null>(null);
  const refresh = () => get<Session>('/api/console/session').then((s) => {
    setCsrf(s.csrf_token ?? '');
    setSession(s);
  }).catch(() => setSession({ logged_in: false }));
  useEffect(() => { refresh(); setOnUnauthorized(() => setSession({ logged_in: false })); }, []);
  useEffect(() => { document.title = `aihub · ${title(path)}`; }, [path]);

  if (path === '/pricing') return <main id="main" class="public"><Pricing /></main>;
  if (!session) return <main id="main"><p class="muted" aria-busy="true">Loading…</p></main>;
  if (!session.logged_in) return <Login onLogin={(s) => { setCsrf(s.csrf_token ?? ''); setSession(s); }} />;

  const page = PAGES.find(([p]) => p === path) ?? PAGES[0];
  const Page = page[2];
  const logout = async () => {
    try { await api('POST', '/api/console/logout'); } finally { setSession({ logged_in: false }); navigate('/'); }
  };
  return (
    <div class="layout">
      <a class="skip" href="#main">Skip to content</a>
      <header class="top">
        <span class="brand">aihub</span>
        <nav aria-label="Main">
          {PAGES.map(([href, label]) => <Link key={href} href={href} current={href === page[0]}>{label}</Link>)}
          {session.billing && <a href="/pricing">Pricing</a>}
        </nav>
        <button type="button" class="logout" onClick={logout}>Log out</button>
      </header>
      <main id="main" tabIndex={-1}><h1>{page[1]}</h1><Page /></main>
    </div>
  );
}

function title(path: string) {
  if (path === '/pricing') return 'Pricing';
  return (PAGES.find(([p]) => p === path) ?? PAGES[0])[1];
}

const root = document.getElementById('app');
if (root) render(<App />, root);
