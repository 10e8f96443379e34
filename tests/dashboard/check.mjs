// Drives the host's dashboard in Debian's headless Chromium as an operator would: signs in,
// finds the deployed apps, sends traffic and waits for the charts to move. Run by
// crates/cli/tests/dashboard.rs, which starts the host and passes:
//   ADMIN_URL    the admin listener, http://127.0.0.1:PORT
//   ADMIN_TOKEN  its token
//   APP_URL      the app listener
//   BUSY_APP     the app the traffic goes to (under /BUSY_APP), IDLE_APP one left alone
//   ODD_SOURCE   the source path of an app whose directory name is markup
//   SCREENSHOT   where to save the page at the end
import { chromium } from "playwright-core";
import assert from "node:assert/strict";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const [adminUrl, token, appUrl, busy, idle, oddSource] = ["ADMIN_URL", "ADMIN_TOKEN", "APP_URL", "BUSY_APP", "IDLE_APP", "ODD_SOURCE"].map(env);
const step = (text) => console.log(`-- ${text}`);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
let page;
try {
  page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  page.on("dialog", (d) => {
    errors.push(`a dialog opened: ${d.message()}`);
    d.dismiss();
  });

  step("the page loads and asks for the token; its data needs the token");
  const loaded = await page.goto(`${adminUrl}/`);
  assert.equal(loaded.status(), 200);
  assert.match(loaded.headers()["content-security-policy"], /script-src 'self'/);
  await page.locator("#sign-in").waitFor({ state: "visible" });
  assert.equal(await page.locator("#board").isVisible(), false);
  const bare = await page.evaluate(async () => (await fetch("/v1/apps")).status);
  assert.equal(bare, 401, "the API answers the page without a token");

  step("a wrong token is refused and shows nothing");
  await page.fill("#token", "not-the-token-at-all");
  await page.click("button[type=submit]");
  await page.locator("#status.error").filter({ hasText: "refused" }).waitFor();
  assert.equal(await page.locator("#board").isVisible(), false);
  assert.equal(await page.locator("#apps tbody tr").count(), 0);

  step("the right token shows every app with its routes");
  await page.fill("#token", token);
  await page.click("button[type=submit]");
  await page.locator("#board").waitFor({ state: "visible" });
  for (const name of [busy, idle]) {
    await page.locator(`#apps tr[data-app="${name}"]`).waitFor();
  }
  const busyRow = await page.locator(`#apps tr[data-app="${busy}"]`).innerText();
  assert.match(busyRow, new RegExp(`/${busy}`), "the busy app's prefix");
  assert.match(busyRow, /guest: \//, "the busy app's route");
  await page.locator(`.component[data-key="${busy}/guest"]`).waitFor();
  await page.locator(`.component[data-key="${idle}/guest"]`).waitFor();

  step("an app whose directory name is markup shows as text and runs nothing");
  const odd = page.locator("#apps td.source").filter({ hasText: oddSource });
  assert.equal(await odd.count(), 1, "the odd source path is shown as text");
  assert.equal(await page.locator("#apps img").count(), 0, "markup in the source became an element");
  assert.equal(await page.evaluate(() => window.pwned), undefined, "markup in the source ran a script");

  const chart = (app, series) => page.locator(`.component[data-key="${app}/guest"] [data-series="${series}"] svg`);
  const maxOf = async (app, series) => Number((await chart(app, series).getAttribute("data-max")) || 0);
  // Two samples at least, so the rate is measured before traffic.
  await page.waitForFunction(() => document.querySelector("polyline")?.getAttribute("points")?.split(" ").length >= 2);
  assert.equal(await maxOf(busy, "rate"), 0, "requests counted before any were sent");
  const pointsBefore = await chart(busy, "rate").locator("polyline").getAttribute("points");

  step("traffic to one app moves its charts, and only its charts");
  let sent = 0;
  let failed = 0;
  const until = Date.now() + 4000;
  while (Date.now() < until) {
    const answers = await Promise.all(Array.from({ length: 8 }, () => fetch(`${appUrl}/${busy}/hello`)));
    for (const a of answers) {
      assert.equal(a.status, 200);
      await a.arrayBuffer();
    }
    sent += answers.length;
    if (failed < 3) {
      const trapped = await fetch(`${appUrl}/${busy}/trap`);
      await trapped.arrayBuffer();
      assert.equal(trapped.status, 500);
      failed += 1;
    }
  }
  console.log(`sent ${sent} requests and ${failed} that trap`);
  await page.waitForFunction((key) => Number(document.querySelector(`.component[data-key="${key}"] [data-series="rate"] svg`).dataset.max) > 0, `${busy}/guest`, { timeout: 10000 });
  const pointsAfter = await chart(busy, "rate").locator("polyline").getAttribute("points");
  assert.notEqual(pointsAfter, pointsBefore, "the rate chart did not move");
  const rate = await maxOf(busy, "rate");
  assert.ok(rate >= 1 && rate <= sent + failed, `the highest rate shown (${rate}/s) does not fit ${sent + failed} requests in ~4 s`);
  assert.ok((await maxOf(busy, "latency")) > 0, "no latency shown");
  assert.ok((await maxOf(busy, "memory")) > 0, "no memory shown");
  assert.equal(await maxOf(idle, "rate"), 0, "the idle app's chart moved");
  const busyCard = await page.locator(`.component[data-key="${busy}/guest"]`).innerText();
  console.log(busyCard.replace(/\n/g, " | "));

  step("the failures are listed with their reasons");
  const failure = page.locator("#failures tbody tr").filter({ hasText: busy }).first();
  await failure.waitFor();
  assert.match(await failure.locator("td.reason").innerText(), /component `guest` failed/);

  assert.deepEqual(errors, [], "the page raised errors");
  if (process.env.SCREENSHOT) await page.screenshot({ path: process.env.SCREENSHOT, fullPage: true });
  console.log("dashboard: every check passed");
} catch (error) {
  if (page && process.env.SCREENSHOT) await page.screenshot({ path: process.env.SCREENSHOT, fullPage: true }).catch(() => {});
  console.error(error);
  process.exitCode = 1;
} finally {
  await browser.close();
}
