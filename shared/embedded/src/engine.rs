//! The commit engine: opening the file, running operations one at a time, group commit,
//! retention, and decoding stored documents. The ports are implemented in the other modules
//! on top of [`SqliteStore::run`] and [`SqliteStore::write`].

use chrono::{DateTime, Utc};
use rusqlite::Connection;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use switchboard_core::clock::Clock;
use switchboard_core::errors::Reported;
use switchboard_core::ports::BackendError;

use crate::error::EmbeddedError;
use crate::schema::{self, SCHEMA_VERSION};

/// The name of the database file inside the data directory.
pub const FILE_NAME: &str = "switchboard.sqlite3";

/// The most items a listing returns per page, whatever the request asks (a request for 0 gets 1).
pub const MAX_PAGE_LIMIT: usize = 1000;

/// The most the write-ahead log keeps on disk between writes: past it, the log is checkpointed
/// into the database file and truncated after the commit that grew it (SQLite's own
/// checkpoint would reuse the file but never shrink it, so one large delivery would pin its
/// size for good, and on a full disk the log would take back whatever was freed).
pub const WAL_LIMIT_BYTES: u64 = 4 * 1024 * 1024;

/// How long an operation waits for another process holding the file's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

const SECONDS_PER_DAY: i64 = 86_400;

/// The embedded backend: one SQLite file holding the deliveries, the records, the conversations
/// and the intake queue.
///
/// Implements the storage ports of `switchboard_core::ports` and the
/// [`IntakeQueue`](switchboard_core::ports::IntakeQueue) with their documented contracts, plus
/// the queue's consumer side ([`receive`](Self::receive), [`ack`](Self::ack)).
///
/// * Duplicates are no-ops: a delivery is keyed by the hash of its bytes, a record by
///   `Record::key` (the first version stored wins), a queue entry by its record key while it is
///   in the queue. Repeating any call after an error is safe.
/// * Cloning is cheap; clones share two connections, each used by one thread of the store's
///   own: `switchboard-store` commits the writes waiting, together, and
///   `switchboard-read` runs the reads, on a read-only connection that sees the last commit
///   (WAL lets it read while the other writes). Callers never block a thread of theirs, with
///   or without a Tokio runtime, and however many wait, two threads work (no thread per
///   waiting operation fighting over a lock). The threads end when the last clone is
///   dropped.
/// * Every write is atomic and durable, on a file in WAL mode with `synchronous=FULL`: after
///   `Ok` it is on disk; after an error nothing of it is (rolled back). Writes that arrive
///   while another is being committed are committed together, in one transaction and one
///   `fsync` (group commit), each in a savepoint of its own: one that fails is rolled back
///   alone, and none answers before the commit that makes it durable. A turn takes the
///   acknowledgement path's writes first: background writes (the prioritizer's settlement,
///   the queue consumer's) wait while the intake keeps the turns busy, within a bound
///   (at most 200 ms; see `engine::Lane` in the source).
/// * Any SQLite failure or a panic inside an operation is reported as
///   [`BackendError::Unavailable`] naming the operation (the panicking operation's work is
///   rolled back, and the store goes on); no input makes an operation panic.
/// * Rows expire `retention_days` after they were last written: expired deliveries, records,
///   conversations, customers, sightings, idempotency keys and metric counts are deleted when
///   the store is opened and by [`purge_expired`](Self::purge_expired) (which `serve` runs
///   every hour, [`crate::consumer::expire_periodically`]); until then they are still read.
///
/// [`ConversationReader`]: switchboard_core::ports::ConversationReader
/// [`IntakeQueue`]: switchboard_core::ports::IntakeQueue
#[derive(Clone)]
pub struct SqliteStore {
    /// The connection, for tests that hold it.
    #[cfg(test)]
    pub(crate) conn: Arc<Mutex<Connection>>,
    /// The writes, for the store's writing thread.
    ops: std::sync::mpsc::Sender<Box<dyn Job>>,
    /// The reads, for the store's reading thread (its own connection, on committed data).
    reads: std::sync::mpsc::Sender<Read>,
    /// Writes sent and not yet taken into a transaction.
    queued: Arc<std::sync::atomic::AtomicUsize>,
    /// Write transactions committed since the store was opened.
    commits: Arc<std::sync::atomic::AtomicU64>,
    /// Set to have the write-ahead log truncated after the next commit.
    truncate_wal: Arc<std::sync::atomic::AtomicBool>,
    path: Arc<PathBuf>,
    retention_days: u32,
    pub(crate) clock: Arc<dyn Clock>,
    faults: Arc<crate::faults::FaultLog>,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .field("retention_days", &self.retention_days)
            .finish_non_exhaustive()
    }
}

