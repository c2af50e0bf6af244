//! `switchboard import-mail PATH`: an mbox file or a Maildir folder into the embedded store,
//! through the same intake as `/webhooks/email` (each message kept, normalized, threaded and
//! queued for the prioritizer, which runs when `serve` next starts).
//!
//! Messages are imported oldest first (by their `Date`), so an answer finds the message it
//! answers. A message already stored is a no-op: importing again adds nothing.

use bytes::Bytes;
use mail_parser::MessageParser;
use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;

use switchboard_core::channels::email;
use switchboard_core::clock::{Clock, SystemClock};
use switchboard_core::model::Webhook;
use switchboard_core::ports::RecordLookup;
use switchboard_embedded::assembly::EmbeddedPorts;

use crate::CliError;

/// What an import did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportSummary {
    /// Messages read from the mailbox.
    pub read: usize,
    /// Of them, those that stored something new.
    pub new: usize,
}

/// Why a mailbox could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the mailbox {path}: {source}")]
pub struct MailboxError {
    /// The path given.
    pub path: String,
    /// The failure.
    pub source: std::io::Error,
}

/// Every message of the mbox file or Maildir folder at `path`, oldest first.
pub fn read_mailbox(path: &Path) -> Result<Vec<Vec<u8>>, MailboxError> {
    let error = |source| MailboxError {
        path: path.display().to_string(),
        source,
    };
    let mut messages: Vec<Vec<u8>> = if path.is_dir() {
        let mut all = Vec::new();
        for folder in
            mail_parser::mailbox::maildir::FolderIterator::new(path, Some(".")).map_err(error)?
        {
            for message in folder.map_err(error)? {
                all.push(message.map_err(error)?.unwrap_contents());
            }
        }
        all
    } else {
        let file = std::fs::File::open(path).map_err(error)?;
        mail_parser::mailbox::mbox::MessageIterator::new(BufReader::new(file))
            .map(|m| m.map(|m| m.unwrap_contents()))
            .collect::<Result<_, _>>()
            .map_err(error)?
    };
    let parser = MessageParser::new();
    let date = |raw: &[u8]| {
        parser
            .parse_headers(raw)
            .and_then(|m| m.date().map(|d| d.to_timestamp()))
            .unwrap_or(i64::MAX)
    };
    messages.sort_by_cached_key(|raw| date(raw));
    Ok(messages)
}

/// Imports the mailbox at `path` into the embedded store in `data`, printing progress on
/// stderr every `every` messages.
pub async fn import_mail(
    path: &Path,
    data: &Path,
    retention_days: u32,
    every: usize,
) -> Result<ImportSummary, CliError> {
    let messages = read_mailbox(path)?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let ports = EmbeddedPorts::open(data, retention_days, clock)?;
    let intake = ports.intake();
    let total = messages.len();
    let mut summary = ImportSummary::default();
    let store = ports.store();
    for raw in messages {
        let keys: Vec<_> = email::parse(&raw, ports.clock().now())
            .iter()
            .map(|r| r.key())
            .collect();
        let known = store
            .find(&keys)
            .await
            .map_err(|e| CliError::Import(e.to_string()))?
            .len();
        intake
            .accept(Webhook::Email, Bytes::from(raw))
            .await
            .map_err(|e| CliError::Import(e.to_string()))?;
        summary.read += 1;
        if known < keys.len() {
            summary.new += 1;
        }
        if every > 0 && summary.read % every == 0 {
            eprintln!(
                "imported {} of {total} messages ({} new)",
                summary.read, summary.new
            );
        }
    }
    Ok(summary)
}
