//! HeavenBase storage backends. The [`Backend`] trait is what the engine knows of
//! a backend: ensure a field-group table, upsert an Arrow batch keyed by
//! `object_id`, delete and look up by ids, and scan with projection, filter and
//! limit pushdown. One module per backend type.

pub mod backend;
pub mod elasticsearch;
pub mod exec;
pub mod group_table;
pub mod indexed;
pub mod inmem;
#[cfg(feature = "lance")]
pub mod lance;
pub mod pg_tls;
pub mod postgres;
pub mod registry;
pub mod sql_filter;
pub mod sqlite;
pub mod text;
pub mod vector;

pub use backend::{
    Backend, ColumnChange, ColumnSpec, Dialect, FederationScope, GroupSpec, GroupWrite, Pushdown, ScanRequest, SqlEngine,
};
pub use exec::LazyBatchesExec;
pub use group_table::GroupTable;
pub use registry::{BackendContext, BackendRegistry};

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// A backend failed: which backend, what it was doing, what it said.
    #[error("backend '{backend}' ({kind}): {message}")]
    Backend { backend: String, kind: String, message: String },
    /// A backend could not be reached (a server that refuses or drops the
    /// connection); the same request may succeed once it is back.
    #[error("backend '{backend}' ({kind}): {message}")]
    Unavailable { backend: String, kind: String, message: String },
    /// The backend's storage is full (SQLite's SQLITE_FULL, a full disk): the
    /// write was rolled back; it may succeed once space is freed.
    #[error("backend '{backend}' ({kind}): {message}")]
    DiskFull { backend: String, kind: String, message: String },
    /// The backend's files cannot be written or read (a read-only folder, an
    /// I/O error).
    #[error("backend '{backend}' ({kind}): {message}")]
    Storage { backend: String, kind: String, message: String },
    /// A unique index refused a write.
    #[error("backend '{backend}': unique violation on {table}: {message}")]
    Unique { backend: String, table: String, message: String },
    #[error("{0}")]
    Config(String),
    /// Something this build does not do (a backend type it was compiled without).
    #[error("{0}")]
    Unsupported(String),
}

pub type Result<T> = std::result::Result<T, ProviderError>;
