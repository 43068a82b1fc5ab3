//! The in-memory backend: each field group is a list of Arrow batches plus an
//! object_id → (batch, row) index. Upserts append and tombstone the old row;
//! scans hand out the live rows batch by batch (zero-copy when a batch has no
//! tombstones); key lookups go through the index. Filters are left to DataFusion,
//! whose vectorised kernels are as fast as anything this module would do.

use std::collections::HashMap;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch};
use datafusion::arrow::compute::{concat_batches, filter_record_batch, interleave_record_batch};
use datafusion::logical_expr::Expr;
use heavenbase_catalog::BackendInfo;
use parking_lot::RwLock;
use serde_json::{Value as Json, json};

use crate::backend::{Backend, ColumnChange, GroupSpec, Pushdown, ScanRequest, scan_schema};
use crate::{ProviderError, Result};

#[derive(Debug, Default)]
struct Table {
    batches: Vec<RecordBatch>,
    /// Per batch, per row: still live?
    live: Vec<Vec<bool>>,
    dead_in_batch: Vec<usize>,
    index: HashMap<String, (u32, u32)>,
    dead: usize,
}

impl Table {
    fn kill(&mut self, b: u32, r: u32) {
        self.live[b as usize][r as usize] = false;
        self.dead_in_batch[b as usize] += 1;
        self.dead += 1;
    }

    /// Fold everything into one batch once tombstones outnumber live rows.
    fn maybe_compact(&mut self) -> Result<()> {
        if self.dead < 1024 || self.dead < self.index.len() {
            return Ok(());
        }
        let Some(first) = self.batches.first() else { return Ok(()) };
        let schema = first.schema();
        let live = self.live_batches()?;
        let merged = concat_batches(&schema, &live).map_err(|e| ProviderError::Config(e.to_string()))?;
        self.index = merged
            .column(0)
            .as_string::<i32>()
            .iter()
            .enumerate()
            .map(|(i, id)| (id.unwrap_or_default().to_string(), (0u32, i as u32)))
            .collect();
        self.live = vec![vec![true; merged.num_rows()]];
        self.dead_in_batch = vec![0];
        self.batches = vec![merged];
        self.dead = 0;
        Ok(())
    }

    fn live_batches(&self) -> Result<Vec<RecordBatch>> {
        let mut out = Vec::with_capacity(self.batches.len());
        for (i, b) in self.batches.iter().enumerate() {
            if self.dead_in_batch[i] == 0 {
                out.push(b.clone());
            } else if self.dead_in_batch[i] < b.num_rows() {
                let mask = BooleanArray::from(self.live[i].clone());
                out.push(filter_record_batch(b, &mask).map_err(|e| ProviderError::Config(e.to_string()))?);
            }
        }
        Ok(out)
    }
}

#[derive(Debug)]
pub struct InmemBackend {
    info: BackendInfo,
    tables: RwLock<HashMap<String, Table>>,
}

impl InmemBackend {
    pub fn new(name: &str) -> Self {
        InmemBackend {
            info: BackendInfo {
                name: name.into(),
                kind: "inmem".into(),
                // No `search` tag: LongText stays with the row backend (docs/reference.md §3.4);
                // the registry wraps an instance that is a search backend (crate::indexed).
                tags: vec!["row".into(), "text".into(), "vector".into()],
            },
            tables: RwLock::new(HashMap::new()),
        }
    }

    fn missing(&self, table: &str) -> ProviderError {
        ProviderError::Backend {
            backend: self.info.name.clone(),
            kind: "inmem".into(),
            message: format!("no table '{table}' (ensure_group was not called)"),
        }
    }
}

fn project(batch: &RecordBatch, group: &GroupSpec, columns: &[String]) -> Result<RecordBatch> {
    let schema = group.schema();
    let mut idx = vec![0usize];
    idx.extend(columns.iter().filter_map(|c| schema.index_of(c).ok()));
    batch.project(&idx).map_err(|e| ProviderError::Config(e.to_string()))
}

#[async_trait]
impl Backend for InmemBackend {
    fn info(&self) -> &BackendInfo {
        &self.info
    }

    fn describe(&self) -> Json {
        json!({"name": self.info.name, "type": "inmem", "tags": self.info.tags})
    }

