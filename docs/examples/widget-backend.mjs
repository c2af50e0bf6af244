// A minimal web chat back end for switchboard (Node 18 or later, no dependencies): it forwards
// what visitors write to /webhooks/standard, signed with Standard Webhooks, and hands the
// agents' replies (message.sent events on the web channel) back to the widget.
import { createHmac, randomUUID } from "node:crypto";

export function widgetBackend({ url, secret, sendToWidget }) {
  const key = Buffer.from(secret.replace(/^whsec_/, ""), "base64");

  // A visitor wrote in the widget: sign and post it. Retry on 5xx or no answer: a redelivery
  // of the same message id is a no-op.
  async function forward(visitor, chatId, messageId, text) {
    const body = JSON.stringify({
      type: "message.received", source: "webchat", account: "acme-site",
      customer: { id: visitor.id, name: visitor.name },
      message: { id: messageId, text, sent_at: new Date().toISOString() },
      conversation: { id: chatId },
    });
    const id = `msg_${randomUUID()}`;
    const timestamp = Math.floor(Date.now() / 1000);
    const signature = createHmac("sha256", key)
      .update(`${id}.${timestamp}.${body}`)
      .digest("base64");
    const res = await fetch(`${url}/webhooks/standard`, {
      method: "POST",
      body,
      headers: {
        "content-type": "application/json",
        "webhook-id": id,
        "webhook-timestamp": String(timestamp),
        "webhook-signature": `v1,${signature}`,
      },
    });
    if (!res.ok) throw new Error(`switchboard answered ${res.status}: ${await res.text()}`);
  }

  // An agent answered through switchboard: hand the reply to the visitor.
  async function deliver(detail) {
    if (detail.channel !== "web") return;
    await sendToWidget(detail.recipient.replace(/^webchat:/, ""), detail.text);
  }

  // Deployed: the handler of a Lambda function that an EventBridge rule on message.sent
  // (detail.channel "web") targets. Events come at least once: detail.provider_message_id
  // is the reply's id.
  const onMessageSent = (event) => deliver(event.detail);

  // Under `switchboard serve`: read the events through the API (a development loop).
  const seen = new Set();
  async function pollReplies() {
    let cursor = "";
    do {
      const res = await fetch(`${url}/api/events?type=message.sent&limit=500${cursor}`);
      const page = await res.json();
      for (const event of page.items) {
        if (seen.has(event.id)) continue;
        seen.add(event.id);
        await deliver(event.detail);
      }
      cursor = page.next ? `&cursor=${encodeURIComponent(page.next)}` : "";
    } while (cursor);
  }

  return { forward, onMessageSent, pollReplies };
}
