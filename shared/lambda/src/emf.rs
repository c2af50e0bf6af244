//! CloudWatch Embedded Metric Format: every metric event of `switchboard_core::telemetry`
//! becomes one JSON line on standard output, which CloudWatch Logs turns into metrics (no
//! agent, no `PutMetricData` call, nothing on the request's path but a write to the log).
//!
//! A line, for a delivery to the WhatsApp webhook:
//!
//! ```json
//! {"_aws":{"Timestamp":1764921600000,"CloudWatchMetrics":[{"Namespace":"switchboard",
//!   "Dimensions":[["webhook"]],"Metrics":[{"Name":"deliveries","Unit":"Count"}, …]}]},
//!  "webhook":"whatsapp","deliveries":1,"records":3, …}
//! ```
//!
//! The event's string fields are its dimensions (one dimension set, all of them); its number
//! fields are the values, in `Milliseconds` when the name ends in `_ms`, `Seconds` in
//! `_seconds`, else `Count`.

use serde_json::{Map, Value, json};
use std::io::Write;
use std::sync::Mutex;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, Layer};

use switchboard_core::telemetry::TARGET;

/// The namespace of the metrics: `SWITCHBOARD_METRICS_NAMESPACE`, default `switchboard`.
pub const NAMESPACE_SETTING: &str = "SWITCHBOARD_METRICS_NAMESPACE";
/// The namespace when the setting is absent.
pub const DEFAULT_NAMESPACE: &str = "switchboard";

/// A layer writing an EMF line to `out` for each metric event (target
/// [`TARGET`]); every other event is left to the other layers.
pub struct EmfLayer<W> {
    namespace: String,
    out: Mutex<W>,
}

impl<W: Write> EmfLayer<W> {
    /// Lines in `namespace`, written to `out`.
    pub fn new(namespace: impl Into<String>, out: W) -> Self {
        Self {
            namespace: namespace.into(),
            out: Mutex::new(out),
        }
    }
}

#[derive(Default)]
struct Fields {
    dimensions: Map<String, Value>,
    values: Map<String, Value>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() != "message" {
            self.dimensions.insert(field.name().into(), value.into());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() != "message" {
            self.dimensions
                .insert(field.name().into(), format!("{value:?}").into());
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.values.insert(field.name().into(), value.into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.values.insert(field.name().into(), value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.values.insert(field.name().into(), json!(value));
    }
}

/// The EMF document of one metric event.
pub fn document(
    namespace: &str,
    timestamp_ms: i64,
    dimensions: &Map<String, Value>,
    values: &Map<String, Value>,
) -> Value {
    let metrics: Vec<Value> = values
        .keys()
        .map(|name| {
            let unit = if name.ends_with("_ms") {
                "Milliseconds"
            } else if name.ends_with("_seconds") {
                "Seconds"
            } else {
                "Count"
            };
            json!({"Name": name, "Unit": unit})
        })
        .collect();
    let mut doc = Map::new();
    doc.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [dimensions.keys().collect::<Vec<_>>()],
                "Metrics": metrics,
            }],
        }),
    );
    doc.extend(dimensions.clone());
    doc.extend(values.clone());
    Value::Object(doc)
}

impl<S, W> Layer<S> for EmfLayer<W>
where
    S: tracing::Subscriber,
    W: Write + Send + 'static,
{
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() != TARGET {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        if fields.values.is_empty() {
            return;
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let line = document(&self.namespace, now, &fields.dimensions, &fields.values);
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        // One write per line: CloudWatch Logs takes a line as one record.
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}