    async fn ensure_group(&self, group: &GroupSpec) -> Result<()> {
        let mut tables = self.tables.write();
        let table = tables.entry(group.table.clone()).or_default();
        // Additive evolution: widen stored batches with the new columns,
        // holding their default (NULL when there is none) in every stored row.
        let schema = group.schema();
        for b in table.batches.iter_mut() {
            if b.schema().fields().len() != schema.fields().len() {
                let cols = schema
                    .fields()
                    .iter()
                    .map(|f| match (b.column_by_name(f.name()), group.column(f.name())) {
                        (Some(c), _) => Ok(c.clone()),
                        (None, Some(spec)) => {
                            let indices = datafusion::arrow::array::UInt32Array::from(vec![0u32; b.num_rows()]);
                            datafusion::arrow::compute::take(&spec.default_array(), &indices, None)
                                .map_err(|e| ProviderError::Config(e.to_string()))
                        }
                        (None, None) => Ok(datafusion::arrow::array::new_null_array(f.data_type(), b.num_rows())),
                    })
                    .collect::<Result<Vec<ArrayRef>>>()?;
                *b = RecordBatch::try_new(schema.clone(), cols).map_err(|e| ProviderError::Config(e.to_string()))?;
            }
        }
        Ok(())
    }

    async fn alter_group(&self, group: &GroupSpec, change: &ColumnChange) -> Result<()> {
        let mut tables = self.tables.write();
        let table = tables.get_mut(&group.table).ok_or_else(|| self.missing(&group.table))?;
        for b in table.batches.iter_mut() {
            let schema = b.schema();
            let mut fields = Vec::with_capacity(schema.fields().len());
            let mut columns = Vec::with_capacity(schema.fields().len());
            for (f, c) in schema.fields().iter().zip(b.columns()) {
                match change {
                    ColumnChange::Drop(name) if f.name() == name => continue,
                    ColumnChange::Rename { from, to } if f.name() == from => fields.push(f.as_ref().clone().with_name(to)),
                    _ => fields.push(f.as_ref().clone()),
                }
                columns.push(c.clone());
            }
            let schema = std::sync::Arc::new(datafusion::arrow::datatypes::Schema::new(fields));
            *b = RecordBatch::try_new(schema, columns).map_err(|e| ProviderError::Config(e.to_string()))?;
        }
        Ok(())
    }

    async fn upsert(&self, group: &GroupSpec, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let mut tables = self.tables.write();
        let table = tables.get_mut(&group.table).ok_or_else(|| self.missing(&group.table))?;
        let batch = if batch.num_columns() < group.schema().fields().len() { complete(group, table, &batch)? } else { batch };
        // Unique fields: refuse a value another live row already holds.
        for ix in group.indexes.iter().filter(|i| i.unique) {
            check_unique(&self.info.name, group, table, &batch, &ix.fields)?;
        }
        let b = table.batches.len() as u32;
        let ids = batch.column(0).as_string::<i32>().clone();
        for (r, id) in ids.iter().enumerate() {
            let id = id.unwrap_or_default();
            if let Some((ob, or)) = table.index.insert(id.to_string(), (b, r as u32)) {
                table.kill(ob, or);
            }
        }
        table.live.push(vec![true; batch.num_rows()]);
        table.dead_in_batch.push(0);
        table.batches.push(batch);
        table.maybe_compact()
    }

    async fn delete(&self, group: &GroupSpec, ids: &[String]) -> Result<Vec<String>> {
        let mut tables = self.tables.write();
        let table = tables.get_mut(&group.table).ok_or_else(|| self.missing(&group.table))?;
        let mut existed = Vec::new();
        for id in ids {
            if let Some((b, r)) = table.index.remove(id) {
                table.kill(b, r);
                existed.push(id.clone());
            }
        }
        table.maybe_compact()?;
        Ok(existed)
    }

    fn filter_pushdown(&self, _group: &GroupSpec, _filter: &Expr) -> Pushdown {
        Pushdown::Unsupported
    }

