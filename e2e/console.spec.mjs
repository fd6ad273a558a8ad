// respack's browser test: headless Chromium (Debian's, no browser download) driven by
// playwright-core against a respack-web that `cargo xtask e2e` started on a fresh, seeded
// database. Every step checks what a user would see; screenshots go to $SCREENSHOT_DIR.
//
// Environment: BASE_URL (http://127.0.0.1:port), SCREENSHOT_DIR, CHROMIUM (executable path).

import { chromium } from 'playwright-core';
import { readFileSync, mkdirSync } from 'node:fs';
import assert from 'node:assert/strict';

const BASE = process.env.BASE_URL;
const SHOTS = process.env.SCREENSHOT_DIR || 'target/e2e';
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
// 0 when xtask could not build the WASM (no wasm32 target): then the server-rendered pages and
// their plain forms are tested, and hydration is not waited for.
const HYDRATE = process.env.EXPECT_HYDRATION !== '0';
assert.ok(BASE, 'BASE_URL must be set');
mkdirSync(SHOTS, { recursive: true });

const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

let stepNo = 0;
async function step(name, fn) {
  stepNo += 1;
  const started = Date.now();
  process.stdout.write(`e2e: ${String(stepNo).padStart(2, '0')} ${name} … `);
  await fn();
  console.log(`ok (${Date.now() - started} ms)`);
}

async function shot(page, name) {
  await page.screenshot({ path: `${SHOTS}/${name}.png`, fullPage: true });
}

/// Waits until the WASM has hydrated the page (the app marks <body data-hydrated>).
async function hydrated(page) {
  if (HYDRATE) await page.waitForSelector('body[data-hydrated="true"]', { timeout: 30000 });
}

function money(text) {
  const match = text.replace(/,/g, '').match(/-?\d+(\.\d+)?/);
  assert.ok(match, `no amount in ${JSON.stringify(text)}`);
  return Number(match[0]);
}

async function signIn(page, email, password) {
  await page.goto(`${BASE}/signin`);
  await page.fill('input[name=email]', email);
  await page.fill('input[name=password]', password);
  await Promise.all([page.waitForURL(/\/packs/), page.click('button[type=submit]')]);
  await hydrated(page);
}

async function signOut(page) {
  await Promise.all([page.waitForURL(/\/signin/), page.click('form[action="/signout"] button')]);
}

const browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS, headless: true });
const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1440, height: 900 } });
const page = await context.newPage();
const consoleErrors = [];
page.on('console', (message) => { if (message.type() === 'error') consoleErrors.push(message.text()); });
page.on('pageerror', (error) => consoleErrors.push(String(error)));