/// How many expired rows [`SqliteStore::purge_expired`] deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Purged {
    /// Raw deliveries.
    pub deliveries: usize,
    /// Records.
    pub records: usize,
    /// Conversations (a conversation expires when no record of it was written for the
    /// retention period).
    pub conversations: usize,
    /// Idempotency keys past their day.
    pub idempotency_keys: usize,
    /// Counters of metric buckets older than [`switchboard_core::metrics::RETENTION_DAYS`].
    pub metric_counts: usize,
    /// Sightings of identifiers (an identity seen with an e-mail address or phone number)
    /// not seen again for the retention period.
    pub identifiers: usize,
    /// Customers (their identities and links with them) of whom nothing was written for the
    /// retention period.
    pub customers: usize,
    /// Notes of which conversations an identity wrote in, not renewed for the retention
    /// period.
    pub activity: usize,
}

fn open_error(
    path: &Path,
    operation: &'static str,
) -> impl FnOnce(rusqlite::Error) -> EmbeddedError {
    let path = path.to_path_buf();
    move |source| EmbeddedError::Sqlite {
        path,
        operation,
        source,
    }
}

impl SqliteStore {
    /// Opens the store in `dir`, creating the directory and the file [`FILE_NAME`] if missing.
    ///
    /// Sets WAL journal mode, `synchronous=FULL` and a busy timeout, creates the schema of a new
    /// file, refuses a file of an unknown (newer) [`SCHEMA_VERSION`] without touching it, then
    /// deletes expired rows. Rows written from now on expire `retention_days` days after their
    /// write (0 counts as 1). `clock` times every write.
    ///
    /// This is blocking file I/O: call it at startup, before serving.
    pub fn open(
        dir: &Path,
        retention_days: u32,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, EmbeddedError> {
        std::fs::create_dir_all(dir).map_err(|source| EmbeddedError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(FILE_NAME);
        let mut conn = Connection::open(&path).map_err(open_error(&path, "open"))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(open_error(&path, "busy_timeout"))?;
        let found: i64 = conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(open_error(&path, "read schema version"))?;
        if !(0..=SCHEMA_VERSION).contains(&found) {
            return Err(EmbeddedError::UnsupportedSchema {
                path,
                found,
                supported: SCHEMA_VERSION,
            });
        }
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(open_error(&path, "journal_mode"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(
                journal_mode = %mode,
                "SQLite refused WAL mode on this file system; writes stay durable but slower"
            );
        }
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(open_error(&path, "synchronous"))?;
        conn.pragma_update(None, "journal_size_limit", WAL_LIMIT_BYTES as i64)
            .map_err(open_error(&path, "journal_size_limit"))?;
        // What is deleted (an erasure, the retention's purge) is overwritten, not left in
        // free pages.
        conn.pragma_update(None, "secure_delete", true)
            .map_err(open_error(&path, "secure_delete"))?;
        tune(&conn).map_err(open_error(&path, "temp_store"))?;
        schema::migrate(&mut conn, found).map_err(open_error(&path, "create schema"))?;
        let retention_days = retention_days.max(1);
        let now = clock.now();
        if found < 9 {
            conn.execute(
                "UPDATE customers SET expires_at = ?1 WHERE expires_at = 0",
                [expiry(now, retention_days)],
            )
            .map_err(open_error(&path, "date the customers of an older file"))?;
        }

        let purged = purge(&mut conn, now).map_err(open_error(&path, "purge expired rows"))?;
        tracing::info!(
            path = %path.display(),
            schema_version = SCHEMA_VERSION,
            retention_days,
            purged_deliveries = purged.deliveries,
            purged_records = purged.records,
            purged_conversations = purged.conversations,
            purged_customers = purged.customers,
            "store opened"
        );
        // Reads run beside the writes, on a connection of their own: in WAL mode a reader sees
        // the last commit and never waits for the writer.
        let reader = Connection::open_with_flags(
            &path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(open_error(&path, "open for reading"))?;
        reader
            .busy_timeout(BUSY_TIMEOUT)
            .map_err(open_error(&path, "busy_timeout"))?;
        tune(&reader).map_err(open_error(&path, "temp_store"))?;
        let conn = Arc::new(Mutex::new(conn));
        let (ops, inbox) = std::sync::mpsc::channel();
        let (reads, read_inbox) = std::sync::mpsc::channel();
        let store = Self {
            #[cfg(test)]
            conn: conn.clone(),
            ops,
            reads,
            queued: Arc::default(),
            commits: Arc::new(std::sync::atomic::AtomicU64::new(0)),
            truncate_wal: Arc::default(),
            path: Arc::new(path),
            retention_days,
            clock,
            faults: Arc::default(),
        };
        let worker = Worker {
            conn,
            inbox,
            queued: store.queued.clone(),
            commits: store.commits.clone(),
            truncate_wal: store.truncate_wal.clone(),
            faults: store.faults.clone(),
            path: store.path.clone(),
        };
        // The threads log where the store was opened from.
        let logs = tracing::dispatcher::get_default(|d| d.clone());
        let spawn = |name: &str, work: Box<dyn FnOnce() + Send>| {
            let logs = logs.clone();
            std::thread::Builder::new()
                .name(name.into())
                .spawn(move || tracing::dispatcher::with_default(&logs, work))
                .map(drop)
                .map_err(|source| EmbeddedError::Thread {
                    path: store.path.to_path_buf(),
                    source,
                })
        };
        spawn("switchboard-store", Box::new(move || worker.serve()))?;
        spawn(
            "switchboard-read",
            Box::new(move || serve_reads(reader, read_inbox)),
        )?;
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Days a row is kept after its last write.
    pub fn retention_days(&self) -> u32 {
        self.retention_days
    }

    /// Deletes the deliveries, records and conversations whose retention has passed, in one
    /// transaction. Queue entries are not touched (they are deleted when acknowledged).
    pub async fn purge_expired(&self) -> Result<Purged, BackendError> {
        const OP: &str = "purge_expired";
        let now = self.clock.now();
        let purged = self
            .write(OP, move |conn| {
                purge(conn, now).map_err(|e| BackendError::unavailable(OP, e))
            })
            .await?;
        tracing::info!(
            deliveries = purged.deliveries,
            records = purged.records,
            conversations = purged.conversations,
            customers = purged.customers,
            identifiers = purged.identifiers,
            activity = purged.activity,
            "expired rows purged"
        );
        Ok(purged)
    }

    /// When a row written at `now` expires, in unix seconds.
    pub(crate) fn expires_at(&self, now: DateTime<Utc>) -> i64 {
        expiry(now, self.retention_days)
    }

    /// Runs the read `f` on the store's reading thread, on committed data (its connection is
    /// read-only). A write goes through [`write`](Self::write).
    pub(crate) async fn run<T, F>(&self, operation: &'static str, f: F) -> Result<T, BackendError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, BackendError> + Send + 'static,
    {
        let (sender, answer) = tokio::sync::oneshot::channel();
        let read: Read = Box::new(move |conn| {
            let _ = sender.send(f(conn));
        });
        self.reads
            .send(read)
            .map_err(|_| BackendError::unavailable(operation, "the store's thread has stopped"))?;
        answer.await.unwrap_or_else(|_| {
            Err(BackendError::unavailable(
                operation,
                "the operation panicked; nothing of it was kept",
            ))
        })
    }

    /// Runs the write `f` in a savepoint of the next write transaction, and answers once that
    /// transaction is committed (or `f`'s error, with everything `f` wrote rolled back). Writes
    /// waiting while a transaction commits are committed together by the next one: under
    /// concurrency, many writes cost one `fsync`. `f` must not open a transaction of its own
    /// (a savepoint is fine).
    pub(crate) async fn write<T, F>(&self, operation: &'static str, f: F) -> Result<T, BackendError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, BackendError> + Send + 'static,
    {
        self.write_in(Lane::Foreground, operation, f).await
    }

    /// [`write`](Self::write) in `lane`: a background write (work no one is waiting on an
    /// answer for: the prioritizer settling a message, the consumer taking and acknowledging
    /// entries) waits while the acknowledgement path keeps the store busy, at most
    /// [`BACKGROUND_MAX_WAIT`] (see [`Lane`]).
    pub(crate) async fn write_in<T, F>(
        &self,
        lane: Lane,
        operation: &'static str,
        f: F,
    ) -> Result<T, BackendError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, BackendError> + Send + 'static,
    {
        let (sender, answer) = tokio::sync::oneshot::channel();
        let job = Box::new(WriteJob {
            operation,
            lane,
            sent: std::time::Instant::now(),
            work: Some(f),
            result: None,
            sender,
        });
        self.queued
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if self.ops.send(job).is_err() {
            self.queued
                .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            return Err(BackendError::unavailable(
                operation,
                "the store's thread has stopped",
            ));
        }
        answer.await.unwrap_or_else(|_| {
            Err(BackendError::unavailable(
                operation,
                "the write was dropped before its commit",
            ))
        })
    }

    /// Runs the write `f` as [`write`](Self::write) does, and has the write-ahead log
    /// checkpointed into the file and truncated after its commit, before answering: what `f`
    /// deleted is then in neither (with `secure_delete`, the file overwrote it). Best effort:
    /// a checkpoint a reader holds back completes after a later commit.
    pub(crate) async fn write_and_truncate<T, F>(
        &self,
        operation: &'static str,
        f: F,
    ) -> Result<T, BackendError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, BackendError> + Send + 'static,
    {
        let flag = self.truncate_wal.clone();
        self.write(operation, move |conn| {
            let done = f(conn)?;
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
            Ok(done)
        })
        .await
    }

    /// Write transactions committed since the store was opened (each holding one write or
    /// more): with [`pending_writes`](Self::pending_writes), how tests and benchmarks see
    /// group commit at work.
    pub fn commits(&self) -> u64 {
        self.commits.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Writes refused since the store was opened because the disk refused every write (full,
    /// failing or read-only). Such a condition is logged once when it starts, every minute
    /// while it lasts and once when it ends, not once per write, and the errors the writers
    /// get are [`Reported`](switchboard_core::errors::Reported).
    pub fn refused_writes(&self) -> u64 {
        self.faults.refused_total()
    }

    /// Writes waiting for the next commit.
    pub fn pending_writes(&self) -> usize {
        self.queued.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Holds the connection until the guard is dropped: writes arriving meanwhile wait and are
    /// then committed together.
    #[cfg(test)]
    pub(crate) fn hold_connection(&self) -> MutexGuard<'_, Connection> {
        lock(&self.conn, "hold").expect("the connection")
    }
}

/// A write waiting for its transaction ([`SqliteStore::write`]).
trait Job: Send {
    /// Runs the write; answers whether it succeeded (and its savepoint is to be kept).
    fn run(&mut self, conn: &mut Connection) -> bool;
    /// The write failed without running to its end (a panic).
    fn fail(&mut self, reason: &str);
    /// The disk's condition that failed the write, if that is why it failed.
    fn fault(&self) -> Option<&'static str>;
    /// Answers the caller, once the transaction is committed (`Ok`) or not; `reported` when the
    /// failure is a condition already logged (see [`crate::faults`]).
    fn finish(self: Box<Self>, committed: Result<(), String>, reported: bool);
    /// Its lane.
    fn lane(&self) -> Lane;
    /// When it was sent to the store's thread.
    fn sent(&self) -> std::time::Instant;
}

/// Which writes a turn takes first. The acknowledgement path (the intake's write of a
/// delivery) is answered after the commit of the turn that holds it, and every write in a turn
/// makes that turn longer. Background writes (the prioritizer's settlement, the queue
/// consumer's) have no one waiting at the other end of a connection: while a turn has
/// [`BUSY_TURN`] acknowledgement writes or more, they wait for a quieter one, at most
/// [`BACKGROUND_MAX_WAIT`], after which up to [`BACKGROUND_PER_BUSY_TURN`] of them (the oldest)
/// join each turn however busy. Other writes (an agent's action, a reminder firing) always go
/// in the next turn, as every write does on a quiet store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lane {
    /// A provider waits for the answer: always in the next turn, and counted to tell a busy
    /// turn.
    Acknowledgement,
    /// Always in the next turn.
    Foreground,
    /// Asynchronous work: may wait while acknowledgements keep the store busy.
    Background,
}

/// Acknowledgement writes that make a turn busy (see [`Lane`]).
const BUSY_TURN: usize = 8;

/// The longest a background write waits for a quieter turn (see [`Lane`]).
pub(crate) const BACKGROUND_MAX_WAIT: std::time::Duration = std::time::Duration::from_millis(200);

/// Background writes that join a busy turn once the oldest has waited its longest.
const BACKGROUND_PER_BUSY_TURN: usize = 16;

struct WriteJob<T, F> {
    operation: &'static str,
    lane: Lane,
    sent: std::time::Instant,
    work: Option<F>,
    result: Option<Result<T, BackendError>>,
    sender: tokio::sync::oneshot::Sender<Result<T, BackendError>>,
}

impl<T, F> Job for WriteJob<T, F>
where
    T: Send + 'static,
    F: FnOnce(&mut Connection) -> Result<T, BackendError> + Send + 'static,
{
    fn run(&mut self, conn: &mut Connection) -> bool {
        let Some(work) = self.work.take() else {
            return false;
        };
        let result = work(conn);
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn fail(&mut self, reason: &str) {
        self.result = Some(Err(BackendError::unavailable(
            self.operation,
            reason.to_owned(),
        )));
    }

    fn lane(&self) -> Lane {
        self.lane
    }

    fn sent(&self) -> std::time::Instant {
        self.sent
    }

    fn fault(&self) -> Option<&'static str> {
        match &self.result {
            Some(Err(BackendError::Unavailable { source, .. })) => {
                crate::faults::classify(source.as_ref())
            }
            _ => None,
        }
    }

    fn finish(self: Box<Self>, committed: Result<(), String>, reported: bool) {
        let operation = self.operation;
        let answer = match (self.result, committed) {
            (Some(Err(BackendError::Unavailable { operation, source })), _) if reported => {
                Err(BackendError::unavailable(operation, Reported::new(source)))
            }
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(value)), Ok(())) => Ok(value),
            (_, Err(reason)) if reported => {
                Err(BackendError::unavailable(operation, Reported::new(reason)))
            }
            (_, Err(reason)) => Err(BackendError::unavailable(operation, reason)),
            (None, Ok(())) => Err(BackendError::unavailable(
                operation,
                "the write did not run",
            )),
        };
        // The caller may have gone (its future dropped): the write stands all the same.
        let _ = self.sender.send(answer);
    }
}

/// A read, which answers its caller itself.
type Read = Box<dyn FnOnce(&mut Connection) + Send>;

/// The most writes one transaction takes.
const MAX_TURN: usize = 512;

/// The reading thread: runs each read on its own connection until every sender is gone.
fn serve_reads(mut conn: Connection, inbox: std::sync::mpsc::Receiver<Read>) {
    while let Ok(read) = inbox.recv() {
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read(&mut conn)));
        if ran.is_err() {
            // Its caller learns it from its dropped answer.
            tracing::error!("a store read panicked");
        }
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
    }
}

/// The store's thread: owns the connection's use, runs the operations sent to it in turns.
struct Worker {
    pub(crate) conn: Arc<Mutex<Connection>>,
    inbox: std::sync::mpsc::Receiver<Box<dyn Job>>,
    queued: Arc<std::sync::atomic::AtomicUsize>,
    commits: Arc<std::sync::atomic::AtomicU64>,
    truncate_wal: Arc<std::sync::atomic::AtomicBool>,
    faults: Arc<crate::faults::FaultLog>,
    path: Arc<PathBuf>,
}

impl Worker {
    /// Until every sender is gone and nothing is deferred: takes the writes waiting (at least
    /// one) and commits them together, background ones as [`Lane`] says.
    fn serve(self) {
        let mut deferred: std::collections::VecDeque<Box<dyn Job>> = Default::default();
        loop {
            // Block for work only when none is deferred.
            let first = if deferred.is_empty() {
                match self.inbox.recv() {
                    Ok(job) => Some(job),
                    Err(_) => break,
                }
            } else {
                None
            };
            // A lock poisoned by a panic (of a test holding it) is healed by the first `lock`,
            // which reports it; the operations need not fail for it, so take it again.
            let guard = lock(&self.conn, "turn").or_else(|_| lock(&self.conn, "turn"));
            // What arrived while the connection was busy joins this turn, or is deferred.
            let mut writes = Vec::new();
            let mut acknowledgements = 0;
            let waiting = std::iter::from_fn(|| self.inbox.try_recv().ok());
            for job in first.into_iter().chain(waiting).take(MAX_TURN) {
                match job.lane() {
                    Lane::Background => deferred.push_back(job),
                    lane => {
                        acknowledgements += usize::from(lane == Lane::Acknowledgement);
                        writes.push(job);
                    }
                }
            }
            let room = if acknowledgements < BUSY_TURN {
                MAX_TURN.saturating_sub(writes.len())
            } else if deferred
                .front()
                .is_some_and(|job| job.sent().elapsed() >= BACKGROUND_MAX_WAIT)
            {
                BACKGROUND_PER_BUSY_TURN
            } else {
                0
            };
            let background = room.min(deferred.len());
            writes.extend(deferred.drain(..background));
            self.queued
                .fetch_sub(writes.len(), std::sync::atomic::Ordering::SeqCst);
            let mut guard = match guard {
                Ok(guard) => guard,
                Err(e) => {
                    for job in writes {
                        job.finish(Err(e.to_string()), false);
                    }
                    continue;
                }
            };
            commit_jobs(
                &mut guard,
                writes,
                &self.commits,
                &self.faults,
                &self.path,
                &self.truncate_wal,
            );
        }
    }
}

/// Commits `jobs` in one transaction, each in its own savepoint, and answers each. A failure
/// that is the disk's condition (full, failing, read-only) goes to `faults`, which logs it
/// once, and its writers get a [`Reported`] error.
fn commit_jobs(
    conn: &mut Connection,
    mut jobs: Vec<Box<dyn Job>>,
    commits: &std::sync::atomic::AtomicU64,
    faults: &crate::faults::FaultLog,
    path: &Path,
    truncate: &std::sync::atomic::AtomicBool,
) {
    let mut fault = None;
    let committed = run_jobs(conn, &mut jobs, &mut fault);
    if committed.is_ok() {
        commits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        faults.committed();
        // Before answering, so that a writer that grew the log finds it bounded.
        bound_wal(
            conn,
            path,
            truncate.swap(false, std::sync::atomic::Ordering::SeqCst),
        );
    } else if let Some(kind) = fault {
        faults.refused(kind, jobs.len() as u64);
        // Whatever the log holds beyond its limit goes back to the file system now, rather
        // than being taken by the next write.
        let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
    }
    for job in jobs {
        job.finish(committed.clone(), fault.is_some());
    }
}

/// Runs `jobs` in one transaction (see [`commit_jobs`]); notes in `fault` a failure that is
/// the disk's condition.
fn run_jobs(
    conn: &mut Connection,
    jobs: &mut [Box<dyn Job>],
    fault: &mut Option<&'static str>,
) -> Result<(), String> {
    fn note(fault: &mut Option<&'static str>, e: &rusqlite::Error) {
        if let Some(kind) = crate::faults::classify(e) {
            *fault = Some(kind);
        }
    }
    // The statements of every turn, parsed once (`execute_batch` would parse them each time).
    let step = |conn: &Connection, sql: &str| conn.prepare_cached(sql)?.execute([]).map(drop);
    if let Err(e) = step(conn, "BEGIN IMMEDIATE") {
        note(fault, &e);
        return Err(format!("begin: {e}"));
    }
    for job in jobs.iter_mut() {
        if let Err(e) = step(conn, "SAVEPOINT write") {
            note(fault, &e);
            job.fail(&format!("savepoint: {e}"));
            continue;
        }
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.run(conn)));
        let keep = match ran {
            Ok(ok) => ok,
            Err(_) => {
                tracing::error!("a store write panicked; it was rolled back");
                job.fail("the write panicked; it was rolled back");
                false
            }
        };
        if let Some(kind) = job.fault() {
            *fault = Some(kind);
        }
        let end = if keep {
            step(conn, "RELEASE write")
        } else {
            step(conn, "ROLLBACK TO write").and_then(|()| step(conn, "RELEASE write"))
        };
        if let Err(e) = end {
            // The transaction is in an unknown state: give up on all of it.
            note(fault, &e);
            let _ = conn.execute_batch("ROLLBACK");
            return Err(format!("savepoint: {e}"));
        }
    }
    step(conn, "COMMIT").map_err(|e| {
        note(fault, &e);
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        format!("commit: {e}")
    })
}

/// Checkpoints the write-ahead log into the file and truncates it once it has grown past
/// [`WAL_LIMIT_BYTES`] (see there), or when `always`. Best effort: a checkpoint that cannot
/// run now runs after a later commit.
fn bound_wal(conn: &Connection, path: &Path, always: bool) {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let grown = std::fs::metadata(&wal).is_ok_and(|m| m.len() > WAL_LIMIT_BYTES);
    if !grown && !always {
        return;
    }
    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())) {
        tracing::debug!(error = %e, "write-ahead log checkpoint deferred");
    }
}