    async fn scan(&self, group: &GroupSpec, request: &ScanRequest) -> Result<Vec<RecordBatch>> {
        let tables = self.tables.read();
        let table = tables.get(&group.table).ok_or_else(|| self.missing(&group.table))?;
        let schema = scan_schema(group, &request.columns);
        let mut out = Vec::new();
        if let Some(ids) = &request.ids {
            let positions: Vec<(usize, usize)> =
                ids.iter().filter_map(|id| table.index.get(id)).map(|(b, r)| (*b as usize, *r as usize)).collect();
            if positions.is_empty() {
                return Ok(vec![RecordBatch::new_empty(schema)]);
            }
            let batches: Vec<&RecordBatch> = table.batches.iter().collect();
            let picked = interleave_record_batch(&batches, &positions).map_err(|e| ProviderError::Config(e.to_string()))?;
            out.push(project(&picked, group, &request.columns)?);
        } else {
            let mut remaining = request.limit.unwrap_or(usize::MAX);
            for b in table.live_batches()? {
                if remaining == 0 {
                    break;
                }
                let b = if b.num_rows() > remaining { b.slice(0, remaining) } else { b };
                remaining -= b.num_rows();
                out.push(project(&b, group, &request.columns)?);
            }
        }
        if out.is_empty() {
            out.push(RecordBatch::new_empty(schema));
        }
        Ok(out)
    }

    async fn count(&self, group: &GroupSpec) -> Result<usize> {
        Ok(self.tables.read().get(&group.table).map_or(0, |t| t.index.len()))
    }

    async fn drop_group(&self, group: &GroupSpec) -> Result<()> {
        self.tables.write().remove(&group.table);
        Ok(())
    }

    fn explain_scan(&self, group: &GroupSpec, request: &ScanRequest) -> String {
        match &request.ids {
            Some(ids) => format!("key lookup of {} ids in {}", ids.len(), group.table),
            None => format!("full scan of {}{}", group.table, request.limit.map(|l| format!(" limit {l}")).unwrap_or_default()),
        }
    }
}

/// Widen a batch holding some of the group's columns to all of them: a left-out
/// column keeps the stored value of an existing row, or takes its default.
fn complete(group: &GroupSpec, table: &Table, batch: &RecordBatch) -> Result<RecordBatch> {
    use datafusion::arrow::compute::interleave;
    let err = |e: datafusion::arrow::error::ArrowError| ProviderError::Config(e.to_string());
    let schema = group.schema();
    let ids = batch.column(0).as_string::<i32>();
    // Source `n` (one past the stored batches) is the one-row batch of defaults.
    let defaults = table.batches.len();
    let positions: Vec<(usize, usize)> = ids
        .iter()
        .map(|id| match id.and_then(|id| table.index.get(id)) {
            Some((b, r)) => (*b as usize, *r as usize),
            None => (defaults, 0),
        })
        .collect();
    let mut columns = Vec::with_capacity(schema.fields().len());
    for (i, f) in schema.fields().iter().enumerate() {
        if let Some(c) = batch.column_by_name(f.name()) {
            columns.push(c.clone());
            continue;
        }
        let default = group.column(f.name()).map(|c| c.default_array()).expect("group column");
        let mut sources: Vec<&dyn Array> = table.batches.iter().map(|b| b.column(i).as_ref()).collect();
        sources.push(default.as_ref());
        columns.push(interleave(&sources, &positions).map_err(err)?);
    }
    RecordBatch::try_new(schema, columns).map_err(err)
}

fn check_unique(backend: &str, group: &GroupSpec, table: &Table, batch: &RecordBatch, fields: &[String]) -> Result<()> {
    use datafusion::arrow::util::display::array_value_to_string;
    let key = |b: &RecordBatch, r: usize| -> Option<String> {
        let mut parts = Vec::new();
        for f in fields {
            let col = b.column_by_name(f)?;
            if col.is_null(r) {
                return None; // uniqueness applies to non-null values
            }
            parts.push(array_value_to_string(col, r).ok()?);
        }
        Some(parts.join("\u{1f}"))
    };
    let incoming: std::collections::HashSet<&str> = batch.column(0).as_string::<i32>().iter().flatten().collect();
    let mut seen: HashMap<String, String> = HashMap::new();
    for (bi, b) in table.batches.iter().enumerate() {
        let ids = b.column(0).as_string::<i32>();
        for r in 0..b.num_rows() {
            if !table.live[bi][r] || incoming.contains(ids.value(r)) {
                continue;
            }
            if let Some(k) = key(b, r) {
                seen.insert(k, ids.value(r).to_string());
            }
        }
    }
    let ids = batch.column(0).as_string::<i32>();
    for r in 0..batch.num_rows() {
        if let Some(k) = key(batch, r) {
            if let Some(other) = seen.insert(k, ids.value(r).to_string()) {
                return Err(ProviderError::Unique {
                    backend: backend.into(),
                    table: group.table.clone(),
                    message: format!("({}) already held by object_id '{other}'", fields.join(", ")),
                });
            }
        }
    }
    Ok(())
}
