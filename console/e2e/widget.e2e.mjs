// The README's widget back end (docs/examples/widget-backend.mjs), run as it is against the
// real `switchboard serve`: a visitor's message forwarded (signed with Standard Webhooks) is a
// web conversation waiting in the queue; forwarding it again adds nothing; an agent's reply
// through the API reaches the widget exactly once through pollReplies, and the same event
// through onMessageSent (the deployed path) reaches it too; a message.sent of another channel
// is not the widget's.
//
// Usage: SWITCHBOARD_BIN=<path to the switchboard binary> node e2e/widget.e2e.mjs

import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const { widgetBackend } = await import(join(here, "../../docs/examples/widget-backend.mjs"));

const SECRET = "whsec_" + Buffer.from("the widget's e2e signing key, 32b").toString("base64");
const failures = [];
function check(ok, what) {
  if (!ok) failures.push(what);
  console.log(`${ok ? "ok  " : "FAIL"} ${what}`);
}

const data = mkdtempSync(join(tmpdir(), "switchboard-widget-"));
const bin = process.env.SWITCHBOARD_BIN;
if (!bin) throw new Error("set SWITCHBOARD_BIN to the switchboard binary");
const server = spawn(bin, ["serve", "--addr", "127.0.0.1:0", "--data", data], {
  env: { PATH: process.env.PATH, RUST_LOG: "info", SWITCHBOARD_STANDARD_SECRETS: SECRET },
  stdio: ["ignore", "ignore", "pipe"],
});
let seen = "";
const base = await new Promise((resolve, reject) => {
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

async function api(path, init) {
  const res = await fetch(`${base}/api${path}`, {
    ...init,
    headers: { "content-type": "application/json", ...(init?.headers ?? {}) },
  });
  if (!res.ok) throw new Error(`${path}: ${res.status} ${await res.text()}`);
  return res.json();
}
async function eventually(what, probe) {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

try {
  const delivered = [];
  const widget = widgetBackend({
    url: base,
    secret: SECRET,
    sendToWidget: async (visitor, text) => delivered.push({ visitor, text }),
  });
  const visitor = { id: "v-81", name: "Ana" };
  await widget.forward(visitor, "chat-17", "m-1", "Hola, ¿tienen envíos a Quito?");
  const queued = await eventually("the web conversation in the queue", async () => {
    const queue = await api("/queue");
    return queue.items.find((c) => c.channel === "web");
  });
  check(queued.customer_provider_id === "webchat:v-81", "the visitor is the customer");
  await widget.forward(visitor, "chat-17", "m-1", "Hola, ¿tienen envíos a Quito?");
  const messages = await api(`/conversations/${queued.id}/messages`);
  check(messages.items.length === 1, `forwarded twice, stored once (${messages.items.length})`);

  await widget.pollReplies();
  check(delivered.length === 0, "nothing to deliver before an agent answers");
  const reply = await api(`/conversations/${queued.id}/reply`, {
    method: "POST",
    headers: { "x-switchboard-agent": "luis" },
    body: JSON.stringify({ text: "Sí, en 48 horas.", reply_to: "m-1" }),
  });
  check(reply.provider_message_id?.startsWith("sb_"), "the reply is stored with its own id");
  const after = await api(`/conversations/${queued.id}`);
  check(after.status === "answered", `the reply answers the conversation (${after.status})`);

  await widget.pollReplies();
  await widget.pollReplies();
  check(
    delivered.length === 1 && delivered[0].visitor === "v-81" && delivered[0].text === "Sí, en 48 horas.",
    `pollReplies hands the reply to the widget once (${JSON.stringify(delivered)})`,
  );
  const events = await api("/events?type=message.sent");
  await widget.onMessageSent(events.items[0]);
  check(delivered.length === 2, "onMessageSent delivers the event it is given");
  await widget.onMessageSent({ detail: { ...events.items[0].detail, channel: "whatsapp" } });
  check(delivered.length === 2, "another channel's reply is not the widget's");
} catch (e) {
  failures.push(String(e?.stack ?? e));
  console.error(e);
} finally {
  server.kill();
  rmSync(data, { recursive: true, force: true });
}

if (failures.length) {
  console.error(`serve said:\n${seen}`);
  console.error(`\n${failures.length} failed:\n- ${failures.join("\n- ")}`);
  process.exit(1);
}
console.log("\nwidget back end end to end: every check passed");
