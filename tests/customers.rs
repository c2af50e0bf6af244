//! Customers across channels, on both backends: one timeline per person, in provider-time
//! order, and links that merge two identities.

use serde_json::Value;

use switchboard_core::model::Webhook;
use switchboard_tests::deliver as post;
use switchboard_tests::{Backend, Captured, call, get_all, get_json, payloads};

switchboard_tests::contract!(
    a_link_gives_one_timeline_across_whatsapp_and_instagram,
    linking_to_itself_to_an_unknown_customer_or_without_a_body_is_a_4xx,
    an_unknown_api_route_is_a_404_with_a_reason_and_an_oversized_body_a_413,
    every_api_error_is_a_problem_in_switchboards_words_and_logs_no_query_value,
);

fn whatsapp(id: &str, ts: i64, text: &str) -> Vec<u8> {
    payloads::whatsapp_text_named("PN", "5511988887777", "Ana", id, ts, text)
}

fn instagram(mid: &str, ms: i64, text: &str) -> Vec<u8> {
    payloads::instagram_text("IGSID-ANA", "IGACCOUNT", mid, ms, text)
}

async fn customer_of(app: &axum::Router, provider_id: &str) -> String {
    get_all(app, "/api/conversations", 50)
        .await
        .into_iter()
        .find(|c| c["customer_provider_id"] == provider_id)
        .map(|c| c["customer_id"].as_str().unwrap().to_owned())
        .unwrap_or_else(|| panic!("no conversation of {provider_id}"))
}

async fn link(app: &axum::Router, into: &str, body: &str) -> (u16, Value) {
    let request = http::Request::post(format!("/api/customers/{into}/link"))
        .header("content-type", "application/json")
        .body(axum::body::Body::from(body.to_owned()))
        .unwrap();
    let (status, answer) = call(app, request).await;
    (
        status.as_u16(),
        serde_json::from_slice(&answer).unwrap_or(Value::Null),
    )
}

