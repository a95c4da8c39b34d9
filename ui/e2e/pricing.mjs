// The public /pricing page with billing on, in headless Chromium:
// node ui/e2e/pricing.mjs <base-url>
// The server has rates for a few models (host/tests/console.rs sets them); this checks
// they are listed with prices, that the filter and the sort work, the phone layout, and
// axe-core; fails on any browser console error. Screenshots into $SCREENSHOTS.
import { chromium } from 'playwright-core';
import { mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

const [base] = process.argv.slice(2);
if (!base) { console.error('usage: pricing.mjs <base-url>'); process.exit(2); }
const shots = process.env.SCREENSHOTS || 'target/ui-screenshots';
mkdirSync(shots, { recursive: true });
const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const problems = [];
function check(cond, what) { if (!cond) throw new Error(`check failed: ${what}`); }

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
});
const page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
page.setDefaultTimeout(10_000);
page.on('console', (m) => { if (m.type() === 'error') problems.push(`console error: ${m.text()}`); });
page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));

async function axe(name) {
  await page.evaluate(axeSource);
  const r = await page.evaluate(() => window.axe.run(document, { runOnly: ['wcag2a', 'wcag2aa', 'best-practice'] }));
  for (const v of r.violations) {
    const line = `${name}: axe ${v.impact} ${v.id}: ${v.help}`;
    if (v.impact === 'serious' || v.impact === 'critical') problems.push(line); else console.log(`note: ${line}`);
  }
}
const models = async () => page.locator('tbody tr td:first-child').allTextContents();

try {
  await page.goto(base + '/pricing');
  await page.getByRole('heading', { name: 'Pricing', level: 1 }).waitFor();
  await page.getByRole('cell', { name: 'echo/echo-1', exact: true }).waitFor();
  check(!(await page.getByText('billing is off').count()), 'billing is on');
  // Rate plus the configured 50% margin, at 1 USD a credit: 2 USD in -> 3 credits.
  const row = page.getByRole('row').filter({ hasText: 'echo/echo-1' });
  const input = await row.locator('td').nth(1).textContent();
  check(Number(input) === 3, `input price with margin (${input})`);
  check((await models()).join(',') === 'echo/cheap,echo/echo-1,echo/pricey', `sorted by model (${await models()})`);
  await page.screenshot({ path: join(shots, 'pricing-billing.png'), fullPage: true });
  await axe('pricing-billing');

  await page.getByLabel('Sort by').selectOption('output_per_mtok');
  check((await models()).join(',') === 'echo/cheap,echo/pricey,echo/echo-1', `sorted by output price (${await models()})`);
  await page.getByLabel('Sort by').selectOption('input_per_mtok');
  check((await models())[0] === 'echo/cheap', `cheapest input first (${await models()})`);
  await page.getByLabel('Filter').fill('pri');
  check((await models()).join(',') === 'echo/pricey', `filtered (${await models()})`);
  await page.getByLabel('Filter').fill('nothing-matches');
  check((await models()).length === 0, 'filter can empty the list');
  await page.getByLabel('Filter').fill('');

  await page.setViewportSize({ width: 390, height: 844 });
  const wide = await page.evaluate(() => document.documentElement.scrollWidth);
  check(wide <= 392, `no horizontal overflow at 390 px (scrollWidth ${wide})`);
  await axe('pricing-phone');
} catch (e) {
  problems.push(String(e?.stack ?? e));
  await page.screenshot({ path: join(shots, 'pricing-failure.png'), fullPage: true }).catch(() => {});
} finally {
  await browser.close();
}
if (problems.length) { console.error(problems.join('\n')); process.exit(1); }
console.log('pricing browser test passed');
