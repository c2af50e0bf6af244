// A conversation: the customer's whole timeline across every linked channel, the current
// case, and what an agent does: reply (the window rule shown first), assign, resolve, link to
// another customer, mark VIP.

import { useEffect, useMemo, useState } from "preact/hooks";
import {
  type Conversation,
  type Customer,
  type CustomerLink,
  type Page,
  type RecordView,
  ApiError,
  channelName,
} from "./api";
import { api } from "./client";
import { Countdown, PriorityBadge } from "./queue";
import { duration, local, utc } from "./time";
import { describeWindow, replyWindow } from "./window";

function Time({ iso }: { iso: string }) {
  return (
    <time dateTime={iso} title={`${utc(iso)} (UTC)`}>
      {local(iso)}
    </time>
  );
}

function eventLabel(r: RecordView): string {
  const kind = r.kind;
  if (kind.startsWith("status.")) return `${kind.slice(7)}`;
  if (kind === "edit") return "edited";
  if (kind === "delete" || kind === "remove") return "deleted";
  if (kind === "reaction") return "reaction";
  return kind;
}

function Entry({ r, status }: { r: RecordView; status?: string | null }) {
  if (r.record === "event") {
    return (
      <li class="event">
        <span class={`channel ${r.channel}`}>{channelName(r.channel)}</span>
        <span>
          {eventLabel(r)} {r.text ? `: ${r.text}` : ""}
        </span>
        <Time iso={r.sent_at} />
      </li>
    );
  }
  return (
    <li class={`message ${r.direction}`} data-key={r.key}>
      <div class="meta">
        <span class={`channel ${r.channel}`}>{channelName(r.channel)}</span>
        <span>{r.direction === "inbound" ? "customer" : "brand"}</span>
        <span>{r.public ? "public" : "private"}</span>
        {r.kind !== "text" && <span>{r.kind}</span>}
        <Time iso={r.sent_at} />
        {status && <span class={`status ${status}`}>{status}</span>}
      </div>
      {r.text && <p class="text">{r.text}</p>}
      {r.attachments && r.attachments.length > 0 && (
        <ul class="attachments">
          {r.attachments.map((a) => (
            <li>
              {a.kind}
              {a.filename ? ` ${a.filename}` : ""}
              {a.mime_type ? ` (${a.mime_type})` : ""}
            </li>
          ))}
        </ul>
      )}
    </li>
  );
}

