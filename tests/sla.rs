//! SLA reminders on both backends: scheduled when a wait is timed, moved with its level,
//! cancelled when it ends, none left behind; when they fire, events in order, a breach raising
//! the priority once, nothing for a wait that ended. On moto, the schedules themselves: `at()`
//! times, names, target.

use chrono::{Duration, Utc};
use serde_json::{Value, json};

use switchboard_core::consume::ConsumeError;
use switchboard_core::ids::ConversationId;
use switchboard_core::model::{Conversation, Webhook};
use switchboard_core::priority::PriorityConfig;
use switchboard_core::remind::Fired;
use switchboard_core::sla::{Reminder, ReminderKind, SlaPolicy, policy};
use switchboard_tests::payloads::messenger_text as messenger;
use switchboard_tests::{Backend, call, get_all, signed_to};

switchboard_tests::contract!(
    reminders_follow_the_wait_and_none_are_left_behind,
    fired_reminders_warn_then_breach_once_and_a_late_answer_keeps_the_breach,
    a_reminder_for_an_answered_wait_does_nothing,
    an_agent_tool_answer_ends_the_wait_and_cancels_its_reminders,
    a_reminder_that_fires_before_its_clock_is_written_waits_for_it,
);

/// The shipped policy with every team on a 24/7 clock.
fn always_policy() -> SlaPolicy {
    SlaPolicy::parse(&policy::DEFAULT_TOML.replace("default = \"office\"", "default = \"always\""))
        .unwrap()
}

async fn post(app: &axum::Router, body: Vec<u8>) {
    let (status, answer) = call(app, signed_to(Webhook::Facebook, body)).await;
    assert_eq!(status, 200, "{answer:?}");
}

async fn conversation(backend: &Backend, customer: &str) -> Conversation {
    let app = backend.app(None);
    let view: Value = get_all(&app, "/api/conversations", 50)
        .await
        .into_iter()
        .find(|c| c["customer_provider_id"] == customer)
        .unwrap_or_else(|| panic!("no conversation of {customer}"));
    let id = ConversationId::from_stored(view["id"].as_str().unwrap());
    backend
        .conversations
        .conversation(&id)
        .await
        .unwrap()
        .unwrap()
}

fn sorted(mut names: Vec<String>) -> Vec<String> {
    names.sort();
    names
}

/// The reminders a conversation's state calls for: its clock's and its window's.
fn expected(c: &Conversation) -> Vec<String> {
    let mut names = Vec::new();
    if let Some(clock) = c.current_sla() {
        names.extend(Reminder::of_clock(&c.id, clock).map(|r| r.name));
    }
    names.extend(c.window_reminder.clone());
    sorted(names)
}

async fn reminders_follow_the_wait_and_none_are_left_behind(backend: Backend) {
    let app = backend.app(None);
    let prioritizer = backend.prioritizer_timed(PriorityConfig::default_config(), always_policy());
    let now = Utc::now().timestamp_millis();
    let customer = "PSID-REMIND";

    post(&app, messenger(customer, "r1", now, "hola", false)).await;
    backend.prioritize_all(&prioritizer).await;
    let c = conversation(&backend, customer).await;
    let first = expected(&c);
    assert_eq!(first.len(), 3, "warning, breach, window: {c:?}");
    assert_eq!(backend.pending.names().await, first);
    assert_eq!(
        sorted(c.current_sla().unwrap().reminders.clone()),
        sorted(
            first[..]
                .iter()
                .filter(|n| !n.starts_with("sb-window"))
                .cloned()
                .collect()
        )
    );

    // Creating the same reminders again creates nothing.
    let clock = c.current_sla().unwrap().clone();
    backend
        .timers
        .schedule(&Reminder::of_clock(&c.id, &clock))
        .await
        .unwrap();
    assert_eq!(backend.pending.names().await, first);

    // The level rises: the clock moves (new warning and breach, the old ones deleted), and the
    // window moves with the customer's latest message.
    post(
        &app,
        messenger(
            customer,
            "r2",
            now + 1000,
            "me cobraron dos veces, es urgente",
            false,
        ),
    )
    .await;
    backend.prioritize_all(&prioritizer).await;
    let c = conversation(&backend, customer).await;
    let second = expected(&c);
    assert_eq!(backend.pending.names().await, second);
    assert!(
        second.iter().all(|n| !first.contains(n)),
        "all moved: {first:?} -> {second:?}"
    );

    // A calmer message: the clock stays, only the window moves.
    post(&app, messenger(customer, "r3", now + 2000, "hola?", false)).await;
    backend.prioritize_all(&prioritizer).await;
    let c = conversation(&backend, customer).await;
    let third = expected(&c);
    assert_eq!(backend.pending.names().await, third);
    assert_eq!(
        third.iter().filter(|n| second.contains(n)).count(),
        2,
        "the clock's two stay"
    );

    // The page answers: nothing is left.
    post(
        &app,
        messenger(customer, "r4", now + 3000, "lo revisamos", true),
    )
    .await;
    backend.prioritize_all(&prioritizer).await;
    assert!(backend.pending.names().await.is_empty());
    let c = conversation(&backend, customer).await;
    assert!(c.window_reminder.is_none() && c.current_sla().is_none());

    // Cancelling what is gone is fine.
    backend.timers.cancel(&third).await.unwrap();
}