async fn timeline(app: &axum::Router, customer: &str) -> Vec<(String, String)> {
    get_all(app, &format!("/api/customers/{customer}/timeline"), 2)
        .await
        .iter()
        .map(|r| {
            (
                r["channel"].as_str().unwrap().to_owned(),
                r["text"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

async fn a_link_gives_one_timeline_across_whatsapp_and_instagram(backend: Backend) {
    let app = backend.app(None);
    post(
        &app,
        Webhook::Whatsapp,
        whatsapp("wamid.a1", 1_700_000_000, "me cobraron dos veces"),
    )
    .await;
    post(
        &app,
        Webhook::Instagram,
        instagram("ig.a2", 1_700_000_100_000, "hola? nadie responde"),
    )
    .await;
    post(
        &app,
        Webhook::Whatsapp,
        whatsapp("wamid.a3", 1_700_000_200, "es urgente"),
    )
    .await;
    let wa = customer_of(&app, "5511988887777").await;
    let ig = customer_of(&app, "IGSID-ANA").await;
    assert_ne!(wa, ig);
    assert_eq!(timeline(&app, &wa).await.len(), 2);
    assert_eq!(timeline(&app, &ig).await.len(), 1);

    let (status, merged) = link(&app, &wa, &format!(r#"{{"customer_id": "{ig}"}}"#)).await;
    assert_eq!(status, 200, "{merged}");
    assert_eq!(merged["id"], wa.as_str());
    let channels: Vec<&str> = merged["identities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["channel"].as_str().unwrap())
        .collect();
    assert_eq!(channels, ["whatsapp", "instagram"]);

    let expected = vec![
        ("whatsapp".to_owned(), "me cobraron dos veces".to_owned()),
        ("instagram".to_owned(), "hola? nadie responde".to_owned()),
        ("whatsapp".to_owned(), "es urgente".to_owned()),
    ];
    assert_eq!(timeline(&app, &wa).await, expected);
    // The merged id answers the same customer and the same timeline.
    let (status, via_ig) = get_json(&app, &format!("/api/customers/{ig}")).await;
    assert_eq!(status, 200);
    assert_eq!(via_ig["id"], wa.as_str());
    assert_eq!(timeline(&app, &ig).await, expected);

    // Later messages of either identity join the one timeline.
    post(
        &app,
        Webhook::Instagram,
        instagram("ig.a4", 1_700_000_300_000, "sigo esperando"),
    )
    .await;
    let now = timeline(&app, &wa).await;
    assert_eq!(now.len(), 4);
    assert_eq!(
        now[3],
        ("instagram".to_owned(), "sigo esperando".to_owned())
    );

    // Linking again changes nothing.
    let (status, again) = link(&app, &wa, &format!(r#"{{"customer_id": "{ig}"}}"#)).await;
    assert_eq!(status, 200);
    assert_eq!(again, merged);
    let (status, reverse) = link(&app, &ig, &format!(r#"{{"customer_id": "{wa}"}}"#)).await;
    assert_eq!(status, 200);
    assert_eq!(reverse["id"], wa.as_str());
    assert_eq!(timeline(&app, &wa).await.len(), 4);
}

async fn linking_to_itself_to_an_unknown_customer_or_without_a_body_is_a_4xx(backend: Backend) {
    let app = backend.app(None);
    post(
        &app,
        Webhook::Whatsapp,
        whatsapp("wamid.b1", 1_700_000_000, "hola"),
    )
    .await;
    let wa = customer_of(&app, "5511988887777").await;
    let (status, error) = link(&app, &wa, &format!(r#"{{"customer_id": "{wa}"}}"#)).await;
    assert_eq!(status, 400);
    assert!(
        error["error"].as_str().unwrap().contains("itself"),
        "{error}"
    );
    let (status, error) = link(&app, &wa, r#"{"customer_id": "cu_nobody"}"#).await;
    assert_eq!(status, 404, "{error}");
    let (status, _) = link(&app, "cu_nobody", &format!(r#"{{"customer_id": "{wa}"}}"#)).await;
    assert_eq!(status, 404);
    let (status, error) = link(&app, &wa, "not json").await;
    assert_eq!(status, 400);
    assert!(
        error["error"].as_str().unwrap().contains("customer_id"),
        "{error}"
    );
    let (status, customer) = get_json(&app, &format!("/api/customers/{wa}")).await;
    assert_eq!(status, 200);
    assert_eq!(
        customer["identities"].as_array().unwrap().len(),
        1,
        "nothing changed"
    );
    let (status, _) = get_json(&app, "/api/customers/cu_nobody/timeline").await;
    assert_eq!(status, 404);
}

/// Beyond the routes: an unknown `/api` path answers 404 with the API's error body, and a body
/// over the API's limit 413 (not 400), whether its length is declared or not.
async fn an_unknown_api_route_is_a_404_with_a_reason_and_an_oversized_body_a_413(backend: Backend) {
    let app = backend.app(None);
    for path in ["/api/nothing-here", "/api/customers/cu_x/nothing", "/api"] {
        let (status, body) = get_json(&app, path).await;
        assert_eq!(status, 404, "{path}");
        assert!(
            body["error"].as_str().unwrap().contains("not found"),
            "{path}: {body}"
        );
    }
    let big = vec![b' '; 3 * 1024 * 1024];
    for path in [
        "/api/customers/cu_x/link",
        "/api/conversations/cv_x/reply",
        "/api/conversations/cv_x/answered",
    ] {
        let request = http::Request::post(path)
            .header("content-type", "application/json")
            .header("content-length", big.len())
            .body(axum::body::Body::from(big.clone()))
            .unwrap();
        let (status, body) = call(&app, request).await;
        assert_eq!(status, 413, "{path}: {body:?}");
        // Without a declared length (a chunked upload), the same.
        let request = http::Request::post(path)
            .header("content-type", "application/json")
            .body(axum::body::Body::from(big.clone()))
            .unwrap();
        let (status, _) = call(&app, request).await;
        assert_eq!(status, 413, "{path}, chunked");
    }
}

/// One error shape for the whole API (RFC 9457 problem details), also for what is refused
/// before a handler runs; reasons in switchboard's words, not the framework's; and the log of
/// a refusal without the values the client sent.
async fn every_api_error_is_a_problem_in_switchboards_words_and_logs_no_query_value(
    backend: Backend,
) {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer({
            let logs = logs.clone();
            move || logs.clone()
        })
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let app = backend.app(None);
    let json = |body: &str| axum::body::Body::from(body.to_owned());
    let cases: Vec<(http::Request<axum::body::Body>, u16, &str, &str)> = vec![
        (
            http::Request::get("/api/conversations?limit=5&limit=6")
                .body(json(""))
                .unwrap(),
            400,
            "bad_request",
            "duplicate field `limit`",
        ),
        (
            http::Request::get("/api/customers?phone=5550199-secret-value")
                .body(json(""))
                .unwrap(),
            400,
            "bad_request",
            "phone",
        ),
        (
            http::Request::post("/api/queue").body(json("")).unwrap(),
            405,
            "method_not_allowed",
            "does not take POST",
        ),
        (
            http::Request::get("/api/no-such-route")
                .body(json(""))
                .unwrap(),
            404,
            "not_found",
            "not found",
        ),
        (
            http::Request::post("/api/customers/cu_x/link")
                .header("content-type", "application/json")
                .body(json(r#"{"customer": 1}"#))
                .unwrap(),
            400,
            "bad_request",
            "missing field `customer_id`",
        ),
        (
            http::Request::post("/api/customers/cu_x/link")
                .header("content-type", "text/plain")
                .body(json(r#"{"customer_id": "cu_y"}"#))
                .unwrap(),
            400,
            "bad_request",
            "Content-Type: application/json",
        ),
        (
            http::Request::post("/api/customers/cu_x/link")
                .header("content-type", "application/json")
                .body(json(&" ".repeat(100 * 1024)))
                .unwrap(),
            413,
            "too_large",
            "larger than",
        ),
    ];
    for (request, status, code, words) in cases {
        let what = format!("{} {}", request.method(), request.uri());
        let response = tower::ServiceExt::oneshot(app.clone(), request)
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), status, "{what}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{what}"
        );
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let problem: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(problem["type"], "about:blank", "{what}: {problem}");
        assert_eq!(problem["status"], status, "{what}: {problem}");
        assert_eq!(
            problem["title"],
            http::StatusCode::from_u16(status)
                .unwrap()
                .canonical_reason()
                .unwrap(),
            "{what}"
        );
        assert_eq!(problem["code"], code, "{what}: {problem}");
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.contains(words), "{what}: {detail}");
        assert_eq!(problem["error"], detail, "{what}: the earlier field stays");
        for framework in ["Failed to", "deserialize", "Json", "extract"] {
            assert!(!detail.contains(framework), "{what}: {detail}");
        }
    }
    let logs = logs.text();
    assert!(
        logs.contains("request refused"),
        "refusals are logged: {logs}"
    );
    for sent in ["5550199", "secret-value", "cu_y"] {
        assert!(!logs.contains(sent), "{sent} in the log:\n{logs}");
    }
}

/// DynamoDB deletes by TTL on its own (moto does not): what is checked is the TTL each write
/// leaves on the customer's item, one retention period ahead, renewed by a new message when
/// it is due within a day and not rewritten otherwise.
#[tokio::test]
async fn on_dynamodb_a_customer_expires_with_the_retention_and_a_new_message_renews_it() {
    use aws_sdk_dynamodb::types::AttributeValue;
    let backend = switchboard_tests::aws().await;
    let app = backend.app(None);
    let dynamodb =
        aws_sdk_dynamodb::Client::new(&switchboard_tests::moto().await.sdk_config().await);
    let table = backend.env[switchboard_aws::settings::TABLE].clone();
    let now = || chrono::Utc::now().timestamp();
    let day = 86_400;

    post(
        &app,
        Webhook::Whatsapp,
        whatsapp("wamid.T1", 1_700_000_000, "hola"),
    )
    .await;
    let customer = customer_of(&app, "5511988887777").await;
    let key = std::collections::HashMap::from([
        ("pk".to_owned(), AttributeValue::S(format!("U#{customer}"))),
        ("sk".to_owned(), AttributeValue::S("CUSTOMER".to_owned())),
    ]);
    let ttl = || async {
        let item = dynamodb
            .get_item()
            .table_name(&table)
            .set_key(Some(key.clone()))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item
            .expect("the customer's item");
        item[switchboard_aws::resources::TTL_ATTRIBUTE]
            .as_n()
            .unwrap()
            .parse::<i64>()
            .unwrap()
    };
    let set_ttl = |value: i64| {
        dynamodb
            .update_item()
            .table_name(&table)
            .set_key(Some(key.clone()))
            .update_expression("SET #t = :t")
            .expression_attribute_names("#t", switchboard_aws::resources::TTL_ATTRIBUTE)
            .expression_attribute_values(":t", AttributeValue::N(value.to_string()))
            .send()
    };
    let first = ttl().await;
    assert!(
        (first - (now() + 30 * day)).abs() < 120,
        "30 days ahead: {first}"
    );

    // Not due within a day: a new message leaves it as it is (no write for it).
    let kept = now() + 29 * day + day / 2;
    set_ttl(kept).await.unwrap();
    post(
        &app,
        Webhook::Whatsapp,
        whatsapp("wamid.T2", 1_700_000_100, "otra"),
    )
    .await;
    assert_eq!(ttl().await, kept);

    // About to expire: the next message moves it a retention period ahead.
    set_ttl(now() + 3600).await.unwrap();
    post(
        &app,
        Webhook::Whatsapp,
        whatsapp("wamid.T3", 1_700_000_200, "y otra"),
    )
    .await;
    let renewed = ttl().await;
    assert!(
        (renewed - (now() + 30 * day)).abs() < 120,
        "renewed: {renewed}"
    );
}
