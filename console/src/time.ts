// Times as agents read them: the SLA countdown of a waiting conversation and its colour, and
// instants in the agent's time zone with the UTC instant beside them.
//
// The due and warning times come from the server, which computes them on the team's business
// calendar (a message on Friday night with a one-hour target is due on Monday at 10:00). The
// console never redoes that arithmetic: it shows the due time, and counts down the real time
// left until it.

/** Where a wait stands: before its warning, between warning and due time, or late. */
export type SlaState = "ok" | "warn" | "late" | "none";

/** The state of a wait at `now`, given its warning and due times (ISO strings or null). */
export function slaState(now: number, warnAt: string | null, dueAt: string | null): SlaState {
  if (!dueAt) return "none";
  const due = Date.parse(dueAt);
  if (now >= due) return "late";
  if (warnAt && now >= Date.parse(warnAt)) return "warn";
  return "ok";
}

/**
 * The time left until `dueAt` (negative: how late), as an agent reads it: `45s`, `12:03`
 * (minutes:seconds under an hour), `3 h 05 m`, `2 d 4 h`; a late one starts with `-`.
 */
export function countdown(now: number, dueAt: string): string {
  const ms = Date.parse(dueAt) - now;
  const sign = ms < 0 ? "-" : "";
  const total = Math.floor(Math.abs(ms) / 1000);
  const d = Math.floor(total / 86400);
  const h = Math.floor((total % 86400) / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  if (d > 0) return `${sign}${d} d ${h} h`;
  if (h > 0) return `${sign}${h} h ${String(m).padStart(2, "0")} m`;
  if (m > 0) return `${sign}${m}:${String(s).padStart(2, "0")}`;
  return `${sign}${s}s`;
}

/** `2026-03-02 09:05` in `zone` (the agent's, by default), for a table cell. */
export function local(iso: string, zone?: string): string {
  const parts = new Intl.DateTimeFormat("en-CA", {
    timeZone: zone,
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    hourCycle: "h23",
  }).formatToParts(new Date(iso));
  const get = (t: string) => parts.find((p) => p.type === t)?.value ?? "";
  return `${get("year")}-${get("month")}-${get("day")} ${get("hour")}:${get("minute")}`;
}

/** `14:05` when `iso` is today in `zone`, else `Tue 3 Mar 14:05`: a due time at a glance. */
export function short(iso: string, now: number, zone?: string): string {
  const day = (t: number) =>
    new Intl.DateTimeFormat("en-CA", { timeZone: zone, dateStyle: "short" }).format(new Date(t));
  const t = Date.parse(iso);
  const time = new Intl.DateTimeFormat("en-GB", {
    timeZone: zone,
    hour: "2-digit",
    minute: "2-digit",
    hourCycle: "h23",
  }).format(new Date(t));
  if (day(t) === day(now)) return time;
  const date = new Intl.DateTimeFormat("en-GB", {
    timeZone: zone,
    weekday: "short",
    day: "numeric",
    month: "short",
  }).format(new Date(t));
  return `${date} ${time}`;
}

/** The UTC instant, for a tooltip: `2026-03-02T15:05:00Z`. */
export function utc(iso: string): string {
  return new Date(iso).toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** A duration in seconds as `45 s`, `12 min`, `3.5 h`, `2.0 d`. */
export function duration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "–";
  const s = Math.abs(seconds);
  if (s < 60) return `${Math.round(seconds)} s`;
  if (s < 3600) return `${Math.round(seconds / 60)} min`;
  if (s < 86400) return `${(seconds / 3600).toFixed(1)} h`;
  return `${(seconds / 86400).toFixed(1)} d`;
}
