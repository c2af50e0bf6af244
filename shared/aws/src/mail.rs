//! E-mail received by Amazon SES: the receipt rule's S3 action stores each message in the mail
//! bucket, and the bucket's `ObjectCreated` event invokes the `email-intake` function, which
//! hands each object to [`MailIntake::handle`].
//!
//! Why an S3 event and not SES's SNS action: SNS carries at most 150 KB of a message, S3 up to
//! SES's 40 MB; the object is durable before the function runs (nothing rests on a
//! notification), it can be read again for a replay, and the bucket's lifecycle forgets it
//! with the retention period. An S3 event may arrive twice and the function's retries repeat
//! it: the record key of a message is its `Message-ID` (or the hash of its bytes), so a repeat
//! stores and enqueues nothing.
//!
//! For each message: the object is read, each attachment is written to
//! `attachments/<delivery>/<sha256>` in the same bucket (`<delivery>`: the SHA-256 of the
//! message, its delivery id; an S3 reference on the record's attachment,
//! `s3://<bucket>/attachments/<delivery>/<sha256>`, with its type, size and name), and the
//! bytes go through the same intake as `/webhooks/email` (the SES verdicts are headers SES
//! added: `X-SES-Spam-Verdict`, `X-SES-Virus-Verdict`, `Authentication-Results`); the record
//! names the object it came from (`source`). Any failure fails the invocation, and Lambda's
//! retries (then the on-failure destination) keep the event.
//!
//! An attachment is stored per message, not once per content: an erasure deletes a person's
//! message objects and attachments ([`MailObjects`]) without touching anyone else's copy of
//! the same file.

use aws_lambda_events::event::s3::S3Event;

use switchboard_core::channels::email;
use switchboard_core::erasure::{ErasureScope, ErasureSite, SiteCount};
use switchboard_core::ids::DeliveryId;
use switchboard_core::intake::{Intake, IntakeOutcome};
use switchboard_core::model::{Record, Webhook};
use switchboard_core::ports::BackendError;

/// The key prefix of the attachments written apart.
pub const ATTACHMENTS_PREFIX: &str = "attachments/";

/// The e-mail intake from the mail bucket.
#[derive(Clone)]
pub struct MailIntake {
    s3: aws_sdk_s3::Client,
    intake: Intake,
}

impl std::fmt::Debug for MailIntake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailIntake").finish_non_exhaustive()
    }
}

/// Where a message is: the bucket and the object key (decoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailObject {
    /// The bucket.
    pub bucket: String,
    /// The object key.
    pub key: String,
}

/// The objects an S3 event names (keys URL-decoded, as S3 sends them encoded).
pub fn objects(event: &S3Event) -> Vec<MailObject> {
    event
        .records
        .iter()
        .filter_map(|r| {
            let bucket = r.s3.bucket.name.clone()?;
            let key = r.s3.object.url_decoded_key.clone().or_else(|| {
                let raw = r.s3.object.key.as_deref()?.replace('+', " ");
                Some(
                    percent_encoding::percent_decode_str(&raw)
                        .decode_utf8_lossy()
                        .into_owned(),
                )
            })?;
            Some(MailObject { bucket, key })
        })
        .collect()
}

impl MailIntake {
    /// The intake of messages read with an S3 client of `sdk`, written through `intake`.
    pub fn from_sdk(sdk: &aws_config::SdkConfig, intake: Intake) -> Self {
        Self::new(aws_sdk_s3::Client::new(sdk), intake)
    }

    /// The intake of messages read with `s3`, written through `intake`.
    pub fn new(s3: aws_sdk_s3::Client, intake: Intake) -> Self {
        Self { s3, intake }
    }

    /// Takes in every message the event names; the first failure fails the whole event (its
    /// retry repeats what was done as no-ops).
    pub async fn handle(&self, event: &S3Event) -> Result<Vec<IntakeOutcome>, BackendError> {
        let mut outcomes = Vec::new();
        for object in objects(event) {
            if object.key.starts_with(ATTACHMENTS_PREFIX) {
                continue;
            }
            outcomes.push(self.take(&object).await?);
        }
        Ok(outcomes)
    }

