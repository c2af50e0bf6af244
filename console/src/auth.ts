// Signing in: under `switchboard serve` with SWITCHBOARD_API_TOKEN, the agent types the token
// once per browser session; deployed, Cognito's hosted sign-in with PKCE (authorization code,
// no client secret in the page), its access token kept for the session only.

import { type Auth, session } from "./api";

const VERIFIER = "switchboard.pkce";

function base64url(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** A PKCE verifier and its S256 challenge (RFC 7636). */
export async function pkce(): Promise<{ verifier: string; challenge: string }> {
  const verifier = base64url(crypto.getRandomValues(new Uint8Array(32)));
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  return { verifier, challenge: base64url(new Uint8Array(digest)) };
}

function redirectUri(): string {
  return `${location.origin}/`;
}

/** Sends the browser to the hosted sign-in. */
export async function signIn(auth: Extract<Auth, { mode: "cognito" }>): Promise<void> {
  const { verifier, challenge } = await pkce();
  sessionStorage.setItem(VERIFIER, verifier);
  const q = new URLSearchParams({
    response_type: "code",
    client_id: auth.clientId,
    redirect_uri: redirectUri(),
    scope: "openid email profile",
    code_challenge_method: "S256",
    code_challenge: challenge,
  });
  location.assign(`https://${auth.domain}/oauth2/authorize?${q}`);
}

/** After the hosted sign-in: trades `?code=` for tokens, then cleans the address bar. */
export async function finishSignIn(auth: Auth): Promise<void> {
  if (auth.mode !== "cognito") return;
  const code = new URLSearchParams(location.search).get("code");
  const verifier = sessionStorage.getItem(VERIFIER);
  if (!code || !verifier) return;
  const res = await fetch(`https://${auth.domain}/oauth2/token`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "authorization_code",
      client_id: auth.clientId,
      code,
      redirect_uri: redirectUri(),
      code_verifier: verifier,
    }),
  });
  sessionStorage.removeItem(VERIFIER);
  if (res.ok) {
    const tokens = (await res.json()) as { access_token?: string };
    if (tokens.access_token) session.setToken(tokens.access_token);
  }
  history.replaceState(null, "", location.pathname + location.hash);
}

export function signOut(auth: Auth): void {
  session.setToken(null);
  if (auth.mode === "cognito") {
    const q = new URLSearchParams({ client_id: auth.clientId, logout_uri: redirectUri() });
    location.assign(`https://${auth.domain}/logout?${q}`);
  } else {
    location.reload();
  }
}