/// Takes the connection. A lock poisoned by a panic in an earlier operation fails this operation
/// and heals the lock: the panicking operation's transaction was rolled back (here again, if it
/// was left open), so the next operation finds the store consistent.
fn lock<'a>(
    conn: &'a Mutex<Connection>,
    operation: &'static str,
) -> Result<MutexGuard<'a, Connection>, BackendError> {
    match conn.lock() {
        Ok(guard) => Ok(guard),
        Err(poisoned) => {
            let guard = poisoned.into_inner();
            if !guard.is_autocommit() {
                let _ = guard.execute_batch("ROLLBACK");
            }
            drop(guard);
            conn.clear_poison();
            tracing::error!(
                operation,
                "an earlier store operation panicked; lock recovered"
            );
            Err(BackendError::unavailable(
                operation,
                "the store lock was poisoned by a panic in an earlier operation",
            ))
        }
    }
}

/// Keeps both connections' temporary storage in memory. The savepoint of each write of a
/// group commit journals the pages it changes first; past 64 KiB (a turn of a few dozen
/// writes) SQLite spills that journal to a temporary file, written and thrown away at every
/// commit, unless temporary storage is in memory (a quarter of the writes' `pwrite` calls
/// under load, BENCHMARKS.md §5).
fn tune(conn: &Connection) -> rusqlite::Result<()> {
    conn.pragma_update(None, "temp_store", "MEMORY")
}