export function ConversationPage({
  id,
  me,
  onAuthError,
}: {
  id: string;
  me: string | null;
  onAuthError: (e: unknown) => void;
}) {
  const [c, setC] = useState<Conversation | null>(null);
  const [customer, setCustomer] = useState<Customer | null>(null);
  const [timeline, setTimeline] = useState<RecordView[]>([]);
  const [own, setOwn] = useState<RecordView[]>([]);
  const [now, setNow] = useState(Date.now());
  const [error, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);

  const load = async () => {
    try {
      const conv = await api.get<Conversation>(`/conversations/${id}`);
      setC(conv);
      const [cust, tl, mine] = await Promise.all([
        api.get<Customer>(`/customers/${conv.customer_id}`),
        api.get<Page<RecordView>>(`/customers/${conv.customer_id}/timeline?limit=500`),
        api.get<Page<RecordView>>(`/conversations/${id}/messages?limit=500`),
      ]);
      setCustomer(cust);
      setTimeline(tl.items);
      setOwn(mine.items);
    } catch (e) {
      onAuthError(e);
      setError(e instanceof Error ? e.message : String(e));
    }
  };

  useEffect(() => {
    load();
    const poll = setInterval(load, 4000);
    const tick = setInterval(() => setNow(Date.now()), 1000);
    return () => {
      clearInterval(poll);
      clearInterval(tick);
    };
  }, [id]);

  const statuses = useMemo(() => {
    const m = new Map<string, string>();
    for (const r of own) if (r.status) m.set(r.provider_message_id, r.status);
    return m;
  }, [own]);

  const act = async (what: string, path: string, body?: unknown, method = "POST") => {
    setNotice(null);
    try {
      await api.request(method, path, body ?? {});
      setNotice(what);
      await load();
    } catch (e) {
      onAuthError(e);
      setNotice(`${what} failed: ${e instanceof Error ? e.message : e}`);
    }
  };

  if (error && !c) {
    return (
      <main>
        <p class="error" role="alert">
          {error}
        </p>
      </main>
    );
  }
  if (!c) return <main aria-busy="true">Loading…</main>;

  const vip = customer?.tier === "vip";
  return (
    <main class="conversation">
      <p>
        <a href="#/">← Queue</a>
      </p>
      <div class="head">
        <h1>
          {c.customer_name ?? c.customer_provider_id} {vip && <span class="vip">VIP</span>}
        </h1>
        <dl class="case">
          <div>
            <dt>Case</dt>
            <dd>
              #{c.case} · {c.status}
            </dd>
          </div>
          <div>
            <dt>Priority</dt>
            <dd>
              <PriorityBadge c={c} /> {c.priority?.topic} · {c.priority?.team}
            </dd>
          </div>
          <div>
            <dt>SLA</dt>
            <dd>
              <Countdown c={c} now={now} />
            </dd>
          </div>
          <div>
            <dt>Assignee</dt>
            <dd>{c.assignee ?? "unassigned"}</dd>
          </div>
          <div>
            <dt>First response</dt>
            <dd>{duration(c.first_response_seconds)}</dd>
          </div>
          <div>
            <dt>Channels</dt>
            <dd>
              {customer?.identities.map((i) => channelName(i.channel)).join(", ") ??
                channelName(c.channel)}
            </dd>
          </div>
        </dl>
        {c.priority && (
          <details class="reasons">
            <summary>Why {c.priority.priority}</summary>
            <ul>
              {c.priority.reasons.map((r) => (
                <li>
                  <b>{r.signal}</b> {r.weight >= 0 ? `+${r.weight}` : r.weight}
                  {r.detail ? ` (${r.detail})` : ""}
                </li>
              ))}
            </ul>
          </details>
        )}
        {customer?.links?.length ? (
          <details class="links" open>
            <summary>Linked identities ({customer.links.length})</summary>
            <ul>
              {customer.links.map((l) => (
                <li data-linked={l.customer_id}>
                  {linkText(l, customer)}{" "}
                  <button
                    type="button"
                    class="undo"
                    aria-label={`Undo link of ${identityName(customer, l.customer_id)}`}
                    onClick={() =>
                      act("Unlinked", `/customers/${customer.id}/links/${l.customer_id}`, undefined, "DELETE")
                    }
                  >
                    Undo link
                  </button>
                </li>
              ))}
            </ul>
          </details>
        ) : null}
      </div>
      <div class="columns">
        <section aria-labelledby="timeline-title" class="timeline">
          <h2 id="timeline-title">Timeline, every channel</h2>
          <ol>
            {timeline.map((r) => (
              <Entry r={r} status={statuses.get(r.provider_message_id)} />
            ))}
          </ol>
        </section>
        <section aria-labelledby="actions-title" class="actions">
          <h2 id="actions-title">Actions</h2>
          {notice && (
            <p class="notice" role="status">
              {notice}
            </p>
          )}
          <Reply c={c} own={own} now={now} onSend={act} />
          <div class="action case-actions">
            <h3>Case</h3>
            <button type="button" onClick={() => act("Resolved", `/conversations/${id}/resolve`)}>
              Resolve
            </button>
            <button
              type="button"
              onClick={() => act("Assigned", `/conversations/${id}/assign`, { agent: me ?? "local" })}
            >
              Assign to me
            </button>
            <button
              type="button"
              onClick={() => act("Unassigned", `/conversations/${id}/assign`, { agent: null })}
            >
              Unassign
            </button>
            <button
              type="button"
              onClick={() =>
                act(
                  vip ? "VIP removed" : "Marked VIP",
                  `/customers/${c.customer_id}/tier`,
                  { tier: vip ? null : "vip" },
                  "PUT",
                )
              }
            >
              {vip ? "Remove VIP" : "Mark VIP"}
            </button>
          </div>
          <Link c={c} onLink={act} />
        </section>
      </div>
    </main>
  );
}

