// The figures of a range (GET /api/metrics): volume by channel (or team, or priority), first
// response time against a target, SLA attainment, complaints, first-contact resolution, the
// backlog now, and the CSV of the same buckets. Charts by uPlot; every chart has its numbers
// in the table below it.

import { useEffect, useRef, useState } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { channelName } from "./api";
import { api } from "./client";
import { duration } from "./time";

interface Dist {
  count: number;
  mean: number | null;
  p50: number | null;
  p90: number | null;
  p99: number | null;
  max: number | null;
}

interface Bucket {
  start?: string;
  messages_in: number;
  conversations_opened: number;
  public_in: number;
  complaints: number;
  answered: number;
  first_response_seconds: Dist;
  next_response_seconds: Dist;
  sla_met: number;
  sla_breached: number;
  sla_attainment: number | null;
  resolved: number;
  first_contact_resolved: number;
  fcr_rate: number | null;
  reopened: number;
}

interface Report {
  series: {
    key: Record<string, string | null>;
    buckets: Bucket[];
    totals: Bucket;
    waiting_now: number;
    oldest_wait_seconds: number | null;
  }[];
  totals: Bucket & { waiting_now: number; oldest_wait_seconds: number | null };
}

const COLORS = ["#1f6feb", "#d1242f", "#1a7f37", "#9a6700", "#8250df", "#bf3989"];

function Chart({
  title,
  xs,
  series,
  height = 220,
  percent = false,
}: {
  title: string;
  xs: number[];
  series: { label: string; values: (number | null)[]; dash?: boolean }[];
  height?: number;
  percent?: boolean;
}) {
  const el = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (!el.current) return;
    const width = Math.max(280, el.current.clientWidth);
    const plot = new uPlot(
      {
        width,
        height,
        series: [
          {},
          ...series.map((s, i) => ({
            label: s.label,
            stroke: COLORS[i % COLORS.length],
            width: 2,
            dash: s.dash ? [6, 4] : undefined,
            spanGaps: true,
          })),
        ],
        axes: [{}, { size: 60 }],
        scales: percent ? { y: { range: [0, 100] } } : { y: { range: (_u, _min, max) => [0, Math.max(1, max)] } },
        legend: { live: false },
      },
      [xs, ...series.map((s) => s.values)] as uPlot.AlignedData,
      el.current,
    );
    return () => plot.destroy();
  }, [xs, series, percent]);
  return (
    <figure class="chart">
      <figcaption>{title}</figcaption>
      <div ref={el} role="img" aria-label={title} />
    </figure>
  );
}

function isoDate(d: Date): string {
  return d.toISOString().slice(0, 10);
}

function keyName(key: Record<string, string | null>): string {
  const parts = Object.entries(key).map(([k, v]) =>
    k === "channel" && v ? channelName(v) : (v ?? "not prioritized"),
  );
  return parts.join(" · ") || "all";
}

const pct = (v: number | null) => (v === null ? "–" : `${Math.round(v * 100)} %`);

