//! [`EventFile`]: the embedded backend's domain events, one JSON object per line in a file of
//! the data folder (`events.jsonl`), implementing [`EventPublisher`] and [`EventLog`].
//!
//! Appends are serialized and flushed to disk (`fsync`) before `publish` returns; the appends
//! waiting while one is flushed are written and flushed together by the next (group commit,
//! as the store commits its writes), so a busy prioritizer pays one `fsync` for many
//! messages' events instead of one each. A line that
//! does not parse (the tail of a write cut short by a crash) is skipped by readers, with a
//! warning. Reading scans the file from the cursor's line: this is a log for development,
//! demos and small teams, not an index.
//!
//! **Retention.** [`EventFile::expire`] drops the events older than the retention from the
//! head of the file (rewritten beside it, then renamed over it: a reader or a crash sees the
//! old file or the new one, never half). Lines are numbered from the first event ever written:
//! a trimmed file starts with a header line `{"events_from": N}` giving the number of its first
//! event, so a cursor issued before stays valid (one pointing into what was dropped resumes at
//! the oldest event kept).
//!
//! **Erasure.** An erased customer's events (those naming one of their customers or
//! conversations) are replaced in place by the line `{"erased":true}`, which readers skip:
//! the numbering, and so every cursor, stays.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use switchboard_core::erasure::{ErasureScope, ErasureSite, SiteCount};
use switchboard_core::ports::{
    BackendError, DomainEvent, EventLog, EventPublisher, Page, PageRequest,
};

use crate::cursor::Cursor;
use crate::engine::MAX_PAGE_LIMIT;

/// The file name of the event log in the data folder.
pub const EVENTS_FILE_NAME: &str = "events.jsonl";

/// Domain events appended to a JSON-lines file.
///
/// Clones share the file, its lock and the thread that appends (`switchboard-events`, started
/// by the first publish and ended with the last clone).
#[derive(Debug, Clone)]
pub struct EventFile {
    path: Arc<PathBuf>,
    append: Arc<Mutex<()>>,
    appender: Arc<OnceLock<std::sync::mpsc::Sender<Append>>>,
    flushes: Arc<std::sync::atomic::AtomicU64>,
}

/// Lines to append, and who waits for their flush.
type Append = (String, tokio::sync::oneshot::Sender<Result<(), String>>);

/// The most publishes one flush takes.
const MAX_APPENDS: usize = 256;

/// The appending thread: takes the publishes waiting (at least one), writes them in order and
/// flushes them with one `fsync`, answers each, until every sender is gone. Holds `lock` while
/// it writes, so that a rewrite never interleaves.
fn append_in_turns(
    path: &Path,
    lock: &Mutex<()>,
    flushes: &std::sync::atomic::AtomicU64,
    inbox: &std::sync::mpsc::Receiver<Append>,
) {
    while let Ok(first) = inbox.recv() {
        let mut turn = vec![first];
        while turn.len() < MAX_APPENDS {
            let Ok(next) = inbox.try_recv() else { break };
            turn.push(next);
        }
        let written = {
            let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .and_then(|mut file| {
                    for (text, _) in &turn {
                        file.write_all(text.as_bytes())?;
                    }
                    file.sync_data()
                })
                .map_err(|e| e.to_string())
        };
        flushes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        for (_, answer) in turn {
            let _ = answer.send(written.clone());
        }
    }
}

impl EventFile {
    /// The event log at `path` (created on the first event).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: Arc::new(path.into()),
            append: Arc::new(Mutex::new(())),
            appender: Arc::default(),
            flushes: Arc::default(),
        }
    }

    /// The event log [`EVENTS_FILE_NAME`] in `data_dir`.
    pub fn in_folder(data_dir: &Path) -> Self {
        Self::new(data_dir.join(EVENTS_FILE_NAME))
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many times appends were flushed to disk since this file was opened, each flush
    /// holding one publish or more: how tests and benchmarks see the group flush at work.
    pub fn flushes(&self) -> u64 {
        self.flushes.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Holds the file's lock until the guard is dropped: publishes arriving meanwhile wait and
    /// are then flushed together.
    #[cfg(test)]
    pub(crate) fn hold_appends(&self) -> std::sync::MutexGuard<'_, ()> {
        self.append.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The appending thread's inbox, the thread started on first use.
    fn appender(&self) -> std::io::Result<&std::sync::mpsc::Sender<Append>> {
        if let Some(inbox) = self.appender.get() {
            return Ok(inbox);
        }
        let (inbox, appends) = std::sync::mpsc::channel::<Append>();
        let (path, lock) = (Arc::clone(&self.path), Arc::clone(&self.append));
        let flushes = Arc::clone(&self.flushes);
        // Two first publishes may race: the loser's thread ends at once, its sender dropped.
        std::thread::Builder::new()
            .name("switchboard-events".into())
            .spawn(move || append_in_turns(&path, &lock, &flushes, &appends))?;
        Ok(self.appender.get_or_init(|| inbox))
    }
}

/// The header of a trimmed file: the number of its first event line.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    events_from: u64,
}

