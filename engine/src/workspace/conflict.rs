//! `INSERT … ON CONFLICT`: what an INSERT does with a row whose object_id is
//! taken (for a table with a declared primary key: whose key is taken, since
//! the id derives from the key).
//!
//! - `DO NOTHING`: the row is skipped, and so is a later row of the same
//!   statement with the same key (as Postgres skips it).
//! - `DO UPDATE SET col = expr, … [WHERE cond]`: the stored row is patched, the
//!   expressions evaluated over the stored row (named by the table) and the
//!   proposed one (`excluded`); a row the WHERE rejects is left as it is. One
//!   statement cannot update a row twice (21000), as in Postgres.
//!
//! The ids are locked from the existence check to the last write, so a
//! concurrent writer cannot slip between them (`count = t.count + 1` from many
//! clients adds up).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch, UInt32Array};
use datafusion::arrow::compute::{concat_batches, filter_record_batch, take};
use datafusion::common::{Column, DFSchemaRef};
use datafusion::datasource::TableProvider;
use datafusion::logical_expr::{Expr, lit};
use heavenbase_catalog::{OBJECT_ID, coerce_column};

use super::write::PreparedBatch;
use super::{EntityRuntime, Workspace};
use crate::{Error, ErrorKind, Result};

/// What an INSERT does with a row whose object_id exists already.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Conflict {
    /// A plain INSERT: the statement is refused (23505) and writes nothing.
    Fail,
    /// `REPLACE INTO` / `INSERT OR REPLACE`: the row is replaced whole.
    Replace,
    /// `ON CONFLICT DO NOTHING`: the row is skipped.
    Skip,
    /// `ON CONFLICT … DO UPDATE`: the stored row is patched.
    Update(ConflictUpdate),
}

/// `DO UPDATE SET col = expr, … [WHERE cond]`, planned over `schema`: the
/// table's columns (qualified by the table) then the proposed row's
/// (qualified `excluded`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConflictUpdate {
    pub assignments: Vec<(String, Expr)>,
    pub selection: Option<Expr>,
    pub schema: DFSchemaRef,
}

impl Conflict {
    /// As EXPLAIN shows it.
    pub(crate) fn describe(&self) -> &'static str {
        match self {
            Conflict::Fail => "fail",
            Conflict::Replace => "replace",
            Conflict::Skip => "do nothing",
            Conflict::Update(_) => "do update",
        }
    }

    /// The expressions a plan node shows and binds parameters in.
    pub(crate) fn expressions(&self) -> Vec<Expr> {
        match self {
            Conflict::Update(u) => u.assignments.iter().map(|(_, e)| e.clone()).chain(u.selection.clone()).collect(),
            _ => Vec::new(),
        }
    }

    /// The same conflict with its expressions replaced (in [`Conflict::expressions`] order).
    pub(crate) fn with_expressions(&self, mut exprs: Vec<Expr>) -> Conflict {
        match self {
            Conflict::Update(u) => {
                let selection = u.selection.as_ref().and_then(|_| exprs.pop());
                let assignments = u.assignments.iter().map(|(c, _)| c.clone()).zip(exprs).collect();
                Conflict::Update(ConflictUpdate { assignments, selection, schema: u.schema.clone() })
            }
            other => other.clone(),
        }
    }
}

impl Workspace {
    /// Write an INSERT's rows, meeting existing ones as `conflict` says, and
    /// answer the rows as written (inserted, replaced or updated; not the
    /// skipped ones) in input order, in the entity table's columns.
    pub(crate) async fn insert_rows(&self, entity: &str, batch: RecordBatch, conflict: &Conflict) -> Result<RecordBatch> {
        let update = match conflict {
            Conflict::Fail => return self.write_batch_returning(entity, batch, super::write::WriteMode::Insert).await,
            Conflict::Replace => return self.write_batch_returning(entity, batch, super::write::WriteMode::Upsert).await,
            Conflict::Skip => None,
            Conflict::Update(u) => Some(u),
        };
        let rt = self.runtime(entity)?;
        let e = rt.def.entity_id.clone();
        let prepared = self.prepare_arrow(&rt, batch, false).await?;
        let schema = crate::table::table_schema(&rt.def);
        let proposed =
            RecordBatch::try_new(schema.clone(), rt.def.fields.iter().map(|f| prepared.columns[&f.name].clone()).collect())
                .map_err(internal)?;
        let _locks = self.lock_ids(&prepared.ids).await?;
        let existing = self.existing_ids(&rt, &prepared.ids).await?;
        // Each row: inserted, or meeting a stored row (or one this statement inserts).
        let mut seen: HashSet<&str> = HashSet::with_capacity(prepared.ids.len());
        let (mut fresh, mut clashing) = (Vec::new(), Vec::new());
        for (row, id) in prepared.ids.iter().enumerate() {
            let first = seen.insert(id.as_str());
            if existing.contains(id) || !first {
                if update.is_some() && !first {
                    return Err(Error::new(
                        ErrorKind::CardinalityViolation,
                        format!(
                            "ON CONFLICT DO UPDATE command cannot affect row a second time: {e} object_id '{id}' \
                             is proposed twice in one statement"
                        ),
                    ));
                }
                clashing.push(row);
            } else {
                fresh.push(row);
            }
        }
        let inserted = take_rows(&proposed, &fresh)?;
        let updated = match update {
            Some(u) if !clashing.is_empty() => {
                let stored =
                    self.stored_rows(&rt, &clashing.iter().map(|r| prepared.ids[*r].clone()).collect::<Vec<_>>()).await?;
                let state = self.session().state();
                let (patched, kept) = patch_rows(&state, &rt, u, &stored, &take_rows(&proposed, &clashing)?)?;
                clashing = clashing.into_iter().zip(kept).filter_map(|(r, k)| k.then_some(r)).collect();
                Some(patched)
            }
            _ => None,
        };
        if inserted.num_rows() > 0 {
            self.write_prepared(&rt, prepared_of(&inserted)).await?;
        }
        let Some(updated) = updated else { return Ok(inserted) };
        if updated.num_rows() > 0 {
            self.write_prepared(&rt, prepared_of(&updated)).await?;
        }
        // Back to input order: the inserted rows, then the updated ones, sorted by row.
        let both = concat_batches(&schema, [&inserted, &updated]).map_err(internal)?;
        let mut order: Vec<(usize, u32)> = fresh.iter().chain(&clashing).copied().zip(0u32..).collect();
        order.sort_unstable();
        let indices = UInt32Array::from(order.into_iter().map(|(_, i)| i).collect::<Vec<_>>());
        take_batch(&both, &indices)
    }