export function FiguresPage({ onAuthError }: { onAuthError: (e: unknown) => void }) {
  const today = new Date();
  const [from, setFrom] = useState(isoDate(new Date(today.getTime() - 6 * 86400_000)));
  const [to, setTo] = useState(isoDate(today));
  const [granularity, setGranularity] = useState("day");
  const [groupBy, setGroupBy] = useState("channel");
  const [target, setTarget] = useState(3600);
  const [grouped, setGrouped] = useState<Report | null>(null);
  const [all, setAll] = useState<Report | null>(null);
  const [error, setError] = useState<string | null>(null);

  const query = (group: boolean) => {
    const start = new Date(`${from}T00:00:00`);
    const end = new Date(new Date(`${to}T00:00:00`).getTime() + 86400_000);
    const q = new URLSearchParams({
      from: start.toISOString(),
      to: end.toISOString(),
      granularity,
    });
    if (group && groupBy !== "none") q.set("group_by", groupBy);
    return `/metrics?${q}`;
  };

  useEffect(() => {
    setError(null);
    Promise.all([api.get<Report>(query(true)), api.get<Report>(query(false))])
      .then(([g, a]) => {
        setGrouped(g);
        setAll(a);
      })
      .catch((e) => {
        onAuthError(e);
        setError(e instanceof Error ? e.message : String(e));
      });
  }, [from, to, granularity, groupBy]);

  const download = async () => {
    const blob = await api.csv(query(true));
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = `switchboard-${from}-${to}-${granularity}.csv`;
    a.click();
    URL.revokeObjectURL(a.href);
  };

  const overall = all?.series[0];
  const xs = overall?.buckets.map((b) => Date.parse(b.start!) / 1000) ?? [];
  const t = all?.totals;

  return (
    <main class="figures">
      <div class="bar">
        <h1>Figures</h1>
        <label>
          From
          <input type="date" value={from} onChange={(e) => setFrom(e.currentTarget.value)} />
        </label>
        <label>
          To
          <input type="date" value={to} onChange={(e) => setTo(e.currentTarget.value)} />
        </label>
        <label>
          By
          <select value={granularity} onChange={(e) => setGranularity(e.currentTarget.value)}>
            <option value="hour">hour</option>
            <option value="day">day</option>
            <option value="week">week</option>
          </select>
        </label>
        <label>
          Group
          <select value={groupBy} onChange={(e) => setGroupBy(e.currentTarget.value)}>
            <option value="channel">channel</option>
            <option value="team">team</option>
            <option value="priority">priority</option>
            <option value="topic">topic</option>
            <option value="none">none</option>
          </select>
        </label>
        <label>
          Target
          <select value={target} onChange={(e) => setTarget(Number(e.currentTarget.value))}>
            <option value={1800}>30 min</option>
            <option value={3600}>1 hour</option>
            <option value={14400}>4 hours</option>
          </select>
        </label>
        <button type="button" onClick={download}>
          Download CSV
        </button>
      </div>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {t && (
        <dl class="totals">
          <div>
            <dt>Messages in</dt>
            <dd data-figure="messages_in">{t.messages_in}</dd>
          </div>
          <div>
            <dt>Answered</dt>
            <dd data-figure="answered">{t.answered}</dd>
          </div>
          <div>
            <dt>First response p50 / p90</dt>
            <dd>
              {duration(t.first_response_seconds.p50)} / {duration(t.first_response_seconds.p90)}
            </dd>
          </div>
          <div>
            <dt>SLA attainment</dt>
            <dd>{pct(t.sla_attainment)}</dd>
          </div>
          <div>
            <dt>Complaints</dt>
            <dd>{t.complaints}</dd>
          </div>
          <div>
            <dt>First-contact resolution</dt>
            <dd>
              {pct(t.fcr_rate)} of {t.resolved}
            </dd>
          </div>
          <div>
            <dt>Waiting now</dt>
            <dd data-figure="waiting_now">
              {t.waiting_now}
              {t.oldest_wait_seconds !== null && ` (oldest ${duration(t.oldest_wait_seconds)})`}
            </dd>
          </div>
        </dl>
      )}
      {grouped && overall && (
        <div class="charts">
          <Chart
            title="Customer messages in"
            xs={xs}
            series={grouped.series.map((s) => ({
              label: keyName(s.key),
              values: s.buckets.map((b) => b.messages_in),
            }))}
          />
          <Chart
            title="First response (minutes), against the target"
            xs={xs}
            series={[
              {
                label: "p50",
                values: overall.buckets.map((b) =>
                  b.first_response_seconds.p50 === null ? null : b.first_response_seconds.p50 / 60,
                ),
              },
              {
                label: "p90",
                values: overall.buckets.map((b) =>
                  b.first_response_seconds.p90 === null ? null : b.first_response_seconds.p90 / 60,
                ),
              },
              { label: "target", values: xs.map(() => target / 60), dash: true },
            ]}
          />
          <Chart
            title="SLA attainment and first-contact resolution (%)"
            percent
            xs={xs}
            series={[
              {
                label: "SLA attainment",
                values: overall.buckets.map((b) =>
                  b.sla_attainment === null ? null : b.sla_attainment * 100,
                ),
              },
              {
                label: "first-contact resolution",
                values: overall.buckets.map((b) => (b.fcr_rate === null ? null : b.fcr_rate * 100)),
              },
            ]}
          />
          <Chart
            title="Complaints and public messages"
            xs={xs}
            series={[
              { label: "complaints", values: overall.buckets.map((b) => b.complaints) },
              { label: "public", values: overall.buckets.map((b) => b.public_in) },
            ]}
          />
        </div>
      )}
      {grouped && (
        <table class="breakdown">
          <caption>By {groupBy}, over the range; the backlog now</caption>
          <thead>
            <tr>
              <th scope="col">{groupBy}</th>
              <th scope="col">Messages</th>
              <th scope="col">Answered</th>
              <th scope="col">First response p50</th>
              <th scope="col">SLA</th>
              <th scope="col">Complaints</th>
              <th scope="col">FCR</th>
              <th scope="col">Waiting now</th>
            </tr>
          </thead>
          <tbody>
            {grouped.series.map((s) => (
              <tr>
                <th scope="row">{keyName(s.key)}</th>
                <td>{s.totals.messages_in}</td>
                <td>{s.totals.answered}</td>
                <td>{duration(s.totals.first_response_seconds.p50)}</td>
                <td>{pct(s.totals.sla_attainment)}</td>
                <td>{s.totals.complaints}</td>
                <td>{pct(s.totals.fcr_rate)}</td>
                <td>{s.waiting_now}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </main>
  );
}
