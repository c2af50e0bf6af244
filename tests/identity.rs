//! One customer across channels without an agent linking by hand, on both backends.
//!
//! * The seed's scenario: an e-mail from ana@example.com eight days ago, unanswered; a web
//!   chat message today from a visitor whose `customer.email` is hers. Her timeline holds
//!   both, the web conversation's history signal names the open e-mail case ("on e-mail
//!   since …"), and it ranks above the same words from a stranger.
//! * Links by phone (a WhatsApp number and a web form's `customer.phone`) and by WhatsApp's
//!   contacts (a number and a business-scoped user id), each with its evidence; a shared
//!   display name links nothing; undoing a link splits the timeline back and is not redone
//!   from the same evidence; lookups by e-mail, phone and handle.
//! * The setting that turns automatic linking off, and an identifier too many carry.

use chrono::{Duration, Utc};
use serde_json::{Value, json};

use switchboard_tests::{
    Backend, STANDARD_SECRET, TELEGRAM_TOKEN, call, conversation_of, email_post, get_json,
    signed_to, standard_post, telegram_post,
};

switchboard_tests::contract!(
    an_unanswered_email_raises_the_same_customers_web_chat,
    phone_numbers_and_whatsapp_contacts_link_and_an_undo_is_not_redone,
    automatic_linking_can_be_turned_off_and_a_shared_address_links_no_one,
);

const WORDS: &str = "hello, I am waiting for my refund";

fn now() -> i64 {
    Utc::now().timestamp()
}

/// A web chat message (Standard Webhooks) from visitor `visitor` with `customer` fields.
async fn web(app: &axum::Router, visitor: &str, customer: Value, id: &str) {
    let mut who = json!({"id": visitor});
    who.as_object_mut()
        .unwrap()
        .extend(customer.as_object().unwrap().clone());
    let body = json!({
        "type": "message.received",
        "account": "acme-site",
        "customer": who,
        "message": {"id": id, "text": WORDS, "sent_at": Utc::now().to_rfc3339()},
    });
    let bytes = body.to_string().into_bytes();
    let (status, answer) = call(app, standard_post(&bytes, id, STANDARD_SECRET, now())).await;
    assert_eq!(status, 200, "{answer:?}");
}

/// A WhatsApp text; `from` and `contact` as the delivery gives them.
async fn whatsapp(app: &axum::Router, from: Value, contact: Value, id: &str) {
    let mut message = json!({"id": id, "timestamp": now().to_string(), "type": "text",
                             "text": {"body": WORDS}});
    message
        .as_object_mut()
        .unwrap()
        .extend(from.as_object().unwrap().clone());
    let body = json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [{
        "field": "messages",
        "value": {"messaging_product": "whatsapp",
                  "metadata": {"display_phone_number": "15550001111", "phone_number_id": "PN"},
                  "contacts": [contact], "messages": [message]}}]}]});
    let (status, answer) = call(
        app,
        signed_to(
            switchboard_core::model::Webhook::Whatsapp,
            body.to_string().into_bytes(),
        ),
    )
    .await;
    assert_eq!(status, 200, "{answer:?}");
}

async fn customer(app: &axum::Router, id: &str) -> Value {
    let (status, customer) = get_json(app, &format!("/api/customers/{id}")).await;
    assert_eq!(status, 200, "{customer}");
    customer
}

async fn timeline_ids(app: &axum::Router, id: &str) -> Vec<String> {
    let (status, page) = get_json(app, &format!("/api/customers/{id}/timeline?limit=500")).await;
    assert_eq!(status, 200, "{page}");
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["provider_message_id"].as_str().map(str::to_owned))
        .collect()
}