async fn fired_reminders_warn_then_breach_once_and_a_late_answer_keeps_the_breach(
    backend: Backend,
) {
    let app = backend.app(None);
    let prioritizer = backend.prioritizer_timed(PriorityConfig::default_config(), always_policy());
    let handler = backend.reminder_handler();
    let now = Utc::now().timestamp_millis();
    let customer = "PSID-LATE";
    post(
        &app,
        messenger(customer, "l1", now, "hola, una consulta", false),
    )
    .await;
    backend.prioritize_all(&prioritizer).await;
    let c = conversation(&backend, customer).await;
    let level = c.priority.as_ref().unwrap().priority;
    let [warning, breach] = Reminder::of_clock(&c.id, c.current_sla().unwrap());

    assert_eq!(
        handler.handle(&warning).await.unwrap(),
        Fired::Published(ReminderKind::Warning)
    );
    assert_eq!(
        handler.handle(&breach).await.unwrap(),
        Fired::Published(ReminderKind::Breach)
    );
    // Delivered again (at least once): the breach counts once, raises once, publishes once.
    assert_eq!(handler.handle(&breach).await.unwrap(), Fired::Repeat);
    let c = conversation(&backend, customer).await;
    assert_eq!(c.sla_breaches, 1);
    assert_eq!(c.priority.as_ref().unwrap().priority, level.raised());
    assert!(c.current_sla().unwrap().breached_at.is_some());

    let events: Vec<Value> = backend
        .published
        .published()
        .await
        .into_iter()
        .filter(|e| e["type"].as_str().is_some_and(|t| t.starts_with("sla.")))
        .collect();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["sla.warning", "sla.breached"]);
    let ids: std::collections::BTreeSet<&str> =
        events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 2, "a repeat carries the same id: {events:?}");
    for e in &events {
        let d = &e["detail"];
        assert_eq!(d["conversation_id"], c.id.as_str());
        assert_eq!(d["team"], "customer-care");
        assert_eq!(d["priority"], level.as_str());
        let mut fields: Vec<&str> = d.as_object().unwrap().keys().map(String::as_str).collect();
        fields.retain(|f| !["event_id", "version", "time"].contains(f));
        fields.sort_unstable();
        assert_eq!(
            fields,
            switchboard_tests::documented_fields(e["type"].as_str().unwrap())
        );
    }
    assert!(
        events[0]["detail"]["late_seconds"].as_i64().unwrap() < 0,
        "a warning comes before"
    );

    // The window closing on a conversation nobody answered: its own event.
    let c = conversation(&backend, customer).await;
    let last = c.last_inbound_at.unwrap();
    let window = Reminder::new(
        ReminderKind::WindowClosing,
        &c.id,
        last,
        last + Duration::hours(24),
        last + Duration::hours(22),
    );
    assert_eq!(
        Some(&window.name),
        c.window_reminder.as_ref(),
        "the one scheduled"
    );
    assert_eq!(
        handler.handle(&window).await.unwrap(),
        Fired::Published(ReminderKind::WindowClosing)
    );
    let closing: Vec<Value> = backend
        .published
        .published()
        .await
        .into_iter()
        .filter(|e| e["type"] == "window.closing")
        .collect();
    assert_eq!(closing.len(), 1);
    assert_eq!(
        closing[0]["detail"]["due_at"],
        json!((last + Duration::hours(24)).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
    );

    // A late answer: the response time is recorded, the breach stays.
    let late = now + 5 * 60_000;
    post(
        &app,
        messenger(customer, "l2", late, "perdón la demora", true),
    )
    .await;
    backend.prioritize_all(&prioritizer).await;
    let c = conversation(&backend, customer).await;
    assert_eq!(c.last_response_seconds, Some(300));
    assert_eq!(c.first_response_seconds, Some(300));
    assert_eq!(c.sla_breaches, 1);
    assert!(backend.pending.names().await.is_empty());
}