/// The number of the first event line of a file whose first line is `first` (0 when it has no
/// header), and whether `first` is that header.
fn header_of(first: &str) -> Option<u64> {
    serde_json::from_str::<Header>(first)
        .ok()
        .map(|h| h.events_from)
}

/// Just the time of an event line, for trimming.
#[derive(Deserialize)]
struct Timed {
    time: DateTime<Utc>,
}

impl EventFile {
    /// Drops, from the head of the file, every event whose time is before `cutoff` (and any
    /// unreadable line among them); answers how many lines were dropped. Publishing waits while
    /// the file is rewritten. Nothing to drop: the file is not touched.
    pub async fn expire(&self, cutoff: DateTime<Utc>) -> Result<usize, BackendError> {
        const OP: &str = "expire_events";
        let dropped = self
            .rewrite(OP, move |text| {
                let mut lines = text.lines().peekable();
                let from = match lines.peek().and_then(|first| header_of(first)) {
                    Some(from) => {
                        lines.next();
                        from
                    }
                    None => 0,
                };
                let mut dropped = 0usize;
                while let Some(line) = lines.peek() {
                    match serde_json::from_str::<Timed>(line) {
                        Ok(event) if event.time >= cutoff => break,
                        _ => {
                            lines.next();
                            dropped += 1;
                        }
                    }
                }
                if dropped == 0 {
                    return Ok((None, 0));
                }
                let header = serde_json::to_string(&Header {
                    events_from: from + dropped as u64,
                })
                .map_err(|e| BackendError::unavailable(OP, e))?;
                let mut kept = String::with_capacity(text.len());
                kept.push_str(&header);
                kept.push('\n');
                for line in lines {
                    kept.push_str(line);
                    kept.push('\n');
                }
                Ok((Some(kept), dropped))
            })
            .await?;
        if dropped > 0 {
            tracing::info!(dropped, "expired events dropped from the event file");
        }
        Ok(dropped)
    }

    /// Rewrites the file while publishing waits: `edit` gets its text and answers the new text
    /// (`None`: the file stays as it is) and a count, which this answers (0 without a file).
    /// The new text goes beside the file and is renamed over it ([`replace`]).
    async fn rewrite(
        &self,
        operation: &'static str,
        edit: impl FnOnce(&str) -> Result<(Option<String>, usize), BackendError> + Send + 'static,
    ) -> Result<usize, BackendError> {
        let (path, lock) = (Arc::clone(&self.path), Arc::clone(&self.append));
        blocking(operation, move || {
            let unavailable = |e| BackendError::unavailable(operation, e);
            let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
            let Some(text) = read_all(&path).map_err(unavailable)? else {
                return Ok(0);
            };
            let (new, count) = edit(&text)?;
            if let Some(new) = new {
                replace(&path, &new).map_err(unavailable)?;
            }
            Ok(count)
        })
        .await
    }
}

/// The line an erased event is replaced with: the numbering of the lines after it stays.
const ERASED_LINE: &str = r#"{"erased":true}"#;

#[async_trait]
impl ErasureSite for EventFile {
    fn counts(&self) -> SiteCount {
        SiteCount::Events
    }

    /// Replaces each event that names one of the person's customers or conversations with
    /// `{"erased":true}`, which readers skip; the file is rewritten beside itself and renamed
    /// over it, as [`EventFile::expire`] does.
    async fn forget(&self, scope: &ErasureScope) -> Result<usize, BackendError> {
        const OP: &str = "erase_events";
        let ids: Vec<String> = scope
            .customers
            .iter()
            .map(|c| c.as_str().to_owned())
            .chain(scope.conversations.iter().map(|c| c.id.as_str().to_owned()))
            .collect();
        self.rewrite(OP, move |text| {
            let mut blanked = 0usize;
            let mut kept = String::with_capacity(text.len());
            for line in text.lines() {
                if ids.iter().any(|id| line.contains(id.as_str())) {
                    kept.push_str(ERASED_LINE);
                    blanked += 1;
                } else {
                    kept.push_str(line);
                }
                kept.push('\n');
            }
            Ok(((blanked > 0).then_some(kept), blanked))
        })
        .await
    }
}

