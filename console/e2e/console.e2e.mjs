// End to end, in a real browser: Debian's Chromium, headless, driven by playwright-core (no
// browser download), against the real `switchboard serve` binary and a fake Graph API on
// loopback. The walk: an urgent and a calm WhatsApp message and an Instagram message
// of the same (linked) customer; the urgent one first in the queue with its reasons and a
// countdown; open it, the Instagram message in the same timeline; reply (sent to the fake
// Graph API); the conversation leaves the queue within 2 s and the reply shows with its
// status; resolve; the link shows who made it, and undoing it splits the timeline; the figures
// show the answer. Screenshots of each page go to e2e/out/ (and,
// with UPDATE_SCREENSHOTS=1, to docs/screenshots/ for the README); axe-core finds no critical
// accessibility violation on any page.
//
// Usage: SWITCHBOARD_BIN=<path to the switchboard binary> node e2e/console.e2e.mjs
// (infra/console-e2e.sh builds it and sets it). CHROMIUM overrides /usr/bin/chromium.

import { spawn } from "node:child_process";
import { createHmac } from "node:crypto";
import { mkdirSync, mkdtempSync, copyFileSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "out");
const require = createRequire(import.meta.url);
mkdirSync(out, { recursive: true });

const SECRET = "e2e-app-secret";
const failures = [];
function check(ok, what) {
  if (!ok) failures.push(what);
  console.log(`${ok ? "ok  " : "FAIL"} ${what}`);
}

// A fake Graph API: records each request, answers as Meta does.
const graphRequests = [];
const graph = createServer((req, res) => {
  let body = "";
  req.on("data", (c) => (body += c));
  req.on("end", () => {
    const json = body ? JSON.parse(body) : {};
    graphRequests.push({ path: req.url, auth: req.headers.authorization, body: json });
    res.setHeader("content-type", "application/json");
    const n = graphRequests.length;
    if (json.messaging_product === "whatsapp") {
      res.end(JSON.stringify({ messaging_product: "whatsapp", messages: [{ id: `wamid.E2E-REPLY-${n}` }] }));
    } else {
      res.end(JSON.stringify({ recipient_id: "x", message_id: `m.E2E-REPLY-${n}` }));
    }
  });
});
await new Promise((r) => graph.listen(0, "127.0.0.1", r));
const graphUrl = `http://127.0.0.1:${graph.address().port}/v23.0`;

// The real binary.
const data = mkdtempSync(join(tmpdir(), "switchboard-e2e-"));
const bin = process.env.SWITCHBOARD_BIN;
if (!bin) throw new Error("set SWITCHBOARD_BIN to the switchboard binary");
const server = spawn(bin, ["serve", "--addr", "127.0.0.1:0", "--data", data], {
  env: {
    PATH: process.env.PATH,
    RUST_LOG: "warn",
    SWITCHBOARD_WHATSAPP_APP_SECRETS: SECRET,
    SWITCHBOARD_WHATSAPP_VERIFY_TOKEN: "e2e-verify",
    SWITCHBOARD_INSTAGRAM_APP_SECRETS: SECRET,
    SWITCHBOARD_INSTAGRAM_VERIFY_TOKEN: "e2e-verify",
    SWITCHBOARD_WHATSAPP_ACCESS_TOKEN: "token-whatsapp",
    SWITCHBOARD_INSTAGRAM_ACCESS_TOKEN: "token-instagram",
    SWITCHBOARD_GRAPH_API_URL: graphUrl,
  },
  stdio: ["ignore", "ignore", "pipe"],
});
const base = await new Promise((resolve, reject) => {
  let seen = "";
  const timer = setTimeout(() => reject(new Error(`serve did not start:\n${seen}`)), 60_000);
  server.stderr.on("data", (chunk) => {
    seen += chunk;
    // The space after the address: a chunk of stderr may end in the middle of it.
    const m = seen.match(/serving on (http:\/\/[0-9.:]+) /);
    if (m) {
      clearTimeout(timer);
      resolve(m[1]);
    }
  });
  server.on("exit", (code) => reject(new Error(`serve exited ${code}:\n${seen}`)));
});

