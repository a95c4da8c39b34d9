// The console in headless Chromium (playwright-core, Debian's /usr/bin/chromium):
// node ui/e2e/console.mjs <base-url> <admin-token>
// Walks every page, screenshots each into $SCREENSHOTS, fails on any browser console
// error and on any serious/critical axe-core finding. Run by host/tests/console.rs.
import { chromium } from 'playwright-core';
import { mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

const [base, token] = process.argv.slice(2);
if (!base || !token) { console.error('usage: console.mjs <base-url> <admin-token>'); process.exit(2); }
const shots = process.env.SCREENSHOTS || 'target/ui-screenshots';
mkdirSync(shots, { recursive: true });
const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

const started = Date.now();
let expectRefusedImport = false;
const problems = [];
const step = (s) => console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${s}`);
function check(cond, what) { if (!cond) throw new Error(`check failed: ${what}`); }

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
const page = await context.newPage();
page.setDefaultTimeout(10_000);
page.on('console', (m) => {
  if (m.type() !== 'error') return;
  // Billing is off in this test, so the public pricing list is (correctly) a 404.
  if (m.location()?.url?.endsWith('/api/public/pricing')) return;
  // The bad price file is refused on purpose (the page shows the 400's message).
  if (expectRefusedImport && m.location()?.url?.includes('/api/admin/rates/import?')) return;
  problems.push(`console error: ${m.text()} (${m.location()?.url ?? ''})`);
});
page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));

async function axe(name) {
  await page.evaluate(axeSource);
  const r = await page.evaluate(() => window.axe.run(document, { runOnly: ['wcag2a', 'wcag2aa', 'best-practice'] }));
  for (const v of r.violations) {
    const line = `${name}: axe ${v.impact} ${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).slice(0, 3).join('; ')})`;
    if (v.impact === 'serious' || v.impact === 'critical') problems.push(line); else console.log(`note: ${line}`);
  }
}
async function shot(name) {
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
  await axe(name);
  step(`page ${name}: screenshot and axe scan`);
}
const nav = (label) => page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: label, exact: true }).click();

try {
  // Login.
  await page.goto(base + '/');
  await page.getByLabel('Admin token').waitFor();
  await shot('login');
  await page.getByLabel('Admin token').fill(token);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('heading', { name: 'Overview', level: 1 }).waitFor();
  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === 'aihub_session');
  check(session && session.httpOnly && session.sameSite === 'Strict', 'HttpOnly SameSite=Strict session cookie');
  step('logged in');

  // Providers: add one (echo plugin under a new prefix) and a key, through the forms.
  await nav('Providers');
  await page.getByText('Add a provider').click();
  const addProv = page.getByRole('form', { name: 'Add a provider' });
  await addProv.getByLabel('Prefix').fill('echo2');
  await addProv.getByLabel('Plugin').selectOption('echo');
  await addProv.getByRole('button', { name: 'Add provider' }).click();
  await page.getByText('Provider echo2 added.').waitFor();
  const card = page.getByRole('region', { name: 'Provider echo2' });
  await card.waitFor();
  const addKey = card.getByRole('form', { name: 'Add a key to echo2' });
  await addKey.getByLabel('Key name').fill('browser-key');
  await addKey.getByLabel('Secret').fill('sk-browser-secret-987654');
  await addKey.getByRole('button', { name: 'Add key' }).click();
  await card.getByText('Key added.').waitFor();
  await card.getByRole('cell', { name: 'browser-key' }).waitFor();
  check(!(await page.content()).includes('sk-browser-secret-987654'), 'the secret is not shown after saving');
  // Edit it: its model list.
  await card.getByText('Edit provider').click();
  const editProv = card.getByRole('form', { name: 'Edit provider echo2' });
  await editProv.getByLabel(/^Models/).fill('echo-1, echo-big');
  await editProv.getByRole('button', { name: 'Save provider' }).click();
  await card.getByText('Provider echo2 saved.').waitFor();
  await card.getByText(/· 2 models/).waitFor();
  await shot('providers');

  // Apps: create one; its key is shown once.
  await nav('Apps');
  await page.getByLabel('New app name').fill('browser-app');
  await page.getByRole('button', { name: 'Create app' }).click();
  const app = page.getByRole('region', { name: 'App browser-app' });
  await app.waitFor();
  await app.getByRole('button', { name: 'Create key' }).click();
  const key = await app.getByTestId('new-key').textContent();
  check(key?.startsWith('ak-'), `new key shown (${key?.slice(0, 5)}…)`);
  await app.getByRole('button', { name: 'Copy key' }).waitFor();
  await shot('apps');
  await app.getByRole('button', { name: 'Done' }).click();
  check(!(await page.content()).includes(key), 'the key is gone once dismissed');

  // Playground: a streamed message through echo.
  await nav('Playground');
  await page.getByLabel('Model').selectOption('echo/echo-1');
  await page.getByLabel('Message').fill('hello from the browser');
  await page.getByRole('button', { name: 'Send' }).click();
  await page.locator('.msg.assistant p', { hasText: 'hello from the browser' }).waitFor();
  await page.getByTestId('stats').filter({ hasText: /first token \d+ ms/ }).waitFor();
  await page.getByTestId('stats').filter({ hasText: /cost \$/ }).waitFor();
  await shot('playground');

  // Apps again: the playground app's usage chart, recent calls, budget and prices.
  await nav('Apps');
  await page.getByRole('row').filter({ hasText: 'playground' }).getByRole('button', { name: 'Manage' }).click();
  const pg = page.getByRole('region', { name: 'App playground' });
  await pg.getByRole('region', { name: 'Usage, last 30 days' }).locator('.chart canvas').waitFor();
  await pg.getByTestId('app-usage-totals').filter({ hasText: /^1 calls/ }).waitFor();
  await pg.getByLabel('Usage metric').selectOption('tokens');
  await pg.getByRole('region', { name: 'Recent calls' }).getByRole('cell', { name: 'echo/echo-1' }).waitFor();
  const budget = pg.getByRole('form', { name: 'Budget' });
  await budget.getByLabel('Daily cap (USD)').fill('5');
  await budget.getByRole('button', { name: 'Save budget' }).click();
  await pg.getByText('Budget saved.').waitFor();
  await pg.getByText(/of \$5(\.0+)? · this month/).waitFor();
  const price = pg.getByRole('form', { name: 'Add a price' });
  await price.getByLabel('Price model').fill('echo/echo-1');
  await price.getByLabel('Input / 1M').fill('1.5');
  await price.getByLabel('Output / 1M').fill('3');
  await price.getByRole('button', { name: 'Save price' }).click();
  await pg.getByText('Price for echo/echo-1 saved.').waitFor();
  await pg.getByRole('cell', { name: '1.5', exact: true }).waitFor();
  await shot('app-detail');
  await pg.getByRole('button', { name: 'Remove the price for echo/echo-1' }).click();
  await pg.getByText('No explicit prices').waitFor();
  await pg.getByRole('link', { name: "All of this app's calls" }).click();
  await page.getByRole('heading', { name: 'Calls', level: 1 }).waitFor();
  check(new URL(page.url()).searchParams.get('app') !== null, 'the link opens Calls filtered to the app');
  step('app detail: usage, calls, budget, prices');

  // Calls: the playground call is there, its details open, CSV downloads.
  await nav('Calls');
  const row = page.getByRole('row').filter({ hasText: 'echo/echo-1' }).first();
  await row.waitFor();
  await row.getByRole('button', { name: 'Details' }).click();
  const drawer = page.getByRole('dialog');
  await drawer.getByText('Time to first byte').waitFor();
  await shot('call-details');
  await page.keyboard.press('Escape');
  await drawer.waitFor({ state: 'detached' });
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('link', { name: 'Export CSV' }).click(),
  ]);
  const csv = readFileSync(await download.path(), 'utf8');
  check(csv.startsWith('id,request_id,') && csv.includes('echo/echo-1'), 'CSV export has the call');
  await shot('calls');
  step('csv downloaded');

  // Overview: the chart draws with data.
  await nav('Overview');
  const chart = page.locator('.chart');
  await chart.locator('canvas').waitFor();
  check(Number(await chart.getAttribute('data-points')) >= 1, 'the chart has points');
  await page.getByText(/^\d+\/\d+ keys healthy|no key needed/).first().waitFor();
  await page.getByLabel('Metric').selectOption('latency_avg_ms');
  await chart.locator('canvas').waitFor();
  await page.getByRole('button', { name: '7d' }).click();
  await chart.locator('canvas').waitFor();
  await shot('overview');

  // Models and prices: set a rate, see its history, import LiteLLM's list (preview, apply).
  await nav('Models & prices');
  await page.getByRole('cell', { name: 'echo/echo-1', exact: true }).waitFor();
  await page.getByRole('button', { name: 'Edit rate of echo/echo-1' }).click();
  const rateForm = page.getByRole('form', { name: 'Set a model rate' });
  await rateForm.getByLabel('Input USD / 1M').fill('0.5');
  await rateForm.getByLabel('Output USD / 1M').fill('1');
  await rateForm.getByRole('button', { name: 'Save rate' }).click();
  await page.getByText('Rate for echo/echo-1 saved.').waitFor();
  await page.getByRole('button', { name: 'Rate history of echo/echo-1' }).click();
  const hist = page.getByRole('dialog', { name: 'Rate history of echo/echo-1' });
  await hist.getByRole('cell', { name: 'put' }).first().waitFor();
  await hist.getByRole('cell', { name: '0.5 / 1 / —' }).waitFor();
  await shot('rate-history');
  await page.keyboard.press('Escape');
  await hist.waitFor({ state: 'detached' });
  await page.getByText('Import prices from LiteLLM').click();
  const imp = page.getByRole('form', { name: 'Import a price file' });
  const litellm = {
    sample_spec: { litellm_provider: 'one of …' },
    'gpt-4o': { litellm_provider: 'openai', input_cost_per_token: 2.5e-6, output_cost_per_token: 1e-5 },
    'gpt-bad-neighbour': { litellm_provider: 'mystery', input_cost_per_token: 'not checked' },
  };
  await imp.getByLabel('Price file (JSON)').setInputFiles({ name: 'model_prices_and_context_window.json', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify(litellm)) });
  await imp.getByLabel('Margin %').fill('10');
  await imp.getByLabel('Every mappable model, served or not').check();
  await imp.getByRole('button', { name: 'Preview import' }).click();
  const preview = page.getByRole('region', { name: 'Import preview' });
  await preview.getByText('1 new, 0 changed').waitFor();
  await preview.getByRole('cell', { name: 'input 2.75, output 11' }).waitFor();
  await shot('models-import');
  check((await page.getByRole('button', { name: 'Rate history of openai/gpt-4o' }).count()) === 0, 'the dry run wrote nothing');
  await preview.getByRole('button', { name: /Apply import/ }).click();
  await page.getByText(/Imported 1 rates/).waitFor();
  await page.getByRole('button', { name: 'Rate history of openai/gpt-4o' }).waitFor();
  // A bad entry is refused, naming entry and field.
  litellm['gpt-4o'].output_cost_per_token = 'cheap';
  expectRefusedImport = true;
  await imp.getByLabel('Price file (JSON)').setInputFiles({ name: 'bad.json', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify(litellm)) });
  await imp.getByRole('button', { name: 'Preview import' }).click();
  await page.getByRole('alert').filter({ hasText: /'gpt-4o'.*output_cost_per_token/ }).waitFor();
  expectRefusedImport = false;
  await shot('models');
  await nav('Plugins');
  await page.getByRole('cell', { name: 'libaihub_echo.so' }).waitFor();
  await page.getByRole('button', { name: 'Reload plugins' }).click();
  await page.getByText('Plugin directory rescanned.').waitFor();
  await shot('plugins');

  // Public pricing (billing off here: says so).
  await page.goto(base + '/pricing');
  await page.getByText('billing is off').waitFor();
  await shot('pricing');

  // Phone-sized viewport: no sideways scrolling.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(base + '/');
  await page.locator('.chart canvas').waitFor();
  const wide = await page.evaluate(() => document.documentElement.scrollWidth);
  check(wide <= 392, `no horizontal overflow at 390 px (scrollWidth ${wide})`);
  await shot('overview-phone');
  await page.setViewportSize({ width: 1280, height: 900 });

  // Keyboard: the skip link and nav are reachable by Tab.
  await page.keyboard.press('Tab');
  check(await page.evaluate(() => document.activeElement?.textContent === 'Skip to content'), 'skip link is first in tab order');

  // Logout ends the session on the server, not only in the browser.
  await page.getByRole('button', { name: 'Log out' }).click();
  await page.getByLabel('Admin token').waitFor();
  const old = await context.request.get(base + '/api/admin/apps', { headers: { cookie: `aihub_session=${session.value}` } });
  check(old.status() === 401, `the old session cookie is refused after logout (got ${old.status()})`);
  step('logged out');
} catch (e) {
  problems.push(String(e?.stack ?? e));
  await page.screenshot({ path: join(shots, 'failure.png'), fullPage: true }).catch(() => {});
} finally {
  await browser.close();
}

if (problems.length) {
  console.error(problems.join('\n'));
  process.exit(1);
}
step('console browser test passed');
