//! The agent API's OpenAPI 3.1 document, derived from the handlers' annotations and the
//! types they answer with: `switchboard openapi` prints it, `docs/openapi.json` is its
//! committed copy (a test keeps the two the same), and CI checks the running API against it.
//!
//! Only with the `openapi` feature: the Lambda functions do not carry it.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Required, ResponseBuilder};

use crate::error::PROBLEM_JSON;
use utoipa::{IntoParams, Modify, OpenApi};

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "switchboard agent API",
        description = "Conversations, queues, customers, cases, replies and figures of a switchboard \
                       deployment. Every error is an RFC 9457 problem (`application/problem+json`) \
                       with a stable `code`. Under `switchboard serve` every route takes \
                       `Authorization: Bearer <SWITCHBOARD_API_TOKEN>`; deployed, API Gateway's \
                       IAM authorizer signs the caller in.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        super::list_conversations,
        super::get_conversation,
        super::list_messages,
        super::list_queue,
        super::list_teams,
        super::mark_answered,
        super::resolve,
        super::assign,
        super::reply,
        super::me,
        super::find_customers,
        super::get_customer,
        super::customer_timeline,
        super::link_customers,
        super::unlink_customers,
        super::set_tier,
        super::erase_customer,
        super::list_events,
        super::metrics,
        super::list_quarantine,
        super::get_delivery,
    ),
    modifiers(&BearerToken, &EveryOperation),
    security(("api_token" = [])),
)]
pub struct ApiDoc;

/// The agent an action is recorded for, as a request names it under `switchboard serve`.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct AgentHeader {
    /// The acting agent under `switchboard serve` (default `local`): 1 to 128 visible
    /// characters. Deployed, the signed-in caller, and this header is not read.
    #[param(
        rename = "X-Switchboard-Agent",
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    agent: Option<String>,
}

/// Where a page of a listing starts and how many items it holds.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct PageParams {
    /// The `next` of the previous page.
    cursor: Option<String>,
    /// Items per page (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
}

/// The bearer token `switchboard serve` asks for (`SWITCHBOARD_API_TOKEN`).
struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.responses.insert(
            "SignIn".to_owned(),
            ResponseBuilder::new()
                .description("No valid API token (`Authorization: Bearer <token>`), or no caller identity to record.")
                .content(
                    PROBLEM_JSON,
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("Problem")))
                        .build(),
                )
                .build()
                .into(),
        );
        components.add_security_scheme(
            "api_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "`SWITCHBOARD_API_TOKEN` under `switchboard serve` (printed at its first start).",
                    ))
                    .build(),
            ),
        );
    }
}

/// What holds for every operation: any may answer 401 (the token or the caller's identity),
/// and `answered` takes no body at all as well as its JSON.
struct EveryOperation;

impl Modify for EveryOperation {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
            ];
            for operation in operations.into_iter().flatten() {
                operation.responses.responses.insert(
                    "401".to_owned(),
                    Ref::new("#/components/responses/SignIn").into(),
                );
                if operation.operation_id.as_deref() == Some("mark_answered")
                    && let Some(RefOr::T(body)) = &mut operation.request_body
                {
                    body.required = Some(Required::False);
                }
            }
        }
    }
}

/// The document as pretty JSON, with the crate's version, ending in a newline.
pub fn json() -> String {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    let mut text = doc.to_pretty_json().unwrap_or_default();
    text.push('\n');
    text
}