const sign = (body) => `sha256=${createHmac("sha256", SECRET).update(body).digest("hex")}`;
async function deliver(webhook, payload) {
  const body = JSON.stringify(payload);
  const res = await fetch(`${base}/webhooks/${webhook}`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-hub-signature-256": sign(body) },
    body,
  });
  if (res.status !== 200) throw new Error(`${webhook}: ${res.status} ${await res.text()}`);
}
async function api(path, init) {
  const res = await fetch(`${base}/api${path}`, {
    ...init,
    headers: { "content-type": "application/json", ...(init?.headers ?? {}) },
  });
  if (!res.ok) throw new Error(`${path}: ${res.status} ${await res.text()}`);
  return res.json();
}
const PN = "106540352242922";
const IG = "17841400000000001";
const now = Math.floor(Date.now() / 1000);
const whatsapp = (from, name, id, ts, text) => ({
  object: "whatsapp_business_account",
  entry: [{ id: "WABA", changes: [{ field: "messages", value: {
    messaging_product: "whatsapp",
    metadata: { display_phone_number: "15550001111", phone_number_id: PN },
    contacts: [{ profile: { name }, wa_id: from }],
    messages: [{ from, id, timestamp: String(ts), type: "text", text: { body: text } }],
  } }] }],
});
const instagram = (sender, mid, ms, text) => ({
  object: "instagram",
  entry: [{ id: IG, time: ms, messaging: [
    { sender: { id: sender }, recipient: { id: IG }, timestamp: ms, message: { mid, text } },
  ] }],
});
const status = (id, recipient, st, ts) => ({
  object: "whatsapp_business_account",
  entry: [{ id: "WABA", changes: [{ field: "messages", value: {
    messaging_product: "whatsapp",
    metadata: { display_phone_number: "15550001111", phone_number_id: PN },
    statuses: [{ id, status: st, timestamp: String(ts), recipient_id: recipient }],
  } }] }],
});

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});

async function axe(page, name) {
  await page.addScriptTag({ path: require.resolve("axe-core/axe.min.js") });
  const result = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(document, { resultTypes: ["violations"] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.length }));
  });
  const critical = result.filter((v) => v.impact === "critical");
  check(critical.length === 0, `${name}: no critical accessibility violation ${JSON.stringify(critical)}`);
  if (result.length) console.log(`     (${name}: other findings ${JSON.stringify(result)})`);
}