    /// Takes in one message of the bucket.
    pub async fn take(&self, object: &MailObject) -> Result<IntakeOutcome, BackendError> {
        const OP: &str = "mail_intake";
        let out = self
            .s3
            .get_object()
            .bucket(&object.bucket)
            .key(&object.key)
            .send()
            .await
            .map_err(|e| BackendError::unavailable(OP, e))?;
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| BackendError::unavailable(OP, e))?
            .into_bytes();
        let delivery = DeliveryId::of(&bytes);
        for part in email::attachment_parts(&bytes) {
            let mut put = self
                .s3
                .put_object()
                .bucket(&object.bucket)
                .key(attachment_key(&delivery, &part.sha256))
                .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::Aes256)
                .body(part.bytes.into());
            if let Some(mime) = part.mime_type {
                put = put.content_type(mime);
            }
            put.send()
                .await
                .map_err(|e| BackendError::unavailable(OP, e))?;
        }
        let bucket = object.bucket.clone();
        let source = format!("s3://{bucket}/{}", object.key);
        let outcome = self
            .intake
            .accept_mapped(Webhook::Email, bytes, move |record| {
                if let Record::Message(m) = record {
                    m.source = Some(source.clone());
                    for a in &mut m.attachments {
                        if let Some(sha) = &a.sha256 {
                            a.url =
                                Some(format!("s3://{bucket}/{}", attachment_key(&delivery, sha)));
                        }
                    }
                }
            })
            .await?;
        tracing::info!(
            records = outcome.records,
            enqueued = outcome.enqueued,
            quarantined = outcome.quarantined,
            "message from the mail bucket taken in"
        );
        Ok(outcome)
    }
}

/// Where an attachment of the message `delivery` is stored: `attachments/<delivery>/<sha256>`.
fn attachment_key(delivery: &DeliveryId, sha256: &str) -> String {
    format!("{ATTACHMENTS_PREFIX}{delivery}/{sha256}")
}

/// The mail bucket as an erasure sees it: deletes the person's messages as SES wrote them
/// (`inbound/…`, named by their records' `source`) and their attachments
/// (`attachments/<delivery>/<sha256>`). Objects of another bucket, and attachments under the
/// older shared key (`attachments/<sha256>`, one object for every message that carried the
/// same file), are not deleted: the receipt counts them as left, and the bucket's lifecycle
/// forgets them with the retention period.
#[derive(Clone)]
pub struct MailObjects {
    s3: aws_sdk_s3::Client,
    bucket: String,
}

impl std::fmt::Debug for MailObjects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailObjects")
            .field("bucket", &self.bucket)
            .finish_non_exhaustive()
    }
}

impl MailObjects {
    /// The objects of `bucket`, deleted with an S3 client of `sdk`.
    pub fn from_sdk(sdk: &aws_config::SdkConfig, bucket: impl Into<String>) -> Self {
        Self::new(aws_sdk_s3::Client::new(sdk), bucket)
    }

    /// The objects of `bucket`, deleted with `s3`.
    pub fn new(s3: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        Self {
            s3,
            bucket: bucket.into(),
        }
    }

    /// The key of `location` when this site may delete it.
    fn deletable<'a>(&self, location: &'a str) -> Option<&'a str> {
        let key = location
            .strip_prefix("s3://")?
            .strip_prefix(self.bucket.as_str())?
            .strip_prefix('/')?;
        let per_message = key
            .strip_prefix(ATTACHMENTS_PREFIX)
            .is_some_and(|rest| rest.contains('/'));
        (key.starts_with(INBOUND_PREFIX) || per_message).then_some(key)
    }
}

/// The key prefix under which SES's receipt rule writes the messages.
pub const INBOUND_PREFIX: &str = "inbound/";

#[async_trait::async_trait]
impl ErasureSite for MailObjects {
    fn counts(&self) -> SiteCount {
        SiteCount::Attachments
    }

    async fn forget(&self, scope: &ErasureScope) -> Result<usize, BackendError> {
        let mut deleted = 0;
        for key in scope.attachments.iter().filter_map(|l| self.deletable(l)) {
            // Deleting a key that is gone already succeeds: a repeated erasure counts it again.
            self.s3
                .delete_object()
                .bucket(&self.bucket)
                .key(key)
                .send()
                .await
                .map_err(|e| BackendError::unavailable("erase_mail_object", e))?;
            deleted += 1;
        }
        Ok(deleted)
    }
}