function Reply({
  c,
  own,
  now,
  onSend,
}: {
  c: Conversation;
  own: RecordView[];
  now: number;
  onSend: (what: string, path: string, body?: unknown) => Promise<void>;
}) {
  const [text, setText] = useState("");
  const [priv, setPriv] = useState(false);
  const [template, setTemplate] = useState({ name: "", language: "es" });
  const [sending, setSending] = useState(false);
  const lastCustomer = [...own]
    .reverse()
    .find((r) => r.record === "message" && r.direction === "inbound");
  const comment = lastCustomer?.public ? lastCustomer.sent_at : null;
  const w = replyWindow(c.channel, now, c.last_inbound_at, comment);
  const send = async (e: Event) => {
    e.preventDefault();
    setSending(true);
    const body: Record<string, unknown> = {};
    if (w.kind === "template") {
      body.template = { name: template.name, language: template.language };
    } else {
      body.text = text;
    }
    if (w.kind === "tag") body.tag = "HUMAN_AGENT";
    if (w.kind === "public" && priv) body.private = true;
    try {
      await onSend("Reply sent", `/conversations/${c.id}/reply`, body);
      setText("");
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
    } finally {
      setSending(false);
    }
  };
  return (
    <form class="action reply" onSubmit={send}>
      <h3>Reply</h3>
      <p class="window" data-window={w.kind}>
        {describeWindow(w)}
      </p>
      {w.kind === "template" ? (
        <>
          <label>
            Template name
            <input
              value={template.name}
              required
              onInput={(e) => setTemplate({ ...template, name: e.currentTarget.value })}
            />
          </label>
          <label>
            Language
            <input
              value={template.language}
              required
              onInput={(e) => setTemplate({ ...template, language: e.currentTarget.value })}
            />
          </label>
        </>
      ) : (
        <label>
          Message
          <textarea
            rows={4}
            value={text}
            required
            disabled={w.kind === "closed"}
            onInput={(e) => setText(e.currentTarget.value)}
          />
        </label>
      )}
      {w.kind === "public" && w.privateUntil && (
        <label class="inline">
          <input type="checkbox" checked={priv} onChange={(e) => setPriv(e.currentTarget.checked)} />
          Send as a private message to the author
        </label>
      )}
      {w.kind === "tag" && <p class="hint">It will be sent with the HUMAN_AGENT tag.</p>}
      <button type="submit" disabled={sending || w.kind === "closed"}>
        {sending ? "Sending…" : "Send"}
      </button>
    </form>
  );
}

function Link({
  c,
  onLink,
}: {
  c: Conversation;
  onLink: (what: string, path: string, body?: unknown) => Promise<void>;
}) {
  const [q, setQ] = useState("");
  const [found, setFound] = useState<Conversation[]>([]);
  useEffect(() => {
    const query = q.trim().toLowerCase();
    if (query.length < 2) {
      setFound([]);
      return;
    }
    const t = setTimeout(() => {
      api
        .get<Page<Conversation>>("/conversations?limit=500")
        .then((page) =>
          setFound(
            page.items
              .filter((o) => o.customer_id !== c.customer_id)
              .filter(
                (o) =>
                  (o.customer_name ?? "").toLowerCase().includes(query) ||
                  o.customer_provider_id.toLowerCase().includes(query),
              )
              .slice(0, 8),
          ),
        )
        .catch(() => setFound([]));
    }, 250);
    return () => clearTimeout(t);
  }, [q]);
  return (
    <div class="action link">
      <h3>The same person elsewhere</h3>
      <label>
        Search by name or handle
        <input type="search" value={q} onInput={(e) => setQ(e.currentTarget.value)} />
      </label>
      <ul>
        {found.map((o) => (
          <li>
            <span class={`channel ${o.channel}`}>{channelName(o.channel)}</span>{" "}
            {o.customer_name ?? o.customer_provider_id}{" "}
            <button
              type="button"
              onClick={() =>
                onLink("Linked", `/customers/${c.customer_id}/link`, {
                  customer_id: o.customer_id,
                })
              }
            >
              Link
            </button>
          </li>
        ))}
      </ul>
    </div>
  );
}

const IDENTIFIER_NAMES: Record<string, string> = {
  email: "e-mail address",
  phone: "phone number",
  whatsapp_user: "WhatsApp user id",
  handle: "handle",
};

/** The channel and id of one of a customer's identities, by its customer id. */
function identityName(customer: Customer, id: string): string {
  const i = customer.identities.find((x) => x.customer_id === id);
  return i ? `${channelName(i.channel)} ${i.display_name ?? i.provider_user_id}` : id;
}

/** Who linked an identity in and why: an agent, or the identifier both carried. */
function linkText(l: CustomerLink, customer: Customer): string {
  const who = identityName(customer, l.customer_id);
  const when = new Date(l.at).toLocaleDateString();
  if (!l.evidence) return `${who}: linked by an agent on ${when}`;
  const e = l.evidence;
  return (
    `${who}: same ${IDENTIFIER_NAMES[e.identifier.kind] ?? e.identifier.kind} ${e.identifier.value}, ` +
    `seen on ${channelName(e.seen.channel)} and on ${channelName(e.matched.channel)} since ` +
    `${new Date(e.matched.at).toLocaleDateString()} (linked automatically on ${when})`
  );
}