    /// The stored rows of `ids`, in that order, in the entity table's columns.
    async fn stored_rows(&self, rt: &Arc<EntityRuntime>, ids: &[String]) -> Result<RecordBatch> {
        let table = crate::table::EntityTable::new(rt.clone(), Arc::downgrade(&self.inner));
        let state = self.session().state();
        let filter = Expr::Column(Column::from_name(OBJECT_ID)).in_list(ids.iter().map(|id| lit(id.as_str())).collect(), false);
        let plan = table.scan(&state, None, &[filter], None).await?;
        let batches = datafusion::physical_plan::collect(plan, state.task_ctx()).await?;
        let found = concat_batches(&table.schema(), &batches).map_err(internal)?;
        let column = found.column(0).as_string::<i32>();
        let at: HashMap<&str, u32> = (0..found.num_rows()).map(|r| (column.value(r), r as u32)).collect();
        let indices: Vec<u32> = ids
            .iter()
            .map(|id| {
                at.get(id.as_str()).copied().ok_or_else(|| Error::internal(format!("stored row '{id}' vanished under its lock")))
            })
            .collect::<Result<_>>()?;
        take_batch(&found, &UInt32Array::from(indices))
    }
}

/// The stored rows patched by `DO UPDATE`'s assignments (evaluated over each
/// stored row beside its proposed one), and which rows its WHERE kept.
fn patch_rows(
    state: &datafusion::execution::SessionState,
    rt: &EntityRuntime,
    update: &ConflictUpdate,
    stored: &RecordBatch,
    proposed: &RecordBatch,
) -> Result<(RecordBatch, Vec<bool>)> {
    let both_schema = Arc::new(update.schema.as_arrow().clone());
    let both = RecordBatch::try_new(both_schema, stored.columns().iter().chain(proposed.columns()).cloned().collect())
        .map_err(internal)?;
    let evaluate = |expr: &Expr| -> Result<ArrayRef> {
        // The session's planner coerces types (`t.n + excluded.price`) as a SELECT's would.
        let physical = state.create_physical_expr(expr.clone(), &update.schema)?;
        Ok(physical.evaluate(&both)?.into_array(both.num_rows())?)
    };
    let mut columns = stored.columns().to_vec();
    for (name, expr) in &update.assignments {
        let f = rt
            .def
            .get(name)
            .ok_or_else(|| Error::unknown_field(format!("Unknown column '{name}' in ON CONFLICT of '{}'", rt.def.entity_id)))?;
        let value = evaluate(expr)?;
        let value = coerce_column(&f.ty, &value)
            .map_err(|bad| Error::invalid(format!("{}.{name}: {} (ON CONFLICT DO UPDATE)", rt.def.entity_id, bad.message)))?;
        let i = stored.schema().index_of(name).map_err(internal)?;
        columns[i] = value;
    }
    let patched = RecordBatch::try_new(stored.schema(), columns).map_err(internal)?;
    let Some(selection) = &update.selection else {
        return Ok((patched, vec![true; stored.num_rows()]));
    };
    let keep = evaluate(selection)?;
    let keep: &BooleanArray =
        keep.as_boolean_opt().ok_or_else(|| Error::argument("ON CONFLICT … WHERE must be a boolean condition"))?;
    let kept: Vec<bool> = (0..keep.len()).map(|r| keep.is_valid(r) && keep.value(r)).collect();
    let mask = BooleanArray::from(kept.clone());
    Ok((filter_record_batch(&patched, &mask).map_err(internal)?, kept))
}

/// Rows of a batch in the entity table's layout as the write path takes them
/// (already validated: they came out of it, or out of the store).
fn prepared_of(batch: &RecordBatch) -> PreparedBatch {
    let ids = batch.column(0).as_string::<i32>().iter().map(|v| v.unwrap_or_default().to_string()).collect();
    let columns = batch.schema().fields().iter().zip(batch.columns()).map(|(f, a)| (f.name().clone(), a.clone())).collect();
    PreparedBatch { ids, columns }
}

fn take_rows(batch: &RecordBatch, rows: &[usize]) -> Result<RecordBatch> {
    take_batch(batch, &UInt32Array::from(rows.iter().map(|r| *r as u32).collect::<Vec<_>>()))
}

fn take_batch(batch: &RecordBatch, indices: &UInt32Array) -> Result<RecordBatch> {
    let columns = batch
        .columns()
        .iter()
        .map(|c| take(c.as_ref(), indices, None))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(internal)?;
    RecordBatch::try_new(batch.schema(), columns).map_err(internal)
}

fn internal(e: datafusion::arrow::error::ArrowError) -> Error {
    Error::with_source(ErrorKind::Internal, e.to_string(), e)
}
