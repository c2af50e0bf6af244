// The console: the queue (the landing page), a conversation, the figures. Hash routes
// (`#/`, `#/c/<id>`, `#/figures`) so the server serves one page whatever the path.

import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { SignInNeeded, session } from "./api";
import { finishSignIn, signIn, signOut } from "./auth";
import { api, config } from "./client";
import { ConversationPage } from "./conversation";
import { FiguresPage } from "./figures";
import { QueuePage } from "./queue";
import "./styles.css";

function route(): { page: "queue" | "conversation" | "figures"; id?: string } {
  const h = location.hash.replace(/^#/, "");
  const m = h.match(/^\/c\/([^/?]+)/);
  if (m) return { page: "conversation", id: decodeURIComponent(m[1]) };
  if (h.startsWith("/figures")) return { page: "figures" };
  return { page: "queue" };
}

function SignIn({ onDone }: { onDone: () => void }) {
  const [token, setToken] = useState("");
  const [agent, setAgent] = useState(session.agent() ?? "");
  if (config.auth.mode === "cognito") {
    const auth = config.auth;
    return (
      <main class="signin">
        <h1>switchboard</h1>
        <p>Sign in to work the queue.</p>
        <button type="button" onClick={() => signIn(auth)}>
          Sign in
        </button>
      </main>
    );
  }
  return (
    <main class="signin">
      <h1>switchboard</h1>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          session.setToken(token.trim());
          if (agent.trim()) session.setAgent(agent.trim());
          onDone();
        }}
      >
        <label>
          API token
          <input
            type="password"
            autoComplete="current-password"
            value={token}
            onInput={(e) => setToken(e.currentTarget.value)}
            required
          />
        </label>
        <label>
          Your name (recorded on replies and resolutions)
          <input value={agent} onInput={(e) => setAgent(e.currentTarget.value)} />
        </label>
        <button type="submit">Sign in</button>
      </form>
    </main>
  );
}

function App() {
  const [where, setWhere] = useState(route());
  const [needSignIn, setNeedSignIn] = useState(false);
  const [me, setMe] = useState<string | null>(null);
  const [ready, setReady] = useState(false);

  useEffect(() => {
    const onHash = () => setWhere(route());
    addEventListener("hashchange", onHash);
    finishSignIn(config.auth).finally(() => setReady(true));
    return () => removeEventListener("hashchange", onHash);
  }, []);

  useEffect(() => {
    if (!ready) return;
    api
      .get<{ agent: string }>("/me")
      .then((r) => {
        setMe(r.agent);
        setNeedSignIn(false);
      })
      .catch((e) => {
        if (e instanceof SignInNeeded) setNeedSignIn(true);
      });
  }, [ready, needSignIn]);

  if (!ready) return null;
  if (needSignIn) return <SignIn onDone={() => setNeedSignIn(false)} />;
  const onAuthError = (e: unknown) => {
    if (e instanceof SignInNeeded) setNeedSignIn(true);
  };

  return (
    <>
      <header class="top">
        <a class="brand" href="#/">
          switchboard
        </a>
        <nav aria-label="Pages">
          <a href="#/" aria-current={where.page === "queue" ? "page" : undefined}>
            Queue
          </a>
          <a href="#/figures" aria-current={where.page === "figures" ? "page" : undefined}>
            Figures
          </a>
        </nav>
        <div class="who">
          {config.auth.mode === "cognito" ? (
            <>
              <span>{me}</span>
              <button type="button" class="link" onClick={() => signOut(config.auth)}>
                Sign out
              </button>
            </>
          ) : (
            <label>
              You are
              <input
                class="agent"
                value={session.agent() ?? ""}
                placeholder="local"
                onChange={(e) => {
                  session.setAgent(e.currentTarget.value.trim());
                  setMe(e.currentTarget.value.trim() || "local");
                }}
              />
            </label>
          )}
        </div>
      </header>
      {where.page === "queue" && <QueuePage me={me} onAuthError={onAuthError} />}
      {where.page === "conversation" && where.id && (
        <ConversationPage id={where.id} me={me} onAuthError={onAuthError} />
      )}
      {where.page === "figures" && <FiguresPage onAuthError={onAuthError} />}
    </>
  );
}

render(<App />, document.getElementById("app")!);