/// The whole file at `path`; `None` when there is none yet.
fn read_all(path: &Path) -> std::io::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes `text` beside the file at `path` and renames it over it: a reader or a crash sees
/// the old file or the new one, never half.
fn replace(path: &Path, text: &str) -> std::io::Result<()> {
    let temporary = path.with_extension("jsonl.rewrite");
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)?;
    if let Some(dir) = path.parent() {
        // The rename itself durable.
        std::fs::File::open(dir).and_then(|d| d.sync_all())?;
    }
    Ok(())
}

async fn blocking<T: Send + 'static>(
    operation: &'static str,
    f: impl FnOnce() -> Result<T, BackendError> + Send + 'static,
) -> Result<T, BackendError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| BackendError::unavailable(operation, e))?
}

#[async_trait]
impl EventPublisher for EventFile {
    async fn publish(&self, events: &[DomainEvent]) -> Result<(), BackendError> {
        const OP: &str = "publish";
        if events.is_empty() {
            return Ok(());
        }
        let mut text = String::new();
        for event in events {
            text.push_str(
                &serde_json::to_string(event).map_err(|e| BackendError::unavailable(OP, e))?,
            );
            text.push('\n');
        }
        let (answer, flushed) = tokio::sync::oneshot::channel();
        self.appender()
            .map_err(|e| BackendError::unavailable(OP, e))?
            .send((text, answer))
            .map_err(|_| BackendError::unavailable(OP, "the appending thread has stopped"))?;
        match flushed.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(BackendError::unavailable(OP, e)),
            Err(_) => Err(BackendError::unavailable(OP, "the append was dropped")),
        }
    }
}

#[async_trait]
impl EventLog for EventFile {
    /// Oldest first. A cursor is valid only with the type filter it was issued for.
    async fn events(
        &self,
        kind: Option<&str>,
        page: PageRequest,
    ) -> Result<Page<DomainEvent>, BackendError> {
        const OP: &str = "events";
        let kind = kind.map(str::to_owned);
        let start = match page.cursor.as_deref().map(Cursor::decode).transpose()? {
            None => 0,
            Some(Cursor::Events {
                kind: issued_for,
                line,
            }) if issued_for == kind => line,
            Some(_) => return Err(BackendError::BadCursor),
        };
        let limit = page.limit.clamp(1, MAX_PAGE_LIMIT);
        let path = Arc::clone(&self.path);
        blocking(OP, move || {
            let file = match std::fs::File::open(path.as_path()) {
                Ok(file) => file,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Ok(Page {
                        items: Vec::new(),
                        next: None,
                    });
                }
                Err(e) => return Err(BackendError::unavailable(OP, e)),
            };
            let mut items = Vec::new();
            let mut next = None;
            let mut lines = BufReader::new(file).lines().peekable();
            // A trimmed file numbers its first event after the header.
            let from = match lines.peek() {
                Some(Ok(first)) => match header_of(first) {
                    Some(from) => {
                        lines.next();
                        from
                    }
                    None => 0,
                },
                _ => 0,
            };
            for (n, line) in lines.enumerate() {
                let n = from + n as u64;
                if n < start {
                    continue;
                }
                let line = line.map_err(|e| BackendError::unavailable(OP, e))?;
                let event: DomainEvent = match serde_json::from_str(&line) {
                    Ok(event) => event,
                    Err(_) if line == ERASED_LINE => continue,
                    Err(e) => {
                        tracing::warn!(line = n + 1, error = %e, "skipping an unreadable event line");
                        continue;
                    }
                };
                if kind.as_deref().is_some_and(|k| k != event.kind) {
                    continue;
                }
                if items.len() == limit {
                    next = Some(
                        Cursor::Events {
                            kind: kind.clone(),
                            line: n,
                        }
                        .encode(OP)?,
                    );
                    break;
                }
                items.push(event);
            }
            Ok(Page { items, next })
        })
        .await
    }
}
