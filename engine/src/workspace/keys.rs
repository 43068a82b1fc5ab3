//! Declared primary keys and identity columns.
//!
//! A table with a declared primary key (`id integer PRIMARY KEY`, `PRIMARY
//! KEY (a, b)`; [`IdSource::Key`]) derives every row's object_id from the
//! key's values ([`derive_key_object_id`]), so the key is unique because
//! object_id is, a row without a key value is refused, and `WHERE id = 5` is a
//! key lookup by the id that key gives (`EntityTable::scan`).
//!
//! An identity column (`serial`, `GENERATED … AS IDENTITY`) takes the values
//! rows leave out (or give as NULL) from a counter. The counter's high-water
//! mark is a MetaSchema row (`sequence:<storage name>.<field>`, `meta.last`; the
//! entity's [`EntityDef::storage_name`], so a renamed table keeps counting) in the
//! primary backend, written before any value it covers is handed out: no
//! value is handed out twice, even after a crash; values reserved by a
//! statement that then fails are skipped, as a Postgres sequence skips them.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema};
use heavenbase_catalog::system::SYS_METASCHEMA;
use heavenbase_catalog::{EntityDef, FieldDef, Identity, Row, coerce_column, derive_key_object_id, system_row_id};
use serde_json::{Value as Json, json};

use super::{EntityRuntime, Workspace};
use crate::{Error, ErrorKind, Result};

/// The MetaSchema row kind of an identity column's counter.
pub(super) const SEQUENCE_KIND: &str = "sequence";

/// The object_id a row's primary key gives it. `values` are the key fields'
/// values, coerced to their types, in key order; `given` is an object_id the
/// row carries itself, which must be the one its key gives.
pub(super) fn key_object_id(def: &EntityDef, key: &[String], values: &[Json], given: Option<&str>) -> Result<String> {
    let e = &def.entity_id;
    if let Some(i) = values.iter().position(|v| v.is_null()) {
        return Err(Error::new(ErrorKind::MissingValue, format!("Missing required field {e}.{} (the primary key)", key[i])));
    }
    let id = derive_key_object_id(def.storage_name(), values)
        .ok_or_else(|| Error::internal(format!("{e}: primary key values {values:?} are not integers or texts")))?;
    match given {
        Some(given) if given != id => Err(Error::invalid(format!(
            "{e}.object_id '{given}' is not the id of its primary key ({}) = ({}), which is '{id}': \
             a table with a primary key derives object_id from it",
            key.join(", "),
            key_text(values)
        ))),
        _ => Ok(id),
    }
}

