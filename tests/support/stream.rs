//! What Lambda's DynamoDB event source mapping does for the `intake-forwarder`, on moto: reads
//! the outbox table's stream (the DynamoDB Streams API, JSON over HTTP; the SDK for Rust used
//! here has no client for it) and hands its records to the [`Forwarder`] as a stream event,
//! from where the last call left off; a record the forwarder names as failed is read again at
//! the next call, as the mapping retries it.

use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

use switchboard_aws::forwarder::{Forwarder, StreamEvent};

/// The outbox stream of one backend, forwarded on demand.
pub struct OutboxPump {
    endpoint: String,
    stream_arn: String,
    forwarder: Forwarder,
    http: Client<HttpConnector, Full<bytes::Bytes>>,
    /// The sequence number to read after (none: from the start).
    after: tokio::sync::Mutex<Option<String>>,
}

impl OutboxPump {
    /// The pump of the stream `stream_arn` on the moto server at `endpoint`, forwarding with
    /// `forwarder`.
    pub fn new(endpoint: &str, stream_arn: &str, forwarder: Forwarder) -> Self {
        Self {
            endpoint: endpoint.to_owned(),
            stream_arn: stream_arn.to_owned(),
            forwarder,
            http: Client::builder(TokioExecutor::new()).build_http(),
            after: tokio::sync::Mutex::new(None),
        }
    }

    async fn call(&self, operation: &str, body: Value) -> Value {
        let request = http::Request::post(&self.endpoint)
            .header("content-type", "application/x-amz-json-1.0")
            .header(
                "x-amz-target",
                format!("DynamoDBStreams_20120810.{operation}"),
            )
            // moto routes by the signing scope; it checks no signature.
            .header(
                "authorization",
                "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/dynamodb/aws4_request, \
                 SignedHeaders=host, Signature=0",
            )
            .body(Full::new(bytes::Bytes::from(body.to_string())))
            .expect("request");
        let response = self
            .http
            .request(request)
            .await
            .expect("DynamoDB Streams call");
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("DynamoDB Streams answer")
            .to_bytes();
        assert!(
            status.is_success(),
            "{operation}: {status} {}",
            String::from_utf8_lossy(&bytes)
        );
        serde_json::from_slice(&bytes).expect("DynamoDB Streams JSON")
    }

    /// Forwards every stream record written since the last call, in batches of up to 100 as
    /// the mapping does; stops at a batch the forwarder reports failed (that record is read
    /// again next time). Answers how many records were forwarded.
    pub async fn pump(&self) -> usize {
        let mut after = self.after.lock().await;
        let described = self
            .call("DescribeStream", json!({"StreamArn": self.stream_arn}))
            .await;
        let shard = described["StreamDescription"]["Shards"][0]["ShardId"]
            .as_str()
            .expect("the outbox stream's shard")
            .to_owned();
        let mut request = json!({"StreamArn": self.stream_arn, "ShardId": shard});
        match after.as_ref() {
            Some(sequence) => {
                request["ShardIteratorType"] = json!("AFTER_SEQUENCE_NUMBER");
                request["SequenceNumber"] = json!(sequence);
            }
            None => request["ShardIteratorType"] = json!("TRIM_HORIZON"),
        }
        let mut iterator = self.call("GetShardIterator", request).await["ShardIterator"]
            .as_str()
            .expect("ShardIterator")
            .to_owned();
        let mut forwarded = 0;
        loop {
            let out = self
                .call(
                    "GetRecords",
                    json!({"ShardIterator": iterator, "Limit": 100}),
                )
                .await;
            let records = out["Records"].as_array().cloned().unwrap_or_default();
            if records.is_empty() {
                return forwarded;
            }
            // The mapping's filter: writes only.
            let event: StreamEvent =
                serde_json::from_value(json!({ "Records": records })).expect("a stream event");
            let answer = self.forwarder.forward(&event).await;
            let sequences: Vec<&str> = records
                .iter()
                .filter_map(|r| r["dynamodb"]["SequenceNumber"].as_str())
                .collect();
            if let Some(failed) = answer.batch_item_failures.first() {
                // Read again from the failed record: after the one before it.
                let at = sequences
                    .iter()
                    .position(|s| *s == failed.item_identifier)
                    .expect("the failure names a record of the batch");
                if at > 0 {
                    *after = Some(sequences[at - 1].to_owned());
                }
                return forwarded + at;
            }
            forwarded += records.len();
            *after = sequences.last().map(|s| (*s).to_owned());
            iterator = match out["NextShardIterator"].as_str() {
                Some(next) => next.to_owned(),
                None => return forwarded,
            };
        }
    }
}
