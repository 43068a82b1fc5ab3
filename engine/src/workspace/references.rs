//! Foreign keys: `col … REFERENCES parent [(key)]` and
//! `FOREIGN KEY (cols) REFERENCES parent [(key)]`, enforced by the workspace.
//!
//! A foreign key names the referenced table's primary key, so the values of
//! its columns derive the object_id of the row they name, exactly as that
//! row's key derived it: a write checks the named rows exist with one keyed
//! lookup per referenced table, and no index is needed. The checks run under
//! the written rows' locks, before any backend is touched:
//!
//! - a written row whose foreign key columns are all non-NULL must name an
//!   existing row, or one written by the same statement (23503);
//! - a deleted row must not be named by any row left behind (23503): ON
//!   DELETE NO ACTION / RESTRICT, Postgres' default. CASCADE, SET NULL and
//!   SET DEFAULT are refused when the key is declared (0A000).
//!
//! Until the workspace has transactions, a delete of a parent and an insert of a
//! child that names it, run at the same moment from two sessions, can both
//! pass their check.

use std::collections::{BTreeSet, HashSet};

use datafusion::logical_expr::{Expr, ident, lit};
use datafusion::sql::sqlparser::ast::{ForeignKeyConstraint, ReferentialAction};
use heavenbase_catalog::value::array_value;
use heavenbase_catalog::{EntityDef, ForeignKey, IdSource, OBJECT_ID, PhysicalType, derive_key_object_id};
use serde_json::Value as Json;

use super::write::PreparedBatch;
use super::{EntityRuntime, Workspace, keys};
use crate::error::ErrorKind;
use crate::{Error, Result};

/// Referenced key values per delete check.
const CHECK_CHUNK: usize = 1_000;

impl Workspace {
    /// A declared foreign key of `def` (the table being created or altered)
    /// over `columns`, checked against the table it references.
    pub(super) fn declare_foreign_key(
        &self,
        def: &EntityDef,
        columns: Vec<String>,
        fk: &ForeignKeyConstraint,
    ) -> Result<ForeignKey> {
        let e = &def.entity_id;
        let parent = super::dml::last_ident(&fk.foreign_table);
        for action in [&fk.on_delete, &fk.on_update].into_iter().flatten() {
            if !matches!(action, ReferentialAction::NoAction | ReferentialAction::Restrict) {
                return Err(Error::not_supported(format!(
                    "{e}: foreign key ON DELETE/ON UPDATE {action} is not supported (NO ACTION and RESTRICT are)"
                )));
            }
        }
        // A table may reference itself; it is not registered yet when it is created.
        let parent_key: Vec<String> = if parent == *e {
            def.id_source.key().map(<[String]>::to_vec).unwrap_or_default()
        } else {
            let rt = self.runtime(&parent)?;
            rt.def.id_source.key().map(<[String]>::to_vec).unwrap_or_default()
        };
        let referred: Vec<String> = fk.referred_columns.iter().map(|c| c.value.clone()).collect();
        if parent_key.is_empty() || (!referred.is_empty() && referred != parent_key) {
            return Err(Error::not_supported(format!(
                "{e}: a foreign key references the primary key of the table it names ({parent} has {})",
                if parent_key.is_empty() { "none".to_string() } else { format!("({})", parent_key.join(", ")) }
            )));
        }
        if columns.len() != parent_key.len() {
            return Err(Error::definition(format!(
                "{e}: number of referencing and referenced columns for foreign key disagree ({} and {})",
                columns.len(),
                parent_key.len()
            )));
        }
        for c in &columns {
            let f = def.get(c).ok_or_else(|| Error::unknown_field(format!("foreign key names unknown column '{c}' of {e}")))?;
            if !matches!(f.ty.physical(), PhysicalType::Int | PhysicalType::Text) {
                return Err(Error::definition(format!("{e}.{c}: a foreign key column is an integer or a text")));
            }
        }
        let name = fk.name.as_ref().map(|n| n.value.clone()).unwrap_or_else(|| format!("{e}_{}_fkey", columns.join("_")));
        Ok(ForeignKey { name, fields: columns, references: parent })
    }

