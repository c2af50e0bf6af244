// The agent API, as the console calls it: the base path and the way to sign in come from the
// page (the server that serves it says, in <meta> tags), the agent's token stays in the
// browser session, and every error carries the server's reason.

export type Auth =
  | { mode: "none" }
  | { mode: "token" }
  | { mode: "cognito"; domain: string; clientId: string };

function meta(name: string): string | null {
  return document.querySelector(`meta[name="${name}"]`)?.getAttribute("content") ?? null;
}

/** What the page says about where the API is and how to sign in. */
export function pageConfig(): { base: string; auth: Auth } {
  const base = meta("switchboard-api") ?? "/api";
  const mode = meta("switchboard-auth") ?? "none";
  if (mode === "cognito") {
    return {
      base,
      auth: {
        mode,
        domain: meta("switchboard-cognito-domain") ?? "",
        clientId: meta("switchboard-cognito-client") ?? "",
      },
    };
  }
  return { base, auth: mode === "token" ? { mode: "token" } : { mode: "none" } };
}

const TOKEN = "switchboard.token";
const AGENT = "switchboard.agent";

export const session = {
  token: () => sessionStorage.getItem(TOKEN),
  setToken: (t: string | null) =>
    t ? sessionStorage.setItem(TOKEN, t) : sessionStorage.removeItem(TOKEN),
  agent: () => localStorage.getItem(AGENT),
  setAgent: (a: string) => localStorage.setItem(AGENT, a),
};

export class ApiError extends Error {
  constructor(
    public status: number,
    message: string,
  ) {
    super(message);
  }
}

/** Raised when the API wants the agent to sign in (401). */
export class SignInNeeded extends ApiError {}

export interface Reason {
  signal: string;
  weight: number;
  detail?: string | null;
}

export interface Priority {
  priority: "P1" | "P2" | "P3" | "P4";
  score: number;
  topic: string;
  team: string;
  reasons: Reason[];
  prioritized_at: string;
}

export interface Conversation {
  id: string;
  channel: string;
  account_id: string;
  customer_id: string;
  customer_provider_id: string;
  customer_name: string | null;
  preview: string | null;
  first_at: string;
  last_at: string;
  last_inbound_at: string | null;
  last_outbound_at: string | null;
  waiting_since: string | null;
  answered_at: string | null;
  first_response_seconds: number | null;
  due_at: string | null;
  warn_at: string | null;
  priority: Priority | null;
  sla_breaches: number;
  status: "waiting" | "answered" | "resolved";
  case: number;
  resolved_at: string | null;
  resolved_by: string | null;
  first_contact_resolution: boolean | null;
  assignee: string | null;
}

export interface RecordView {
  record: "message" | "event";
  key: string;
  conversation_id: string;
  provider_message_id: string;
  channel: string;
  kind: string;
  direction: "inbound" | "outbound";
  sent_at: string;
  text?: string | null;
  attachments?: { kind: string; filename?: string; mime_type?: string }[];
  reply_to?: string | null;
  public?: boolean;
  event?: unknown;
  status?: string | null;
  status_at?: string | null;
}

export interface Customer {
  id: string;
  identities: {
    customer_id: string;
    channel: string;
    provider_user_id: string;
    display_name?: string;
    identifiers?: Identifier[];
  }[];
  tier?: string | null;
  links?: CustomerLink[];
}

export interface Identifier {
  kind: "email" | "phone" | "whatsapp_user" | "handle";
  value: string;
}

export interface Sighting {
  identity: string;
  channel: string;
  at: string;
}

/** A customer merged into this one: by an agent (no evidence) or automatically. */
export interface CustomerLink {
  customer_id: string;
  at: string;
  evidence?: { identifier: Identifier; seen: Sighting; matched: Sighting };
}

export interface Page<T> {
  items: T[];
  next: string | null;
}

export class Api {
  constructor(
    private base: string,
    private auth: Auth,
  ) {}

  private headers(extra?: Record<string, string>): Record<string, string> {
    const h: Record<string, string> = { ...extra };
    const token = session.token();
    if (token && this.auth.mode !== "none") h["authorization"] = `Bearer ${token}`;
    const agent = session.agent();
    if (agent && this.auth.mode !== "cognito") h["x-switchboard-agent"] = agent;
    return h;
  }

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const init: RequestInit = {
      method,
      headers: this.headers(body === undefined ? {} : { "content-type": "application/json" }),
    };
    if (body !== undefined) init.body = JSON.stringify(body);
    const res = await fetch(this.base + path, init);
    const text = await res.text();
    const json = text ? safeJson(text) : null;
    if (res.status === 401) throw new SignInNeeded(401, errorOf(json) ?? "sign in");
    if (!res.ok) throw new ApiError(res.status, errorOf(json) ?? `${res.status}`);
    return json as T;
  }

  get<T>(path: string) {
    return this.request<T>("GET", path);
  }

  post<T>(path: string, body?: unknown) {
    return this.request<T>("POST", path, body ?? {});
  }

  /** The figures as CSV, for a download. */
  async csv(path: string): Promise<Blob> {
    const res = await fetch(this.base + path, { headers: this.headers({ accept: "text/csv" }) });
    if (res.status === 401) throw new SignInNeeded(401, "sign in");
    if (!res.ok) throw new ApiError(res.status, `${res.status}`);
    return res.blob();
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

function errorOf(json: unknown): string | null {
  if (json && typeof json === "object" && "error" in json) {
    const e = (json as { error: unknown }).error;
    return typeof e === "string" ? e : null;
  }
  return null;
}

/** `WhatsApp`, `Messenger`, … for a channel name. */
export function channelName(channel: string): string {
  return (
    {
      whatsapp: "WhatsApp",
      messenger: "Messenger",
      instagram: "Instagram",
      facebook_feed: "Facebook",
      telegram: "Telegram",
      x: "X",
      email: "E-mail",
      web: "Web",
    } as Record<string, string>
  )[channel] ?? channel;
}
