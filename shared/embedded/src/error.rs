//! Errors of opening the store.

use std::path::PathBuf;

/// Why [`SqliteStore::open`](crate::SqliteStore::open) failed. Each variant names the path it
/// concerns. Nothing is left half-done that a later open could not repair: the schema is created
/// in one transaction.
///
/// Failures of operations on an open store are not this type but
/// [`BackendError`](switchboard_core::ports::BackendError).
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    /// The data directory does not exist and could not be created.
    #[error("cannot create the data directory {}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// SQLite could not open, configure, migrate or purge the file.
    #[error("cannot open the store {}: {operation} failed", path.display())]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// What was being done.
        operation: &'static str,
        /// The underlying error.
        #[source]
        source: rusqlite::Error,
    },
    /// Another process consumes this store's queue (its lock file is held): two consumers would
    /// hand the same in-flight entries out twice after a restart.
    #[error(
        "another switchboard process is already consuming the store in {}: stop it, or use \
         another data directory",
        path.display()
    )]
    ConsumerRunning {
        /// The data directory.
        path: PathBuf,
    },
    /// The consumer's lock file could not be created or locked.
    #[error("cannot lock {}", path.display())]
    ConsumerLock {
        /// The lock file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The store's thread could not be started.
    #[error("cannot start the thread of the store {}", path.display())]
    Thread {
        /// The database file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A store operation at start-up failed.
    #[error(transparent)]
    Backend(Box<switchboard_core::ports::BackendError>),
    /// The file was written with a schema this version of switchboard does not know (a newer
    /// switchboard wrote it). It is left untouched.
    #[error(
        "the store {} has schema version {found}, this switchboard knows versions up to \
         {supported}: run a newer switchboard, or use another data directory",
        path.display()
    )]
    UnsupportedSchema {
        /// The database file.
        path: PathBuf,
        /// The version found in the file.
        found: i64,
        /// The newest version this crate can use.
        supported: i64,
    },
}