    /// Every written row's foreign keys name existing rows (or rows of this write).
    pub(super) async fn check_references(&self, rt: &EntityRuntime, prepared: &PreparedBatch) -> Result<()> {
        for fk in &rt.def.foreign_keys {
            let parent = self.runtime(&fk.references)?;
            let mut named: Vec<(String, Vec<Json>)> = Vec::new();
            let mut seen = HashSet::new();
            for row in 0..prepared.ids.len() {
                let values: Vec<Json> = fk
                    .fields
                    .iter()
                    .map(|f| match (prepared.columns.get(f), rt.def.get(f)) {
                        (Some(a), Some(field)) => array_value(a.as_ref(), row, &field.ty),
                        _ => Json::Null,
                    })
                    .collect();
                if values.iter().any(Json::is_null) {
                    continue; // MATCH SIMPLE: a key with a NULL names nothing.
                }
                let Some(id) = derive_key_object_id(parent.def.storage_name(), &values) else { continue };
                if seen.insert(id.clone()) {
                    named.push((id, values));
                }
            }
            if fk.references == rt.def.entity_id {
                let written: HashSet<&String> = prepared.ids.iter().collect();
                named.retain(|(id, _)| !written.contains(id));
            }
            if named.is_empty() {
                continue;
            }
            let ids: Vec<String> = named.iter().map(|(id, _)| id.clone()).collect();
            let existing = self.existing_ids(&parent, &ids).await?;
            if let Some((_, values)) = named.iter().find(|(id, _)| !existing.contains(id)) {
                return Err(Error::new(
                    ErrorKind::ForeignKeyViolation,
                    format!(
                        "insert or update on table \"{}\" violates foreign key constraint \"{}\": Key ({})=({}) is not \
                         present in table \"{}\"",
                        rt.def.entity_id,
                        fk.name,
                        fk.fields.join(", "),
                        keys::key_text(values),
                        fk.references
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The foreign keys of other tables (or of this one) that reference `entity`.
    pub(super) fn referencing(&self, entity: &str) -> Vec<(String, ForeignKey)> {
        self.inner
            .entities
            .read()
            .values()
            .flat_map(|rt| {
                rt.def.foreign_keys.iter().filter(|fk| fk.references == entity).map(|fk| (rt.def.entity_id.clone(), fk.clone()))
            })
            .collect()
    }

    /// No row left behind names a row of `ids` (which are about to be deleted).
    pub(super) async fn check_referenced(&self, rt: &EntityRuntime, ids: &[String]) -> Result<()> {
        let children = self.referencing(&rt.def.entity_id);
        if children.is_empty() {
            return Ok(());
        }
        let IdSource::Key(key) = &rt.def.id_source else { return Ok(()) };
        let deleted: HashSet<&String> = ids.iter().collect();
        let rows: Vec<_> = self.get_many_unlocked(rt, ids).await?.into_iter().flatten().collect();
        for (child, fk) in children {
            let child_rt = self.runtime(&child)?;
            for chunk in rows.chunks(CHECK_CHUNK) {
                let value = |row: &heavenbase_catalog::Row, k: &String| json_literal(row.get(k).unwrap_or(&Json::Null));
                let filter = match (fk.fields.as_slice(), key.as_slice()) {
                    ([f], [k]) => ident(f).in_list(chunk.iter().map(|row| value(row, k)).collect(), false),
                    _ => balanced_or(
                        chunk
                            .iter()
                            .map(|row| {
                                fk.fields
                                    .iter()
                                    .zip(key)
                                    .map(|(f, k)| ident(f).eq(value(row, k)))
                                    .reduce(Expr::and)
                                    .expect("a key has fields")
                            })
                            .collect(),
                    ),
                };
                let frame = self
                    .session()
                    .table(child_rt.def.table_name())
                    .await?
                    .filter(filter)?
                    .select(vec![ident(OBJECT_ID)])?
                    .limit(0, Some(ids.len() + 1))?;
                let remaining: BTreeSet<String> = crate::table::first_column_ids(&frame.collect().await?)
                    .into_iter()
                    .filter(|id| child != rt.def.entity_id || !deleted.contains(id))
                    .collect();
                if !remaining.is_empty() {
                    return Err(Error::new(
                        ErrorKind::ForeignKeyViolation,
                        format!(
                            "update or delete on table \"{}\" violates foreign key constraint \"{}\" on table \"{child}\": \
                             {} row(s) of {child} still reference the deleted rows",
                            rt.def.entity_id,
                            fk.name,
                            remaining.len()
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// `terms` joined by OR as a balanced tree (planning recurses once per level).
fn balanced_or(mut terms: Vec<Expr>) -> Expr {
    while terms.len() > 1 {
        let mut next = Vec::with_capacity(terms.len().div_ceil(2));
        let mut it = terms.into_iter();
        while let Some(a) = it.next() {
            next.push(match it.next() {
                Some(b) => a.or(b),
                None => a,
            });
        }
        terms = next;
    }
    terms.pop().unwrap_or_else(|| lit(false))
}

fn json_literal(v: &Json) -> Expr {
    match v {
        Json::Number(n) if n.is_i64() => lit(n.as_i64().expect("i64")),
        Json::String(s) => lit(s.clone()),
        other => lit(other.to_string()),
    }
}