try {
  await deliver("whatsapp", whatsapp("5215511110000", "Ana Martínez", "wamid.E2E.ANA", now - 120,
    "Me hackearon la cuenta y están haciendo compras con mi tarjeta, es urgente"));
  await deliver("whatsapp", whatsapp("5511922220000", "Bruno", "wamid.E2E.BRUNO", now - 300,
    "Olá, qual é o horário de atendimento?"));
  await deliver("instagram", instagram("IG-ANA", "m.E2E.ANA-IG", (now - 60) * 1000,
    "Les escribí por WhatsApp también, ¿me ayudan?"));
  // Wait for the prioritizer, then link Ana's two identities as an agent would.
  let conversations = [];
  for (let i = 0; i < 50; i++) {
    conversations = (await api("/conversations?limit=50")).items;
    if (conversations.filter((c) => c.priority).length >= 3) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const anaWa = conversations.find((c) => c.customer_provider_id === "5215511110000");
  const anaIg = conversations.find((c) => c.customer_provider_id === "IG-ANA");
  await api(`/customers/${anaWa.customer_id}/link`, {
    method: "POST",
    body: JSON.stringify({ customer_id: anaIg.customer_id }),
  });

  // axe-core is injected as a script, which the console's Content-Security-Policy forbids (as
  // it should): this page bypasses it; the phone page below keeps it and must work under it.
  const page = await browser.newPage({
    viewport: { width: 1280, height: 800 },
    timezoneId: "America/Mexico_City",
    bypassCSP: true,
  });
  page.on("pageerror", (e) => check(false, `no error in the page: ${e.message}`));
  await page.goto(`${base}/`);
  await page.waitForSelector("li.row");
  const first = page.locator("li.row").first();
  check((await first.getAttribute("data-conversation")) === anaWa.id, "the urgent one is first in the queue");
  const level = await first.locator(".prio").textContent();
  check(level === "P1" || level === "P2", `it is urgent (${level})`);
  check(/\d/.test(await first.locator(".sla").textContent()), "it has a countdown");
  const before = await first.locator(".sla").textContent();
  await page.waitForTimeout(1200);
  check((await first.locator(".sla").textContent()) !== before, "the countdown runs");
  await first.locator("button.why").click();
  const reasons = await page.locator("ul.reasons").textContent();
  check(/security|hack|urgency/i.test(reasons), `its reasons show: ${reasons}`);
  await page.screenshot({ path: join(out, "queue.png") });
  await axe(page, "queue");

  // Keyboard: j moves down, k back up, Enter opens.
  await page.evaluate(() => (document.activeElement instanceof HTMLElement) && document.activeElement.blur());
  await page.keyboard.press("j");
  await page.keyboard.press("k");
  await page.keyboard.press("Enter");
  await page.waitForURL(/#\/c\//);
  check(page.url().endsWith(`#/c/${anaWa.id}`), `Enter opens the selected conversation (${page.url()})`);
  await page.waitForSelector(".timeline li.message");
  const timeline = await page.locator(".timeline").textContent();
  check(timeline.includes("Les escribí por WhatsApp también"), "the Instagram message is in the same timeline");
  check(timeline.includes("Me hackearon la cuenta"), "and the WhatsApp one");
  check((await page.locator(".window").textContent()).includes("24-hour window"), "the window rule shows before typing");
  const linkShown = await page.locator(`details.links li[data-linked="${anaIg.customer_id}"]`).textContent();
  check(/Instagram .*linked by an agent/.test(linkShown), `the link shows who made it: ${linkShown}`);
  await page.screenshot({ path: join(out, "conversation.png") });
  await axe(page, "conversation");

  // A second agent watches the queue while the reply goes out.
  const watcher = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  await watcher.goto(`${base}/`);
  await watcher.waitForSelector(`li.row[data-conversation="${anaWa.id}"]`);
  await page.getByLabel("Message").fill("Bloqueamos la tarjeta y revisamos las compras ahora mismo.");
  await page.getByRole("button", { name: "Send" }).click();
  await page.waitForSelector(".notice");
  const sentAt = Date.now();
  check((await page.locator(".notice").textContent()) === "Reply sent", "the reply is sent");
  const sent = graphRequests.at(-1);
  check(sent?.path === `/v23.0/${PN}/messages` && sent.auth === "Bearer token-whatsapp" &&
    sent.body.to === "5215511110000", `the Graph API got it: ${JSON.stringify(sent)}`);

  // Out of the other agent's queue at its next poll: within 1.5 s, plus the request's time.
  await watcher.waitForFunction(
    (id) => !document.querySelector(`li.row[data-conversation="${id}"]`),
    anaWa.id,
    { timeout: 5000, polling: 50 },
  );
  const gone = Date.now() - sentAt;
  check(gone <= 3000, `it left the queue ${gone} ms after the reply (polled every 1.5 s)`);
  await watcher.close();

  // The status Meta sends for it shows on the reply.
  const replyId = `wamid.E2E-REPLY-${graphRequests.length}`;
  await deliver("whatsapp", status(replyId, "5215511110000", "delivered", now));
  await page.goto(`${base}/#/c/${anaWa.id}`);
  await page.waitForSelector(".timeline .status.delivered", { timeout: 10_000 });
  check(true, "the reply shows as delivered");

  await page.getByRole("button", { name: "Resolve" }).click();
  await page.waitForFunction(() => document.querySelector(".case")?.textContent?.includes("resolved"), null, { timeout: 5000 });
  check(true, "resolved");

  // Undo the link: the Instagram message leaves Ana's WhatsApp timeline.
  await page.getByRole("button", { name: /^Undo link of Instagram/ }).click();
  await page.waitForFunction(() => document.querySelector(".notice")?.textContent === "Unlinked", null, { timeout: 5000 });
  await page.waitForFunction(
    () => !document.querySelector(".timeline")?.textContent?.includes("Les escribí por WhatsApp también"),
    null,
    { timeout: 5000 },
  );
  check((await page.locator("details.links").count()) === 0, "the link is undone and the timelines split");

  await page.goto(`${base}/#/figures`);
  await page.waitForSelector('[data-figure="answered"]');
  const answered = Number(await page.locator('[data-figure="answered"]').textContent());
  check(answered >= 1, `the figures show the answer (${answered})`);
  await page.waitForSelector("figure.chart canvas");
  await page.screenshot({ path: join(out, "figures.png"), fullPage: true });
  await axe(page, "figures");

  // A phone: nothing wider than the screen.
  const phone = await browser.newPage({ viewport: { width: 390, height: 844 } });
  const violations = [];
  phone.on("console", (m) => {
    if (/Content Security Policy/.test(m.text())) violations.push(m.text());
  });
  await phone.goto(`${base}/`);
  await phone.waitForSelector("li.row");
  const wide = await phone.evaluate(() => document.documentElement.scrollWidth - innerWidth);
  check(wide <= 0, `readable on a phone width (overflow ${wide}px)`);
  await phone.screenshot({ path: join(out, "queue-phone.png") });
  await phone.goto(`${base}/#/figures`);
  await phone.waitForSelector("figure.chart canvas");
  check(violations.length === 0, `the console runs under its Content-Security-Policy ${violations}`);

  if (process.env.UPDATE_SCREENSHOTS === "1") {
    const docs = join(here, "../../docs/screenshots");
    mkdirSync(docs, { recursive: true });
    for (const name of ["queue.png", "conversation.png", "figures.png", "queue-phone.png"]) {
      copyFileSync(join(out, name), join(docs, name));
    }
  }
} catch (e) {
  failures.push(String(e?.stack ?? e));
  console.error(e);
} finally {
  await browser.close();
  server.kill();
  graph.close();
  rmSync(data, { recursive: true, force: true });
}

if (failures.length) {
  console.error(`\n${failures.length} failed:\n- ${failures.join("\n- ")}`);
  process.exit(1);
}
console.log("\nconsole end to end: every check passed");