async fn a_reminder_for_an_answered_wait_does_nothing(backend: Backend) {
    let app = backend.app(None);
    let prioritizer = backend.prioritizer_timed(PriorityConfig::default_config(), always_policy());
    let handler = backend.reminder_handler();
    let now = Utc::now().timestamp_millis();
    let customer = "PSID-ANSWERED";
    post(&app, messenger(customer, "a1", now, "hola", false)).await;
    backend.prioritize_all(&prioritizer).await;
    let c = conversation(&backend, customer).await;
    let reminders = Reminder::of_clock(&c.id, c.current_sla().unwrap());
    let window = c.window_reminder.clone().unwrap();
    post(
        &app,
        messenger(customer, "a2", now + 1000, "hola! en qué te ayudo?", true),
    )
    .await;
    backend.prioritize_all(&prioritizer).await;
    let before = backend.published.published().await.len();
    for r in &reminders {
        assert_eq!(handler.handle(r).await.unwrap(), Fired::Stale);
    }
    let last_inbound = c.last_inbound_at.unwrap();
    let closing = Reminder::new(
        ReminderKind::WindowClosing,
        &c.id,
        last_inbound,
        last_inbound + Duration::hours(24),
        last_inbound + Duration::hours(22),
    );
    assert_eq!(closing.name, window);
    assert_eq!(handler.handle(&closing).await.unwrap(), Fired::Stale);
    assert_eq!(
        backend.published.published().await.len(),
        before,
        "no event"
    );
    let after = conversation(&backend, customer).await;
    assert_eq!(after.sla_breaches, 0);
}

/// The schedules themselves, on moto: one `at()` schedule per reminder, in the group, at the
/// reminder's time in UTC, sending the reminder to the reminder queue, deleted after it runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_carry_the_at_time_the_name_and_the_target() {
    let moto = switchboard_tests::moto().await;
    let sdk = moto.sdk_config().await;
    let names = switchboard_aws::resources::ResourceNames::with_prefix(&format!(
        "sla{}",
        std::process::id()
    ));
    let scheduler = aws_sdk_scheduler::Client::new(&sdk);
    let provisioned = switchboard_aws::resources::provision_reminders(
        &aws_sdk_sqs::Client::new(&sdk),
        &scheduler,
        &names,
    )
    .await
    .unwrap();
    let timers = switchboard_aws::SchedulerReminders::new(
        scheduler.clone(),
        switchboard_aws::scheduler::ScheduleTarget {
            group: provisioned.group.clone(),
            queue_arn: provisioned.queue_arn.clone(),
            role_arn: provisioned.role_arn.clone(),
            dead_letter_arn: Some(provisioned.schedule_dlq_arn.clone()),
        },
        std::sync::Arc::new(switchboard_core::clock::SystemClock),
    );
    use switchboard_core::ports::ReminderScheduler;
    let id = ConversationId::from_stored("cv_schedules");
    let since = Utc::now();
    let due = since + Duration::hours(1);
    let breach = Reminder::new(ReminderKind::Breach, &id, since, due, due);
    let soon = Reminder::new(
        ReminderKind::Warning,
        &id,
        since,
        due,
        since + Duration::seconds(5),
    );
    timers
        .schedule(&[breach.clone(), soon.clone()])
        .await
        .unwrap();
    timers
        .schedule(std::slice::from_ref(&breach))
        .await
        .unwrap();

    let got = scheduler
        .get_schedule()
        .group_name(&provisioned.group)
        .name(&breach.name)
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.schedule_expression(),
        Some(switchboard_aws::scheduler::at_expression(due).as_str())
    );
    assert_eq!(got.schedule_expression_timezone(), Some("UTC"));
    assert_eq!(
        got.action_after_completion().map(|a| a.as_str()),
        Some("DELETE")
    );
    let target = got.target().unwrap();
    assert_eq!(target.arn(), provisioned.queue_arn);
    assert_eq!(target.role_arn(), provisioned.role_arn);
    // A reminder Scheduler cannot deliver goes to the schedules' dead-letter queue.
    assert_eq!(
        target.dead_letter_config().and_then(|d| d.arn()),
        Some(provisioned.schedule_dlq_arn.as_str())
    );
    let sent: Reminder = serde_json::from_str(target.input().unwrap()).unwrap();
    assert_eq!(sent, breach);
    // A reminder due within a minute is set a minute from now (Scheduler's resolution).
    let got = scheduler
        .get_schedule()
        .group_name(&provisioned.group)
        .name(&soon.name)
        .send()
        .await
        .unwrap();
    let expression = got.schedule_expression().unwrap().to_owned();
    assert!(
        expression > switchboard_aws::scheduler::at_expression(since + Duration::seconds(55)),
        "{expression}"
    );

    let listed = switchboard_tests::SchedulerGroup {
        client: scheduler.clone(),
        group: provisioned.group.clone(),
    };
    use switchboard_tests::PendingReminders;
    assert_eq!(
        listed.names().await,
        sorted(vec![breach.name.clone(), soon.name.clone()]),
        "created twice: one"
    );
    timers
        .cancel(&[
            breach.name.clone(),
            soon.name.clone(),
            "sb-never-created".into(),
        ])
        .await
        .unwrap();
    assert!(listed.names().await.is_empty());
}

