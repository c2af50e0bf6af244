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
