//! The HeavenBase data model, with no I/O: logical types and their Arrow and
//! Postgres types, entity and field definitions (JSON form too), placement plans,
//! object_id derivation, the system entities `sys-catalog` and `sys-metaschema`,
//! and the audit diff.

pub mod audit;
pub mod column;
pub mod entity;
pub mod objectid;
pub mod placement;
pub mod system;
pub mod types;
pub mod value;

pub use column::{BadValue, coerce_column};
pub use entity::{
    DefaultFn, EntityDef, FieldDef, FieldSet, ForeignKey, IdSource, Identity, NAME, NamedIndex, OBJECT_ID, StoreSpec,
};
pub use objectid::{catalog_row_id, derive_key_object_id, derive_object_id, generate_object_id, hash_id, system_row_id};
pub use placement::{BackendInfo, Binding, FieldGroup, IndexPlan, PlacementPlan, Strategy};
pub use types::{ColumnBuilder, LogicalType, PhysicalType, Stored};

/// A row as users write and read it: field name → JSON value.
pub type Row = serde_json::Map<String, serde_json::Value>;

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum CatalogError {
    #[error("{0}")]
    Type(String),
    #[error("{0}")]
    Name(String),
    #[error("{0}")]
    Definition(String),
    #[error("{0}")]
    Placement(String),
}