try {
  await step('a wrong password is refused with a reason', async () => {
    await page.goto(`${BASE}/packs`);
    await page.waitForURL(/\/signin/);
    await page.fill('input[name=email]', 'demo@acme.example');
    await page.fill('input[name=password]', 'not-the-password');
    await Promise.all([page.waitForURL(/error=refused/), page.click('button[type=submit]')]);
    await page.getByRole('alert').filter({ hasText: 'Wrong email or password' }).waitFor();
    await shot(page, '01-sign-in');
  });

  await step('the customer signs in and the WASM hydrates the packs page', async () => {
    const wasm = HYDRATE ? page.waitForResponse((response) => response.url().endsWith('.wasm')) : null;
    await signIn(page, 'demo@acme.example', 'demo-customer');
    if (wasm) assert.equal((await wasm).status(), 200);
    await page.locator('table.packs tbody tr').first().waitFor();
    const headers = await page.locator('table.packs thead th').allTextContents();
    assert.ok(headers.includes('Remaining/Total Periods'), `all columns by default: ${headers}`);
    await shot(page, '02-resource-packages');
  });

  await step('filtering by name shows only matching packs', async () => {
    await page.fill('input[name=search]', 'TSC');
    await Promise.all([page.waitForURL(/search=TSC/), page.click('form.filters button[type=submit]')]);
    await hydrated(page);
    const names = await page.locator('table.packs tbody tr td:first-child').allTextContents();
    assert.ok(names.length > 0, 'some TSC packs');
    for (const name of names) assert.match(name, /TSC/i);
    const count = money(await page.getByTestId('pack-count').textContent());
    assert.equal(count, names.length);
    await shot(page, '03-filtered');
  });

  await step('the CSV download holds the filtered rows', async () => {
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: 'Download' }).click()]);
    const text = readFileSync(await download.path(), 'utf8');
    const lines = text.trim().split(/\r\n/);
    const count = money(await page.getByTestId('pack-count').textContent());
    assert.equal(lines.length, count + 1, 'a header and one line per pack');
    assert.match(lines[0], /Resource Package Name\/Resource Package ID/);
    for (const line of lines.slice(1)) assert.match(line, /TSC/i);
  });

  await step('auto-renewal is refused on the last day, with the reason shown', async () => {
    await page.goto(`${BASE}/packs?search=Last-day`);
    await hydrated(page);
    const row = page.locator('tr', { hasText: 'Last-day pack' });
    const button = row.locator('button[data-op="set_auto"]');
    assert.ok(await button.isDisabled(), 'Set auto-renewal is disabled');
    assert.match(await button.getAttribute('title'), /last 24 hours before expiration/);
    const renew = row.locator('[data-op="renew"]');
    assert.ok(await renew.count() > 0);
    await button.hover();
    await shot(page, '04-last-day-refused');
  });

  await step('column settings are saved and survive a reload', async () => {
    await page.goto(`${BASE}/packs`);
    await hydrated(page);
    await page.locator('details.settings summary').click();
    await page.getByLabel('Availability Zone').uncheck();
    await page.getByLabel('Dynamic Deduction Attribute').uncheck();
    await page.locator('details.settings button[type=submit]').click();
    await page.waitForFunction(() => ![...document.querySelectorAll('table.packs thead th')].some((th) => th.textContent === 'Availability Zone'));
    await page.reload();
    await hydrated(page);
    const headers = await page.locator('table.packs thead th').allTextContents();
    assert.ok(!headers.includes('Availability Zone') && !headers.includes('Dynamic Deduction Attribute'), `saved: ${headers}`);
    assert.ok(headers.includes('Status'));
  });

  await step('renewing a pack shows price and balance after, and the balance falls', async () => {
    await page.goto(`${BASE}/packs?search=Last-day`);
    await hydrated(page);
    const before = money(await page.getByTestId('balance').textContent());
    const link = page.locator('tr', { hasText: 'Last-day pack' }).locator('a[data-op="renew"]');
    await link.click();
    await page.getByRole('dialog').waitFor();
    await page.getByTestId('quote-price').waitFor();
    const price = money(await page.getByTestId('quote-price').textContent());
    const after = money(await page.getByTestId('quote-balance-after').textContent());
    assert.ok(price > 0);
    assert.equal(Math.round((before - price) * 100), Math.round(after * 100));
    await shot(page, '05-renew-dialog');
    await page.getByRole('dialog').getByRole('button', { name: 'Confirm' }).click();
    await page.getByTestId('op-result').waitFor();
    assert.match(await page.getByTestId('op-result').textContent(), /Renewed/);
    await page.waitForFunction((expected) => {
      const text = document.querySelector('[data-testid=balance]')?.textContent || '';
      return Math.abs(Number(text.replace(/[^0-9.-]/g, '')) - expected) < 0.005;
    }, after);
    await shot(page, '06-renewed');
  });

  await step('pack detail shows capacity, cycles and deductions', async () => {
    await page.goto(`${BASE}/packs?search=Last-day`);
    await hydrated(page);
    await page.locator('table.packs tbody tr td:first-child a').first().click();
    await page.waitForURL(/\/packs\/rp-/);
    await page.locator('ol.timeline li').first().waitFor();
    assert.ok(await page.locator('meter').count() >= 1);
    await shot(page, '07-pack-detail');
  });

  await step('usage details list deductions and draw the daily chart', async () => {
    await page.goto(`${BASE}/usage`);
    await hydrated(page);
    await page.getByTestId('deductions').waitFor();
    assert.ok(await page.locator('[data-testid=deductions] tbody tr').count() > 0);
    assert.ok(await page.locator('[data-testid=usage-chart] svg rect').count() > 0, 'bars in the chart');
    assert.ok(await page.locator('[data-testid=daily-totals] tbody tr').count() > 0);
    await shot(page, '08-usage-details');
  });

  await step('bills and account pages render', async () => {
    await page.goto(`${BASE}/bills`);
    await hydrated(page);
    await page.getByTestId('bill-summary').waitFor();
    await shot(page, '09-bills');
    // By usage month: the form's choice reaches the URL, the page and its CSV link.
    await page.locator('form.filters select[name=period]').selectOption('byUsedTime');
    await Promise.all([page.waitForURL(/period=byUsedTime/), page.click('form.filters button[type=submit]')]);
    await hydrated(page);
    assert.equal(await page.locator('form.filters select[name=period]').inputValue(), 'byUsedTime');
    assert.match(await page.locator('form.filters a[download]').getAttribute('href'), /period=byUsedTime/);
    await page.goto(`${BASE}/account`);
    await hydrated(page);
    await page.getByTestId('ledger').waitFor();
    assert.match(await page.getByTestId('ledger').textContent(), /Renewal/);
    await shot(page, '10-account');
  });

  await step('the customer creates an API key, sees its secret once, and the key is listed', async () => {
    await page.goto(`${BASE}/account`);
    await hydrated(page);
    const form = page.getByTestId('key-form');
    await form.locator('input[name=note]').fill('e2e metering key');
    await form.locator('button[type=submit]').click();
    await page.getByTestId('secret-key').waitFor();
    const secretId = (await page.getByTestId('secret-id').textContent()).trim();
    const secretKey = (await page.getByTestId('secret-key').textContent()).trim();
    assert.match(secretId, /^AKID/, `a SecretId: ${secretId}`);
    assert.ok(secretKey.length >= 32, `a SecretKey: ${secretKey}`);
    const keys = page.getByTestId('api-keys');
    await keys.locator('tr', { hasText: secretId }).waitFor();
    assert.match(await keys.locator('tr', { hasText: secretId }).textContent(), /e2e metering key/);
    await shot(page, '11-api-key-created');
    await page.reload();
    await hydrated(page);
    await page.getByTestId('api-keys').locator('tr', { hasText: secretId }).waitFor();
    assert.equal(await page.getByTestId('secret-key').count(), 0, 'the secret is shown only once');
    assert.ok(!(await page.content()).includes(secretKey), 'the secret is nowhere on the page after a reload');
  });

  await step('the customer saves alert settings and sees them after a reload', async () => {
    const form = page.getByTestId('alert-form');
    await form.locator('input[name=recipients]').fill('billing@acme.example, e2e-alerts@acme.example');
    await form.locator('input[name=thresholds]').fill('15, 30');
    await form.locator('select[name=language]').selectOption('zh-CN');
    await form.locator('button[type=submit]').click();
    await page.getByTestId('alerts-saved').waitFor();
    await page.reload();
    await hydrated(page);
    const saved = page.getByTestId('alert-form');
    assert.equal(await saved.locator('input[name=recipients]').inputValue(), 'billing@acme.example, e2e-alerts@acme.example');
    assert.equal(await saved.locator('input[name=thresholds]').inputValue(), '30, 15', 'highest first');
    assert.equal(await saved.locator('select[name=language]').inputValue(), 'zh-CN');
    await shot(page, '12-alert-settings');
  });

  await step('the language switches to Simplified Chinese and back', async () => {
    await page.goto(`${BASE}/packs`);
    await hydrated(page);
    await Promise.all([page.waitForLoadState('load'), page.getByRole('button', { name: '中文' }).click()]);
    await page.getByRole('heading', { name: '资源包' }).waitFor();
    await hydrated(page);
    // The table's values speak Chinese too: payment modes and renewal methods.
    const table = await page.locator('table.packs tbody').textContent();
    assert.match(table, /周期递减|总量递减|分片递减|不限容量/);
    assert.match(table, /手动续费|自动续费|不续费/);
    assert.doesNotMatch(table, /Period decrement|Total amount decremental|Manual renewal/);
    await shot(page, '13-zh-CN');
    await Promise.all([page.waitForLoadState('load'), page.getByRole('button', { name: 'English' }).click()]);
    await page.getByRole('heading', { name: 'Resource Packages' }).waitFor();
  });

  await step('a phone-sized screen still shows the packs', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.reload();
    await hydrated(page);
    await shot(page, '14-phone');
    await page.setViewportSize({ width: 1440, height: 900 });
    await signOut(page);
  });

  let newUin;
  await step('the operator creates an account with its first user', async () => {
    await signIn(page, 'operator@respack.local', 'operator-demo');
    await page.goto(`${BASE}/operator`);
    await hydrated(page);
    const form = page.getByTestId('create-account-form');
    await form.locator('input[name=name]').fill('E2E Newco');
    await form.locator('input[name=time_zone]').fill('Europe/Berlin');
    await form.locator('input[name=email]').fill('owner@newco.example');
    await form.locator('input[name=password]').fill('newco-password-1');
    await form.locator('button[type=submit]').click();
    const result = page.getByTestId('op-result');
    await result.waitFor();
    const text = await result.textContent();
    assert.match(text, /Created account E2E Newco/);
    newUin = text.match(/\((\d+)\)/)[1];
    const row = page.getByTestId('accounts').locator('tr', { hasText: 'E2E Newco' });
    await row.waitFor();
    assert.match(await row.textContent(), new RegExp(newUin));
    assert.match(await row.textContent(), /Europe\/Berlin/);
    await shot(page, '15-operator-account-created');
  });

  let issuedId;
  await step('the operator issues a pack from the catalog', async () => {
    await page.goto(`${BASE}/operator`);
    await hydrated(page);
    const form = page.getByTestId('issue-form');
    await form.waitFor();
    const option = form.locator('select[name="form[account_id]"] option', { hasText: 'Acme Media' });
    await form.locator('select[name="form[account_id]"]').selectOption(await option.first().getAttribute('value'));
    await form.locator('input[name="form[name]"]').fill('E2E issued pack');
    await form.locator('input[name="form[term]"]').fill('1');
    await form.locator('input[name="form[unit_price]"]').fill('7');
    await form.locator('button[type=submit]').click();
    const result = page.getByTestId('op-result');
    await result.waitFor();
    const text = await result.textContent();
    assert.match(text, /Issued rp-/);
    issuedId = text.match(/rp-[0-9a-z]+/)[0];
    await shot(page, '16-operator-issued');
  });

  await step("the operator adjusts the pack's bill", async () => {
    await page.goto(`${BASE}/operator`);
    await hydrated(page);
    const form = page.getByTestId('adjust-form');
    await form.locator('input[name=pack_id]').fill(issuedId);
    await form.locator('input[name=amount]').fill('1.25');
    await form.locator('input[name=reason]').fill('E2E setup fee');
    await form.locator('button[type=submit]').click();
    const result = page.getByTestId('op-result');
    await result.waitFor();
    assert.match(await result.textContent(), /Adjustment - deduction of 1\.25 on rp-/);
  });

  await step('the operator refunds it within 5 days', async () => {
    await page.goto(`${BASE}/packs?search=${issuedId}`);
    await hydrated(page);
    await page.locator(`tr[data-pack="${issuedId}"] a[data-op="refund"]`).click();
    await page.getByRole('dialog').waitFor();
    await page.getByTestId('quote-price').waitFor();
    await shot(page, '17-refund-dialog');
    await page.getByRole('dialog').getByRole('button', { name: 'Confirm' }).click();
    await page.getByTestId('op-result').waitFor();
    assert.match(await page.getByTestId('op-result').textContent(), /Refunded/);
    await page.goto(`${BASE}/operator/audit`);
    await hydrated(page);
    await page.getByTestId('audit').waitFor();
    assert.match(await page.getByTestId('audit').textContent(), /refund/);
    await shot(page, '18-audit');
  });

  await step('the operator retries a dead email and it is queued again', async () => {
    await page.goto(`${BASE}/operator/outbox?status=dead`);
    await hydrated(page);
    const dead = page.getByTestId('outbox').locator('tr[data-message]').first();
    await dead.waitFor();
    const id = await dead.getAttribute('data-message');
    assert.equal((await dead.getByTestId('outbox-status').textContent()).trim(), 'dead');
    assert.match(await dead.textContent(), /mailbox unavailable/);
    await shot(page, '19-outbox-dead');
    await dead.getByRole('button', { name: 'Retry' }).click();
    await page.getByTestId('retry-result').filter({ hasText: `Message ${id} is queued again` }).waitFor();
    await page.goto(`${BASE}/operator/outbox?status=queued`);
    await hydrated(page);
    const queued = page.locator(`[data-testid=outbox] tr[data-message="${id}"]`);
    await queued.waitFor();
    assert.equal((await queued.getByTestId('outbox-status').textContent()).trim(), 'queued');
    await shot(page, '20-outbox-retried');
  });

  await step('the new account\'s user signs in', async () => {
    await signOut(page);
    await signIn(page, 'owner@newco.example', 'newco-password-1');
    assert.match(await page.locator('header .who').textContent(), /E2E Newco/);
    await shot(page, '21-new-account-packs');
  });

  const unexpected = consoleErrors.filter((text) => !/favicon/.test(text));
  assert.deepEqual(unexpected, [], 'no errors in the browser console');
  console.log(`e2e: all ${stepNo} steps passed${HYDRATE ? '' : ' (WITHOUT the WASM: server-rendered pages and plain forms)'}; screenshots in ${SHOTS}`);
} catch (error) {
  await shot(page, 'failure').catch(() => {});
  console.error(`\ne2e: FAILED: ${error.stack || error}`);
  if (consoleErrors.length) console.error(`browser console errors:\n  ${consoleErrors.join('\n  ')}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
