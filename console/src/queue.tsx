// The queue: the waiting conversations of a team (or all, or the agent's own), most urgent
// first as /api/queue orders them, each with its live SLA countdown. Polled every 1.5 seconds;
// j/k move, Enter opens.

import { useEffect, useRef, useState } from "preact/hooks";
import { type Conversation, type Page, channelName } from "./api";
import { api } from "./client";
import { countdown, short, slaState, utc } from "./time";

const POLL_MS = 1500;

export function Countdown({ c, now }: { c: Conversation; now: number }) {
  if (!c.due_at) return <span class="sla none">not timed</span>;
  const state = slaState(now, c.warn_at, c.due_at);
  const label = state === "late" ? "late by" : "due in";
  const left = countdown(now, c.due_at).replace(/^-/, "");
  return (
    <span class={`sla ${state}`} title={`due ${utc(c.due_at)} (UTC)`}>
      <span class="sr">{label} </span>
      {state === "late" ? `+${left}` : left}
      <small> · {short(c.due_at, now)}</small>
    </span>
  );
}

export function PriorityBadge({ c }: { c: Conversation }) {
  const p = c.priority;
  const why = p?.reasons.map((r) => `${r.signal} ${r.weight >= 0 ? "+" : ""}${r.weight}`).join(", ");
  return (
    <span class={`prio ${p?.priority ?? "none"}`} title={why ? `${p?.priority}: ${why}` : undefined}>
      {p?.priority ?? "–"}
    </span>
  );
}

export function QueuePage({
  me,
  onAuthError,
}: {
  me: string | null;
  onAuthError: (e: unknown) => void;
}) {
  const [teams, setTeams] = useState<string[]>([]);
  const [team, setTeam] = useState(() => sessionStorage.getItem("switchboard.team") ?? "all");
  const [items, setItems] = useState<Conversation[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [now, setNow] = useState(Date.now());
  const [selected, setSelected] = useState(0);
  const [open, setOpen] = useState<string | null>(null);
  const list = useRef<HTMLOListElement>(null);

  useEffect(() => {
    api
      .get<{ teams: string[] }>("/teams")
      .then((r) => setTeams(r.teams))
      .catch(onAuthError);
  }, []);

  useEffect(() => {
    sessionStorage.setItem("switchboard.team", team);
    let stop = false;
    const query =
      team === "all"
        ? ""
        : team === "mine"
          ? `&agent=${encodeURIComponent(me ?? "local")}`
          : `&team=${encodeURIComponent(team)}`;
    const load = () =>
      api
        .get<Page<Conversation>>(`/queue?limit=100${query}`)
        .then((page) => {
          if (!stop) {
            setItems(page.items);
            setError(null);
          }
        })
        .catch((e) => {
          onAuthError(e);
          if (!stop) setError(String(e.message ?? e));
        });
    load();
    const poll = setInterval(load, POLL_MS);
    const tick = setInterval(() => setNow(Date.now()), 1000);
    return () => {
      stop = true;
      clearInterval(poll);
      clearInterval(tick);
    };
  }, [team, me]);

  useEffect(() => {
    // j / k move the selection and the focus together (the focused row is what Enter opens);
    // a row focused by Tab or a click becomes the selection too.
    const onKey = (e: KeyboardEvent) => {
      const target = e.target as HTMLElement;
      if (["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName)) return;
      const links = list.current?.querySelectorAll<HTMLAnchorElement>("a.open");
      const n = links?.length ?? 0;
      if (!n) return;
      const current = Math.min(selected, n - 1);
      let next: number;
      if (e.key === "j") next = Math.min(n - 1, current + 1);
      else if (e.key === "k") next = Math.max(0, current - 1);
      else if (e.key === "Enter" && target.tagName !== "A" && target.tagName !== "BUTTON") {
        links![current].click();
        e.preventDefault();
        return;
      } else return;
      e.preventDefault();
      setSelected(next);
      links![next].focus();
    };
    addEventListener("keydown", onKey);
    return () => removeEventListener("keydown", onKey);
  }, [items, selected]);

  return (
    <main class="queue">
      <div class="bar">
        <h1>Queue</h1>
        <label>
          Team
          <select value={team} onChange={(e) => setTeam(e.currentTarget.value)}>
            <option value="all">All teams</option>
            <option value="mine">Mine</option>
            {teams.map((t) => (
              <option value={t}>{t}</option>
            ))}
          </select>
        </label>
        <span class="count" aria-live="polite">
          {items ? `${items.length} waiting` : "loading…"}
        </span>
        <span class="hint">j / k to move, Enter to open</span>
      </div>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {items && items.length === 0 && <p class="empty">Nobody is waiting.</p>}
      <ol class="rows" ref={list} aria-label="Waiting conversations, most urgent first">
        {items?.map((c, i) => (
          <li
            class={`row ${i === selected ? "selected" : ""}`}
            key={c.id}
            data-conversation={c.id}
            onClick={() => setSelected(i)}
          >
            <PriorityBadge c={c} />
            <span class={`channel ${c.channel}`}>{channelName(c.channel)}</span>
            <a class="open" href={`#/c/${c.id}`} onFocus={() => setSelected(i)}>
              <strong>{c.customer_name ?? c.customer_provider_id}</strong>
              <span class="preview">{c.preview ?? ""}</span>
            </a>
            <span class="topic">{c.priority?.topic ?? ""}</span>
            <span class="assignee">{c.assignee ?? "unassigned"}</span>
            <Countdown c={c} now={now} />
            <button
              type="button"
              class="why"
              aria-expanded={open === c.id}
              aria-controls={`why-${c.id}`}
              onClick={(e) => {
                e.stopPropagation();
                setOpen(open === c.id ? null : c.id);
              }}
            >
              Why
            </button>
            {open === c.id && (
              <ul class="reasons" id={`why-${c.id}`}>
                {c.priority?.reasons.map((r) => (
                  <li>
                    <b>{r.signal}</b> {r.weight > 0 ? `+${r.weight}` : r.weight}
                    {r.detail ? ` (${r.detail})` : ""}
                  </li>
                ))}
                <li>team {c.priority?.team}</li>
              </ul>
            )}
          </li>
        ))}
      </ol>
    </main>
  );
}