/// When a row written at `now` expires after `retention_days`, in unix seconds.
fn expiry(now: DateTime<Utc>, retention_days: u32) -> i64 {
    now.timestamp()
        .saturating_add(i64::from(retention_days).saturating_mul(SECONDS_PER_DAY))
}

fn purge(conn: &mut Connection, now: DateTime<Utc>) -> rusqlite::Result<Purged> {
    let now = now.timestamp();
    let tx = conn.savepoint()?;
    let purged = Purged {
        deliveries: tx.execute("DELETE FROM deliveries WHERE expires_at <= ?1", [now])?,
        records: tx.execute("DELETE FROM records WHERE expires_at <= ?1", [now])?,
        conversations: tx.execute("DELETE FROM conversations WHERE expires_at <= ?1", [now])?,
        idempotency_keys: tx.execute("DELETE FROM idempotency WHERE expires_at <= ?1", [now])?,
        metric_counts: tx.execute("DELETE FROM metric_counts WHERE expires_at <= ?1", [now])?,
        identifiers: tx.execute("DELETE FROM identifiers WHERE expires_at <= ?1", [now])?,
        customers: tx.execute("DELETE FROM customers WHERE expires_at <= ?1", [now])?,
        activity: tx.execute("DELETE FROM activity WHERE expires_at <= ?1", [now])?,
    };
    tx.commit()?;
    Ok(purged)
}

/// A stored JSON document that does not decode. The message names the row and where decoding
/// failed, never the content (it may hold message text or phone numbers).
#[derive(Debug, thiserror::Error)]
#[error("stored {what} {id} does not decode: {category:?} error at line {line}, column {column}")]
pub(crate) struct UndecodableDoc {
    what: &'static str,
    id: String,
    category: serde_json::error::Category,
    line: usize,
    column: usize,
}

impl UndecodableDoc {
    pub(crate) fn new(what: &'static str, id: &str, e: &serde_json::Error) -> Self {
        Self {
            what,
            id: id.to_owned(),
            category: e.classify(),
            line: e.line(),
            column: e.column(),
        }
    }
}

/// Decodes the JSON document of row `id`.
pub(crate) fn decode_doc<T: serde::de::DeserializeOwned>(
    what: &'static str,
    id: &str,
    doc: &str,
) -> Result<T, UndecodableDoc> {
    serde_json::from_str(doc).map_err(|e| UndecodableDoc::new(what, id, &e))
}