/// Key values as a message shows them: `5, 'x'`.
pub(super) fn key_text(values: &[Json]) -> String {
    values
        .iter()
        .map(|v| match v {
            Json::String(s) => format!("'{s}'"),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn identity_fields(def: &EntityDef) -> impl Iterator<Item = (&FieldDef, Identity)> {
    def.fields.iter().filter_map(|f| f.identity.map(|i| (f, i)))
}

/// A value given for a `GENERATED ALWAYS` identity column (Postgres: 428C9).
fn generated_always(def: &EntityDef, f: &FieldDef) -> Error {
    Error::new(
        ErrorKind::GeneratedAlways,
        format!("cannot insert a non-DEFAULT value into column {}.{}: it is GENERATED ALWAYS AS IDENTITY", def.entity_id, f.name),
    )
}

impl Workspace {
    /// Give identity columns the values JSON rows leave out or give as NULL.
    pub(super) async fn fill_identity_rows(&self, rt: &EntityRuntime, rows: &mut [Row]) -> Result<()> {
        for (f, identity) in identity_fields(&rt.def) {
            let missing: Vec<usize> = (0..rows.len()).filter(|r| rows[*r].get(&f.name).is_none_or(Json::is_null)).collect();
            if identity == Identity::Always && missing.len() < rows.len() {
                return Err(generated_always(&rt.def, f));
            }
            if missing.is_empty() {
                continue;
            }
            let first = self.reserve_identity(rt.def.storage_name(), &f.name, missing.len()).await?;
            for (k, r) in missing.into_iter().enumerate() {
                rows[r].insert(f.name.clone(), json!(first + k as i64));
            }
        }
        Ok(())
    }

    /// Give identity columns the values a batch leaves out (the column is
    /// absent, or NULL in some rows, as DataFusion fills columns an INSERT does
    /// not name).
    pub(super) async fn fill_identity_batch(&self, rt: &EntityRuntime, mut batch: RecordBatch) -> Result<RecordBatch> {
        for (f, identity) in identity_fields(&rt.def) {
            let n = batch.num_rows();
            let given = match batch.column_by_name(&f.name) {
                Some(a) => Some(
                    coerce_column(&f.ty, a)
                        .map_err(|bad| Error::invalid(format!("{}.{}: {}", rt.def.entity_id, f.name, bad.message)))?,
                ),
                None => None,
            };
            let missing = given.as_ref().map_or(n, |a| a.null_count());
            if identity == Identity::Always && missing < n {
                return Err(generated_always(&rt.def, f));
            }
            if missing == 0 {
                continue;
            }
            let mut next = self.reserve_identity(rt.def.storage_name(), &f.name, missing).await?;
            let given = given.as_ref().map(|a| a.as_primitive::<Int64Type>());
            let values: Int64Array = (0..n)
                .map(|r| match given.filter(|g| g.is_valid(r)) {
                    Some(g) => Some(g.value(r)),
                    None => {
                        next += 1;
                        Some(next - 1)
                    }
                })
                .collect();
            batch = with_column(&batch, &f.name, Arc::new(values))?;
        }
        Ok(batch)
    }

    /// Reserve `n` values of an identity column's counter and return the
    /// first; the new high-water mark is stored before this returns.
    /// `entity` is the entity's storage name.
    async fn reserve_identity(&self, entity: &str, field: &str, n: usize) -> Result<i64> {
        let key = format!("{entity}.{field}");
        let mut counters = self.inner.sequences.lock().await;
        let last = match counters.get(&key) {
            Some(last) => *last,
            None => self.stored_sequence(&key).await?,
        };
        let new_last = i64::try_from(n).ok().and_then(|n| last.checked_add(n)).ok_or_else(|| {
            Error::new(ErrorKind::OutOfRange, format!("identity column {key} has reached its maximum value ({last})"))
        })?;
        let row = json!({
            "object_id": system_row_id(SEQUENCE_KIND, &key), "kind": SEQUENCE_KIND, "subject_id": entity,
            "name": field, "field": field, "ws": self.id(), "meta": {"last": new_last},
        });
        self.store_counters(vec![row.as_object().cloned().expect("object")]).await?;
        counters.insert(key, new_last);
        Ok(last + 1)
    }

    /// The stored high-water mark of counter `entity.field` (0 when it has none).
    async fn stored_sequence(&self, key: &str) -> Result<i64> {
        let rt = self.runtime(SYS_METASCHEMA)?;
        let rows = self.get_many_unlocked(&rt, &[system_row_id(SEQUENCE_KIND, key)]).await?;
        Ok(rows.into_iter().flatten().next().and_then(|r| r.get("meta")?.get("last")?.as_i64()).unwrap_or(0))
    }

    /// Start the identity counters of `rt` over (`TRUNCATE … RESTART IDENTITY`):
    /// the next value drawn is 1 again, stored before this returns.
    pub(super) async fn restart_identities(&self, rt: &EntityRuntime) -> Result<()> {
        let entity = rt.def.storage_name();
        let mut counters = self.inner.sequences.lock().await;
        for (f, _) in identity_fields(&rt.def) {
            let key = format!("{entity}.{}", f.name);
            let row = json!({
                "object_id": system_row_id(SEQUENCE_KIND, &key), "kind": SEQUENCE_KIND, "subject_id": entity,
                "name": f.name, "field": f.name, "ws": self.id(), "meta": {"last": 0},
            });
            self.store_counters(vec![row.as_object().cloned().expect("object")]).await?;
            counters.insert(key, 0);
        }
        Ok(())
    }

    /// Forget the counters of a dropped entity, by its storage name (their
    /// rows go with its MetaSchema rows).
    pub(super) async fn forget_sequences(&self, entity: &str) {
        let prefix = format!("{entity}.");
        self.inner.sequences.lock().await.retain(|k, _| !k.starts_with(&prefix));
    }
}

/// `batch` with column `name` replaced by (or, when absent, extended with) `array`.
fn with_column(batch: &RecordBatch, name: &str, array: ArrayRef) -> Result<RecordBatch> {
    let schema = batch.schema();
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    let mut columns = batch.columns().to_vec();
    let field = Field::new(name, DataType::Int64, true);
    match schema.index_of(name) {
        Ok(i) => {
            fields[i] = field;
            columns[i] = array;
        }
        Err(_) => {
            fields.push(field);
            columns.push(array);
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .map_err(|e| Error::with_source(ErrorKind::Internal, e.to_string(), e))
}
