// Meta's messaging windows, shown before the agent types: the server checks them again and
// refuses a reply outside them (409), so this is a guide, never the gate.
//
// | conversation | free text | after that |
// |---|---|---|
// | WhatsApp | 24 h after the customer's last message | a template only |
// | Messenger, Instagram direct | 24 h | the HUMAN_AGENT tag, up to 7 days |
// | a public comment | a public reply, always | a private reply: 7 days after the comment |

const HOUR = 3600_000;
export const SERVICE_WINDOW_MS = 24 * HOUR;
export const HUMAN_AGENT_WINDOW_MS = 7 * 24 * HOUR;
export const PRIVATE_REPLY_WINDOW_MS = 7 * 24 * HOUR;

/** What an agent may send now. */
export type ReplyWindow =
  | { kind: "open"; closesAt: number; leftMs: number }
  | { kind: "template" }
  | { kind: "tag"; closesAt: number; leftMs: number }
  | { kind: "closed"; reason: string }
  | { kind: "public"; privateUntil: number | null };

/**
 * The window of a reply on `channel` at `now`, the customer's last message being at
 * `lastCustomerAt` (ISO) and, for a comment, the comment answered at `commentAt`.
 */
export function replyWindow(
  channel: string,
  now: number,
  lastCustomerAt: string | null,
  commentAt?: string | null,
): ReplyWindow {
  if (commentAt) {
    const until = Date.parse(commentAt) + PRIVATE_REPLY_WINDOW_MS;
    return { kind: "public", privateUntil: now < until ? until : null };
  }
  if (channel === "facebook_feed") {
    return { kind: "public", privateUntil: null };
  }
  if (!lastCustomerAt) {
    return { kind: "closed", reason: "the customer has not written on this channel" };
  }
  const last = Date.parse(lastCustomerAt);
  const closesAt = last + SERVICE_WINDOW_MS;
  if (now < closesAt) return { kind: "open", closesAt, leftMs: closesAt - now };
  if (channel === "whatsapp") return { kind: "template" };
  if (channel === "messenger" || channel === "instagram") {
    const tagUntil = last + HUMAN_AGENT_WINDOW_MS;
    if (now < tagUntil) return { kind: "tag", closesAt: tagUntil, leftMs: tagUntil - now };
    return { kind: "closed", reason: "more than 7 days since the customer's last message" };
  }
  return { kind: "open", closesAt: Number.POSITIVE_INFINITY, leftMs: Number.POSITIVE_INFINITY };
}

/** One line for the agent: what the window allows and for how long. */
export function describeWindow(w: ReplyWindow): string {
  const left = (ms: number) => {
    const h = Math.floor(ms / HOUR);
    const m = Math.floor((ms % HOUR) / 60000);
    return h > 0 ? `${h} h ${m} min` : `${m} min`;
  };
  switch (w.kind) {
    case "open":
      return Number.isFinite(w.leftMs)
        ? `Free text for ${left(w.leftMs)} more (24-hour window).`
        : "Free text.";
    case "template":
      return "The 24-hour window has closed: WhatsApp allows only an approved template.";
    case "tag":
      return `The 24-hour window has closed: an agent may answer with the HUMAN_AGENT tag for ${left(w.leftMs)} more.`;
    case "closed":
      return `No reply possible: ${w.reason}.`;
    case "public":
      return w.privateUntil
        ? "A public reply under the comment, or a private message to its author."
        : "A public reply under the comment (a private message is no longer possible).";
  }
}