async fn an_agent_tool_answer_ends_the_wait_and_cancels_its_reminders(backend: Backend) {
    let app = backend.app(None);
    let prioritizer = backend.prioritizer_timed(PriorityConfig::default_config(), always_policy());
    let now = Utc::now();
    let customer = "PSID-TOOL";
    post(
        &app,
        messenger(customer, "t1", now.timestamp_millis(), "hola", false),
    )
    .await;
    backend.prioritize_all(&prioritizer).await;
    let c = conversation(&backend, customer).await;
    assert_eq!(backend.pending.names().await.len(), 3);
    let answer = |id: &str, body: &str| {
        http::Request::post(format!("/api/conversations/{id}/answered"))
            .header("content-type", "application/json")
            .body(axum::body::Body::from(body.to_owned()))
            .unwrap()
    };
    let at = (now + Duration::seconds(90)).to_rfc3339();
    let (status, body) = call(&app, answer(c.id.as_str(), &format!(r#"{{"at": "{at}"}}"#))).await;
    assert_eq!(status, 200, "{body:?}");
    let view: Value = serde_json::from_slice(&body).unwrap();
    assert!(
        view["waiting_since"].is_null() && view["due_at"].is_null(),
        "{view}"
    );
    assert_eq!(view["last_response_seconds"], 90);
    assert_eq!(view["first_response_seconds"], 90);
    assert!(
        backend.pending.names().await.is_empty(),
        "its reminders are cancelled"
    );
    // Again, or without a body (now): nothing changes; the first answer stays.
    let (status, _) = call(&app, answer(c.id.as_str(), "")).await;
    assert_eq!(status, 200);
    assert_eq!(
        conversation(&backend, customer)
            .await
            .first_response_seconds,
        Some(90)
    );
    // Unknown conversation, bad body.
    assert_eq!(call(&app, answer("cv_nope", "")).await.0, 404);
    assert_eq!(
        call(&app, answer(c.id.as_str(), r#"{"at": "yesterday"}"#))
            .await
            .0,
        400
    );
    assert_eq!(
        call(&app, answer(c.id.as_str(), r#"{"when": 1}"#)).await.0,
        400
    );
}

/// The prioritizer schedules a wait's reminders before it writes the conversation's clock (so
/// that a retry never loses them); a reminder already due fires at once, in between. It used
/// to find no clock and be dropped as stale: at saturation, tens of warnings and breaches were
/// never published. It is retried now, and fires once the clock is there; past
/// `CLOCK_GRACE` of its instant (a prioritization that never comes) it is stale.
async fn a_reminder_that_fires_before_its_clock_is_written_waits_for_it(backend: Backend) {
    let app = backend.app(None);
    let prioritizer = backend.prioritizer_timed(PriorityConfig::default_config(), always_policy());
    let handler = backend.reminder_handler();
    // Sent ten minutes ago: its reminders are due, and within the grace.
    let sent = Utc::now() - Duration::minutes(10);
    let customer = "PSID-LAGGING";
    post(
        &app,
        messenger(customer, "lag1", sent.timestamp_millis(), "hola", false),
    )
    .await;
    // Stored, waiting, not prioritized yet: the state a reminder fired in between finds.
    let c = conversation(&backend, customer).await;
    let since = c.waiting_since.unwrap();
    assert!(c.current_sla().is_none());
    let early = |kind| Reminder::new(kind, &c.id, since, since + Duration::minutes(30), since);
    for kind in [ReminderKind::Warning, ReminderKind::Breach] {
        assert!(
            matches!(
                handler.handle(&early(kind)).await,
                Err(ConsumeError::NotYet(_))
            ),
            "{kind:?} before its clock: retried, not dropped"
        );
    }
    // Past the grace, the same is stale.
    let forgotten = Reminder::new(
        ReminderKind::Warning,
        &c.id,
        since,
        since,
        Utc::now() - switchboard_core::remind::CLOCK_GRACE - Duration::minutes(1),
    );
    assert_eq!(handler.handle(&forgotten).await.unwrap(), Fired::Stale);
    assert!(backend.published.published().await.is_empty());

    backend.prioritize_all(&prioritizer).await;
    let c = conversation(&backend, customer).await;
    let clock = c.current_sla().expect("the clock is written").clone();
    for reminder in Reminder::of_clock(&c.id, &clock) {
        assert_eq!(
            handler.handle(&reminder).await.unwrap(),
            Fired::Published(reminder.kind)
        );
    }
    let types: Vec<Value> = backend
        .published
        .published()
        .await
        .into_iter()
        .map(|e| e["type"].clone())
        .filter(|t| t != "message.received" && t != "conversation.prioritized")
        .collect();
    assert_eq!(types, [json!("sla.warning"), json!("sla.breached")]);
}
