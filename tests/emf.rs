//! The operational counts as CloudWatch reads them: Embedded Metric Format lines, parsed back.
//! Alone in its test binary: it installs the process's tracing subscriber.

use switchboard_tests::{Captured, embedded};

/// The operational counts of a delivery, a repeat, a forged and an unreadable one, and of the
/// prioritizer's batch, as CloudWatch would read them: each EMF line parsed back into its
/// namespace, dimensions and values, the values summed per metric.
#[tokio::test]
async fn operational_counts_are_embedded_metric_format_lines_cloudwatch_can_read() {
    use std::collections::BTreeMap;
    use switchboard_tests::payloads::{whatsapp_status, whatsapp_text};
    use switchboard_tests::{call, post, signed};
    use tracing_subscriber::layer::SubscriberExt;

    let out = Captured::default();
    let subscriber = tracing_subscriber::registry().with(switchboard_lambda::emf::EmfLayer::new(
        "switchboard-test",
        out.clone(),
    ));
    // The process's one subscriber: this file holds this test alone, so nothing else writes,
    // and no callsite's interest was cached before it was set.
    tracing::subscriber::set_global_default(subscriber).expect("the first subscriber");

    let backend = embedded().await;
    let app = backend.app(None);
    let two = {
        let mut body: serde_json::Value = serde_json::from_slice(&whatsapp_text(
            "PN-EMF",
            "5511",
            "wamid.E1",
            1_790_000_000,
            "hola",
        ))
        .unwrap();
        let status: serde_json::Value = serde_json::from_slice(&whatsapp_status(
            "PN-EMF",
            "5511",
            "wamid.NEVER-SEEN",
            "delivered",
            1_790_000_001,
        ))
        .unwrap();
        body["entry"][0]["changes"][0]["value"]["statuses"] =
            status["entry"][0]["changes"][0]["value"]["statuses"].clone();
        body.to_string().into_bytes()
    };
    for (request, want) in [
        (signed(two.clone()), 200),
        (signed(two.clone()), 200),
        (post(two.clone(), Some("sha256=00")), 401),
        (signed(&b"not json"[..]), 200),
    ] {
        assert_eq!(call(&app, request).await.0.as_u16(), want);
    }
    backend.prioritize_all(&backend.prioritizer()).await;

    let text = out.text();
    let mut sums: BTreeMap<(String, String), i64> = BTreeMap::new();
    let mut lines = 0;
    for line in text.lines() {
        lines += 1;
        let doc: serde_json::Value = serde_json::from_str(line).expect("one JSON document a line");
        let spec = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(spec["Namespace"], "switchboard-test");
        assert!(doc["_aws"]["Timestamp"].as_i64().unwrap() > 1_700_000_000_000);
        let dims: Vec<&str> = spec["Dimensions"][0]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_str().unwrap())
            .collect();
        for d in &dims {
            assert!(doc[*d].is_string(), "dimension {d} is on the line: {line}");
        }
        let key = dims
            .iter()
            .map(|d| format!("{d}={}", doc[*d].as_str().unwrap()))
            .collect::<Vec<_>>()
            .join(",");
        for metric in spec["Metrics"].as_array().unwrap() {
            let name = metric["Name"].as_str().unwrap();
            let unit = if name.ends_with("_seconds") {
                "Seconds"
            } else if name.ends_with("_ms") {
                "Milliseconds"
            } else {
                "Count"
            };
            assert_eq!(metric["Unit"], unit, "{name}");
            assert!(
                switchboard_core::telemetry::METRICS.contains(&name),
                "{name} is not in telemetry::METRICS"
            );
            let value = doc[name].as_i64().expect("the value is on the line");
            *sums.entry((key.clone(), name.to_owned())).or_default() += value;
        }
    }
    assert!(lines >= 6, "{text}");
    let sum = |key: &str, name: &str| sums.get(&(key.into(), name.into())).copied().unwrap_or(0);
    let wa = "webhook=whatsapp";
    assert_eq!(sum(wa, "deliveries"), 4);
    assert_eq!(sum(wa, "signature_failures"), 1);
    assert_eq!(sum(wa, "quarantined"), 1);
    assert_eq!(sum(wa, "failures"), 0);
    // The first delivery's message and status, then the same two again.
    assert_eq!(sum(wa, "records"), 4);
    assert_eq!(sum(wa, "duplicates"), 2);
    let account = "webhook=whatsapp,account=PN-EMF";
    assert_eq!(sum(account, "events"), 2);
    assert_eq!(sum(account, "refers_to_unknown"), 2);
    let prioritized: i64 = sums
        .iter()
        .filter(|((k, n), _)| k.starts_with("priority=P") && n == "prioritized")
        .map(|(_, v)| v)
        .sum();
    assert_eq!(prioritized, 1, "{sums:?}");
    // The status of a message switchboard never saw answered the waiting customer (a reply
    // another tool sent), one second after the message.
    assert_eq!(sum("channel=whatsapp", "answered"), 1, "{sums:?}");
    assert_eq!(sum("channel=whatsapp", "response_seconds"), 1);
    assert_eq!(sum("queue=intake", "batch_failures"), 0);
    assert!(sum("queue=intake", "received") >= 2);
    // No personal data in any line: no phone number, no message text.
    assert!(!text.contains("5511") && !text.contains("hola"), "{text}");
}
