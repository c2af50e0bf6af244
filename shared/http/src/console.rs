//! The web console: the page and assets of `console/` (Preact and uPlot, built by
//! `npm run build` into `console/dist`, committed and checked against a fresh build in CI),
//! embedded in the binary: no build step at run time, no CDN. Served at `/` by
//! `switchboard serve` and by the agent-api function.
//!
//! The page learns where the API is and how to sign in from `<meta>` tags this module writes
//! into it ([`ConsoleConfig`]). Every answer carries a strict Content-Security-Policy (scripts,
//! styles and calls from this origin only, and the sign-in domain when there is one), and an
//! `ETag`: a browser revalidates and gets 304 while the binary is the same.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};
use std::sync::Arc;

const INDEX: &str = include_str!("../../../console/dist/index.html");
const SCRIPT: &[u8] = include_bytes!("../../../console/dist/assets/console.js");
const STYLE: &[u8] = include_bytes!("../../../console/dist/assets/console.css");

/// How the console's agents sign in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsoleAuth {
    /// Nobody signs in (`serve` on loopback without `SWITCHBOARD_API_TOKEN`).
    None,
    /// The agent types the API token once per browser session (`SWITCHBOARD_API_TOKEN`).
    Token,
    /// Cognito's hosted sign-in with PKCE (deployed).
    Cognito {
        /// The user pool's domain (`<prefix>.auth.<region>.amazoncognito.com`).
        domain: String,
        /// The app client's id.
        client_id: String,
    },
}

/// What the page is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleConfig {
    /// The base path of the agent API the page calls (`/api`).
    pub api_base: String,
    /// How agents sign in.
    pub auth: ConsoleAuth,
}

struct Asset {
    body: Vec<u8>,
    content_type: &'static str,
    etag: String,
}

impl Asset {
    fn new(body: Vec<u8>, content_type: &'static str) -> Self {
        let etag = format!("\"{}\"", hex::encode(&Sha256::digest(&body)[..12]));
        Self {
            body,
            content_type,
            etag,
        }
    }
}

struct Console {
    index: Asset,
    script: Asset,
    style: Asset,
    csp: HeaderValue,
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The page with `config` in its `<meta>` tags.
pub fn page(config: &ConsoleConfig) -> String {
    let auth = match &config.auth {
        ConsoleAuth::None => r#"<meta name="switchboard-auth" content="none" />"#.to_owned(),
        ConsoleAuth::Token => r#"<meta name="switchboard-auth" content="token" />"#.to_owned(),
        ConsoleAuth::Cognito { domain, client_id } => format!(
            "<meta name=\"switchboard-auth\" content=\"cognito\" />\n    \
             <meta name=\"switchboard-cognito-domain\" content=\"{}\" />\n    \
             <meta name=\"switchboard-cognito-client\" content=\"{}\" />",
            escape(domain),
            escape(client_id)
        ),
    };
    INDEX
        .replace(
            r#"<meta name="switchboard-api" content="/api" />"#,
            &format!(
                r#"<meta name="switchboard-api" content="{}" />"#,
                escape(&config.api_base)
            ),
        )
        .replace(r#"<meta name="switchboard-auth" content="none" />"#, &auth)
}

fn csp(config: &ConsoleConfig) -> HeaderValue {
    let sign_in = match &config.auth {
        ConsoleAuth::Cognito { domain, .. } => format!(" https://{domain}"),
        _ => String::new(),
    };
    let policy = format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'{sign_in}; form-action 'self'{sign_in}; base-uri 'none'; \
         frame-ancestors 'none'"
    );
    HeaderValue::from_str(&policy)
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"))
}

/// The console's routes: `GET /` (the page), `GET /assets/console.js`, `GET /assets/console.css`.
pub fn console_router(config: ConsoleConfig) -> Router {
    let console = Arc::new(Console {
        index: Asset::new(page(&config).into_bytes(), "text/html; charset=utf-8"),
        script: Asset::new(SCRIPT.to_vec(), "text/javascript; charset=utf-8"),
        style: Asset::new(STYLE.to_vec(), "text/css; charset=utf-8"),
        csp: csp(&config),
    });
    Router::new()
        .route("/", get(index))
        .route("/index.html", get(index))
        .route("/assets/console.js", get(script))
        .route("/assets/console.css", get(style))
        .with_state(console)
}

async fn index(State(c): State<Arc<Console>>, headers: HeaderMap) -> Response {
    serve(&c, &c.index, &headers)
}

async fn script(State(c): State<Arc<Console>>, headers: HeaderMap) -> Response {
    serve(&c, &c.script, &headers)
}

async fn style(State(c): State<Arc<Console>>, headers: HeaderMap) -> Response {
    serve(&c, &c.style, &headers)
}

fn serve(c: &Console, asset: &Asset, request: &HeaderMap) -> Response {
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == asset.etag));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(header::CONTENT_TYPE, asset.content_type)],
            asset.body.clone(),
        )
            .into_response()
    };
    let h = response.headers_mut();
    if let Ok(etag) = HeaderValue::from_str(&asset.etag) {
        h.insert(header::ETAG, etag);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::CONTENT_SECURITY_POLICY, c.csp.clone());
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

/// The bundle's size, for the benchmarks: script and stylesheet, in bytes.
pub fn bundle_bytes() -> (usize, usize) {
    (SCRIPT.len(), STYLE.len())
}
