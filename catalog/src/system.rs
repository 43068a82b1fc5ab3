//! The system entities every workspace has: `sys-catalog` (one card per stored
//! object, docs/reference.md §5.1) and `sys-metaschema` (what the workspace holds, §5.2).
//! They are fixed: users cannot alter them.

use serde_json::json;

use crate::entity::{EntityDef, FieldDef};
use crate::types::{LogicalType, TIMESTAMP_MAX_MS};

pub const SYS_CATALOG: &str = "sys-catalog";
pub const SYS_METASCHEMA: &str = "sys-metaschema";

pub fn is_system(entity_id: &str) -> bool {
    entity_id == SYS_CATALOG || entity_id == SYS_METASCHEMA
}

/// Catalog fields a workspace computes itself; users cannot derive them.
pub const CATALOG_AUTO_FIELDS: &[&str] =
    &["object_id", "target_id", "target_entity", "ws", "created_at", "updated_at", "expires_compute", "stale_compute"];

pub fn catalog_entity() -> EntityDef {
    use LogicalType as T;
    let st = T::short_text;
    let f = FieldDef::new;
    EntityDef::new(SYS_CATALOG)
        .desc("One card per stored object: identity, payload, governance, lineage")
        .field(f("target_id", T::identifier()).desc("object_id of the described row"))
        .field(f("target_entity", st()).desc("entity_id of the described row"))
        .field(f("name", st()).default("").desc("Display name, projected from the row's own name"))
        .field(f("version", st()).default(""))
        .field(f("type", st()).default(""))
        .field(f("summary", T::long_text()).default(""))
        .field(f("instructions", T::long_text()).default(""))
        .field(f("examples", T::Json).default(json!([])))
        .field(f("artifacts", T::Json).default(json!([])))
        .field(f("confidence", T::Float).default(1.0))
        .field(f("desc", T::medium_text()).default(""))
        .field(f("keywords", T::array_of(st())).default(json!([])))
        .field(f("tags", T::Json).default(json!([])))
        .field(f("priority", T::Float).default(0.0))
        .field(f("ws", st()).desc("Workspace id"))
        .field(f("active", T::Boolean).default(true))
        .field(f("visible", T::Boolean).default(true))
        .field(f("created_at", T::Timestamp).desc("First write, kept across updates"))
        .field(f("updated_at", T::Timestamp).desc("Last write"))
        .field(f("expires_at", T::Timestamp).default(TIMESTAMP_MAX_MS))
        .field(f("expires_after", T::Duration).default(0))
        .field(f("stale_after", T::Duration).default(0))
        .field(f("expires_compute", T::Timestamp))
        .field(f("stale_compute", T::Timestamp))
        .field(f("creator", st()))
        .field(f("owner", st()))
        .field(f("auth", T::Json).default(json!({})))
        .field(f("metadata", T::Json).default(json!({})))
        .field(f("note", T::medium_text()))
        .field(f("source", T::long_text()))
        .field(f("parent_id", st()))
        .field(f("history", T::Json).default(json!([])))
        .field(f("transforms", T::Json).default(json!([])))
        .field(f("statistics", T::Json).default(json!({})))
        .field(f("feedback", T::Json).default(json!([])))
        .field(f("annotations", T::Json).default(json!([])))
        .field(f("related", T::Json).default(json!([])))
        .field(f("automations", T::Json).default(json!([])))
        .validated()
        .expect("sys-catalog definition is valid")
}

pub fn metaschema_entity() -> EntityDef {
    use LogicalType as T;
    let st = T::short_text;
    let f = FieldDef::new;
    EntityDef::new(SYS_METASCHEMA)
        .desc("What the workspace holds: entities, fields, storage, indexes, constraints, backends")
        .field(f("kind", st()).desc("entity, field, storage, index, constraint, backend, workspace"))
        .field(f("subject_id", st()))
        .field(f("name", st()).default(""))
        .field(f("dtype", st()).default(""))
        .field(f("desc", T::medium_text()))
        .field(f("tags", T::Json).default(json!([])))
        .field(f("backend", st()))
        .field(f("type", st()))
        .field(f("strategy", st()))
        .field(f("source", st()))
        .field(f("target", st()))
        .field(f("meta", T::Json).default(json!({})))
        .field(f("active", T::Boolean).default(true))
        .field(f("ws", st()))
        .field(f("field", st()))
        .validated()
        .expect("sys-metaschema definition is valid")
}
