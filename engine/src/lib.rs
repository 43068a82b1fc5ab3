//! HeavenBase: one workspace over many storage engines. A [`Workspace`] owns entity
//! schemas, backend instances and field-level placement; every entity is one SQL
//! table whose columns are stitched by `object_id` from its field groups.
//!
//! ```no_run
//! # async fn demo() -> heavenbase::Result<()> {
//! use heavenbase::{Construction, EntityDef, FieldDef, LogicalType, Workspace};
//! let ws = Workspace::open("notes", Construction::preset("embedded")).await?;
//! ws.register(EntityDef::new("note")
//!     .field(FieldDef::new("title", LogicalType::short_text()))
//!     .field(FieldDef::new("body", LogicalType::long_text())), false).await?;
//! let id = ws.upsert("note", serde_json::json!({"name": "Routing note", "title": "Hi", "body": "..."})).await?;
//! let row = ws.get("note", &id).await?;
//! # Ok(()) }
//! ```

pub mod bound;
pub mod chains;
pub mod colnames;
mod correlated;
mod error;
pub mod exists;
mod federation;
mod infoschema;
pub mod insert_values;
mod lineage;
pub mod memory;
mod near;
mod nesting;
mod presets;
mod query;
mod registry;
pub mod render;
mod returning;
mod search;
mod subquery_columns;
mod table;
pub mod typed;
pub mod uuids;
mod workspace;

pub use bound::{BoundParams, type_table_function_parameters};
pub use error::{Error, ErrorKind, Result, kind_of, panicked};
pub use heavenbase_catalog::{self as catalog, EntityDef, FieldDef, LogicalType, Row};
pub use heavenbase_providers as providers;
pub use heavenbase_providers::vector::Metric;
pub use lineage::output_field_types;
pub use near::{Near, parse_vector};
pub use nesting::check_nesting;
pub use presets::{BackendConfig, Construction, PRESETS, preset_backends, redact_secrets};
pub use query::{Aggregate, AggregateOp, Filter, FilterOp, Query, QuerySpec};
pub use registry::{Home, WorkspaceRecord};
pub use search::{Hybrid, HybridHit, Search};
pub use subquery_columns::check_subquery_columns;
pub use table::EntityTable;
pub use typed::{Entity, Field, TypedQuery};
pub use workspace::Workspace;
pub use workspace::ddl::{DdlDone, IndexListing, IndexOwner};
pub use workspace::maintenance::{Audit, PartialObject};
pub use workspace::transaction::Transaction;
pub use workspace::write::WriteMode;