async fn find(app: &axum::Router, query: &str) -> Vec<String> {
    let (status, found) = get_json(app, &format!("/api/customers?{query}")).await;
    assert_eq!(status, 200, "{query}: {found}");
    found["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect()
}

fn level(conversation: &Value) -> String {
    conversation["priority"]["priority"]
        .as_str()
        .unwrap_or_else(|| panic!("prioritized: {conversation}"))
        .to_owned()
}

async fn an_unanswered_email_raises_the_same_customers_web_chat(backend: Backend) {
    let app = backend.app(None);
    let prioritizer = backend.prioritizer();
    let sent = (Utc::now() - Duration::days(8)).to_rfc2822();
    let mail = format!(
        "From: Ana Ruiz <Ana@Example.com>\r\nTo: Acme Support <support@acme.example>\r\n\
         Subject: My refund\r\nDate: {sent}\r\nMessage-ID: <refund-8-days@example.com>\r\n\
         Content-Type: text/plain; charset=UTF-8\r\n\r\nWhere is my refund for order 4411?\r\n"
    );
    let (status, answer) = call(&app, email_post(mail.as_bytes(), "msg_ana_mail")).await;
    assert_eq!(status, 200, "{answer:?}");
    backend.prioritize_all(&prioritizer).await;

    web(
        &app,
        "v-stranger",
        json!({"email": "bruno@example.com", "name": "Ana"}),
        "w-stranger",
    )
    .await;
    web(
        &app,
        "v-ana",
        json!({"email": "ANA@example.com", "name": "Ana"}),
        "w-ana",
    )
    .await;
    backend.prioritize_all(&prioritizer).await;

    let email = conversation_of(&app, "ana@example.com").await;
    assert!(
        email["waiting_since"].is_string(),
        "the e-mail still waits: {email}"
    );
    let ana = conversation_of(&app, "web:v-ana").await;
    let stranger = conversation_of(&app, "web:v-stranger").await;

    // One customer: the e-mail identity, first seen, survives; the web visitor is linked in.
    let merged = customer(&app, ana["customer_id"].as_str().unwrap()).await;
    assert_eq!(merged["id"], email["customer_id"], "{merged}");
    let channels: Vec<&str> = merged["identities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["channel"].as_str().unwrap())
        .collect();
    assert_eq!(channels, ["email", "web"], "{merged}");
    let evidence = &merged["links"][0]["evidence"];
    assert_eq!(merged["links"][0]["customer_id"], ana["customer_id"]);
    assert_eq!(
        evidence["identifier"],
        json!({"kind": "email", "value": "ana@example.com"})
    );
    assert_eq!(evidence["seen"]["channel"], "web");
    assert_eq!(evidence["matched"]["channel"], "email");
    assert_eq!(
        timeline_ids(&app, merged["id"].as_str().unwrap()).await,
        ["refund-8-days@example.com", "w-ana"]
    );

    // The history signal names the open e-mail case; the stranger has none.
    let open = ana["priority"]["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["signal"] == "open_elsewhere")
        .unwrap_or_else(|| panic!("open_elsewhere: {ana}"));
    let detail = open["detail"].as_str().unwrap();
    let since = email["waiting_since"].as_str().unwrap();
    assert!(
        detail.starts_with("on e-mail since ") && detail.contains(&since[..10]),
        "{detail} / {since}"
    );
    assert!(
        level(&ana) < level(&stranger),
        "{} against {}",
        level(&ana),
        level(&stranger)
    );
    // A shared display name linked nothing.
    assert_eq!(
        customer(&app, stranger["customer_id"].as_str().unwrap()).await["id"],
        stranger["customer_id"]
    );

    // Found by her address, however written; nobody by another.
    assert_eq!(
        find(&app, "email=Ana%40EXAMPLE.com").await,
        [merged["id"].as_str().unwrap()]
    );
    assert!(find(&app, "email=nobody%40example.com").await.is_empty());
    let (status, error) = get_json(&app, "/api/customers?email=not-an-address").await;
    assert_eq!(status, 400, "{error}");
    let (status, error) = get_json(&app, "/api/customers").await;
    assert_eq!(status, 400, "{error}");
    assert!(
        error["error"].as_str().unwrap().contains("email"),
        "{error}"
    );
}

async fn phone_numbers_and_whatsapp_contacts_link_and_an_undo_is_not_redone(backend: Backend) {
    let app = backend.app(None);
    let prioritizer = backend.prioritizer();
    // A number whose contact entry carries the business-scoped user id too.
    whatsapp(
        &app,
        json!({"from": "5511987650001"}),
        json!({"wa_id": "5511987650001", "user_id": "BR.1234567890", "profile": {"name": "Ana"}}),
        "wamid.number",
    )
    .await;
    backend.prioritize_all(&prioritizer).await;
    // The same person by user id only (the number hidden), and on a web form by phone.
    whatsapp(
        &app,
        json!({"from_user_id": "BR.1234567890"}),
        json!({"user_id": "BR.1234567890", "profile": {"name": "Ana"}}),
        "wamid.user",
    )
    .await;
    web(
        &app,
        "v-form",
        json!({"phone": "+55 11 98765-0001"}),
        "w-form",
    )
    .await;
    // A Telegram user with a handle, and someone else with the same name: never linked.
    let update = json!({"update_id": 1, "message": {"message_id": 7, "date": now(),
        "chat": {"id": 4242, "type": "private", "first_name": "Ana", "username": "Ana_B"},
        "from": {"id": 4242, "is_bot": false, "first_name": "Ana", "username": "Ana_B"},
        "text": WORDS}});
    let (status, _) = call(
        &app,
        telegram_post(update.to_string().as_bytes(), TELEGRAM_TOKEN),
    )
    .await;
    assert_eq!(status, 200);
    backend.prioritize_all(&prioritizer).await;

    let number = conversation_of(&app, "5511987650001").await["customer_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let user = conversation_of(&app, "BR.1234567890").await["customer_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let form = conversation_of(&app, "web:v-form").await["customer_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let telegram = conversation_of(&app, "4242").await["customer_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let ana = customer(&app, &form).await;
    assert_eq!(ana["id"], number, "the number, first seen, survives: {ana}");
    assert_eq!(customer(&app, &user).await["id"], number);
    let kinds: Vec<(&str, &str)> = ana["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["customer_id"].as_str().unwrap(),
                l["evidence"]["identifier"]["kind"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(
        kinds.contains(&(user.as_str(), "whatsapp_user")),
        "{kinds:?}"
    );
    assert!(kinds.contains(&(form.as_str(), "phone")), "{kinds:?}");
    assert_eq!(
        customer(&app, &telegram).await["id"],
        telegram,
        "a name is no evidence"
    );
    let mut all = timeline_ids(&app, &number).await;
    all.sort();
    assert_eq!(all, ["w-form", "wamid.number", "wamid.user"]);

    // Lookups by each identifier.
    assert_eq!(
        find(&app, "phone=%2B5511987650001").await,
        [number.as_str()]
    );
    assert_eq!(
        find(&app, "phone=%2B55%2011%2098765-0001").await,
        [number.as_str()]
    );
    assert_eq!(find(&app, "handle=%40ana_b").await, [telegram.as_str()]);
    let (status, error) = get_json(&app, "/api/customers?phone=11987650001").await;
    assert_eq!(status, 400, "a number without its country: {error}");

    // Undo the phone link: the form's visitor stands alone with its own timeline.
    let (status, split) = call(
        &app,
        http::Request::delete(format!("/api/customers/{number}/links/{form}"))
            .body(axum::body::Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{split:?}");
    let alone = customer(&app, &form).await;
    assert_eq!(alone["id"], form, "{alone}");
    assert_eq!(alone["identities"].as_array().unwrap().len(), 1, "{alone}");
    assert_eq!(timeline_ids(&app, &form).await, ["w-form"]);
    let mut rest = timeline_ids(&app, &number).await;
    rest.sort();
    assert_eq!(rest, ["wamid.number", "wamid.user"]);
    assert_eq!(
        customer(&app, &user).await["id"],
        number,
        "the other link stays"
    );

    // The same evidence again links nothing; both are found by the number.
    web(
        &app,
        "v-form",
        json!({"phone": "+5511987650001"}),
        "w-form-2",
    )
    .await;
    backend.prioritize_all(&prioritizer).await;
    assert_eq!(customer(&app, &form).await["id"], form);
    let mut found = find(&app, "phone=%2B5511987650001").await;
    found.sort();
    let mut expected = vec![number.clone(), form.clone()];
    expected.sort();
    assert_eq!(found, expected);

    // Undoing what is not linked is a 404; an agent's link can be undone too.
    let delete = |uri: String| {
        let app = app.clone();
        async move {
            call(
                &app,
                http::Request::delete(uri)
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .0
        }
    };
    assert_eq!(
        delete(format!("/api/customers/{number}/links/{form}")).await,
        404
    );
    let (status, _) = call(
        &app,
        http::Request::post(format!("/api/customers/{number}/link"))
            .header("content-type", "application/json")
            .body(axum::body::Body::from(
                json!({"customer_id": telegram}).to_string(),
            ))
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(customer(&app, &telegram).await["id"], number);
    assert_eq!(
        delete(format!("/api/customers/{number}/links/{telegram}")).await,
        200
    );
    assert_eq!(customer(&app, &telegram).await["id"], telegram);
    assert_eq!(timeline_ids(&app, &telegram).await, ["4242:7"]);
}

async fn automatic_linking_can_be_turned_off_and_a_shared_address_links_no_one(backend: Backend) {
    let app = backend.app(None);
    let off = backend.prioritizer().auto_link(false);
    web(&app, "v-1", json!({"email": "pat@example.com"}), "w-1").await;
    web(&app, "v-2", json!({"email": "pat@example.com"}), "w-2").await;
    backend.prioritize_all(&off).await;
    let one = conversation_of(&app, "web:v-1").await["customer_id"].clone();
    let two = conversation_of(&app, "web:v-2").await["customer_id"].clone();
    assert_eq!(customer(&app, one.as_str().unwrap()).await["id"], one);
    assert_eq!(customer(&app, two.as_str().unwrap()).await["id"], two);
    assert_eq!(
        find(&app, "email=pat%40example.com").await.len(),
        2,
        "still found"
    );

    // An address more than MAX_CARRIERS visitors give is a shared one: it links no one.
    let on = backend.prioritizer();
    let many = switchboard_core::resolve::MAX_CARRIERS + 1;
    for n in 0..many {
        web(
            &app,
            &format!("v-shared-{n}"),
            json!({"email": "info@shop.example"}),
            &format!("w-shared-{n}"),
        )
        .await;
        backend.prioritize_all(&on).await;
    }
    let last =
        conversation_of(&app, &format!("web:v-shared-{}", many - 1)).await["customer_id"].clone();
    assert_eq!(customer(&app, last.as_str().unwrap()).await["id"], last);
}
