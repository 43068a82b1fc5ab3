//! The entity table: one DataFusion table whose columns are stitched by
//! `object_id` from the entity's field groups.
//!
//! - Only groups holding projected or filtered columns are read (plus the primary
//!   group, which decides which rows exist).
//! - A filter goes to the group owning its columns, Exact when that backend runs it
//!   natively; on a non-primary group only null-rejecting filters are pushed (a row
//!   missing there reads as NULL, which such a filter rejects anyway).
//! - `object_id = …` / `IN (…)` become key lookups in every group; the ids that
//!   survive the filtered groups reach the other groups as key lookups.
//! - With one group, the scan (and its LIMIT) goes straight to the backend.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use async_trait::async_trait;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, UInt32Array};
use datafusion::arrow::compute::{concat_batches, take};
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::scalar::ScalarValue;
use heavenbase_catalog::OBJECT_ID;
use heavenbase_providers::group_table::{project_to, scan_exec};
use heavenbase_providers::{Backend, Dialect, FederationScope, GroupSpec, LazyBatchesExec, Pushdown, ScanRequest};

use datafusion::datasource::sink::{DataSink, DataSinkExec};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType};
use futures::StreamExt;
use heavenbase_catalog::{EntityDef, LogicalType, derive_key_object_id};

use crate::workspace::write::WriteMode;
use crate::workspace::{EntityRuntime, Inner, Workspace};

/// Above this many surviving ids, a group is scanned whole and joined in memory
/// rather than probed key by key.
const KEY_LOOKUP_LIMIT: usize = 50_000;

#[derive(Debug)]
pub struct EntityTable {
    rt: Arc<EntityRuntime>,
    schema: SchemaRef,
    /// The workspace, for INSERT through the write path (weak: the workspace owns
    /// the session that owns this table).
    ws: Weak<Inner>,
    defaults: HashMap<String, Expr>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Workspace({})", self.id)
    }
}

/// An entity table as a federated statement sees it: the backend and dialect
/// that run the statement, the table it names, and each column's type.
pub(crate) struct FederatedTable {
    pub backend: Arc<dyn Backend>,
    pub dialect: Dialect,
    pub table: String,
    pub types: Vec<(String, LogicalType)>,
}

impl EntityTable {
    pub(crate) fn new(rt: Arc<EntityRuntime>, ws: Weak<Inner>) -> Self {
        let defaults = rt
            .def
            .fields
            .iter()
            .filter_map(|f| {
                let expr = match f.default_fn {
                    // Evaluated by DataFusion once per statement, as Postgres does.
                    Some(heavenbase_catalog::DefaultFn::Now) => {
                        datafusion::functions::datetime::now(&Default::default()).call(vec![])
                    }
                    Some(heavenbase_catalog::DefaultFn::CurrentDate) => {
                        datafusion::functions::datetime::current_date().call(vec![])
                    }
                    // Volatile: a UUID for each row.
                    Some(heavenbase_catalog::DefaultFn::RandomUuid) => crate::uuids::gen_random_uuid().call(vec![]),
                    None => default_literal(&f.ty, f.default.as_ref()?)?,
                };
                Some((f.name.clone(), expr))
            })
            .collect();
        EntityTable { schema: table_schema(&rt.def), rt, ws, defaults }
    }

    /// The entity this table presents.
    pub fn def(&self) -> &EntityDef {
        &self.rt.def
    }

    pub(crate) fn runtime(&self) -> &Arc<EntityRuntime> {
        &self.rt
    }

    /// Where an entity stored whole in one table of a backend with a SQL engine
    /// can be read by a federated statement (engine/src/federation.rs).
    pub(crate) fn federated_table(&self) -> Option<FederatedTable> {
        let [(backend, group)] = self.rt.groups.as_slice() else { return None };
        let engine = backend.sql_engine()?;
        if engine.federation() == FederationScope::Off {
            return None;
        }
        Some(FederatedTable {
            backend: backend.clone(),
            dialect: engine.dialect(),
            table: group.table.clone(),
            types: self.rt.def.fields.iter().map(|f| (f.name.clone(), f.ty.clone())).collect(),
        })
    }

    /// Index of the group a column is read from (object_id: the primary).
    fn group_of(&self, column: &str) -> Option<usize> {
        if column == OBJECT_ID {
            return Some(0);
        }
        self.rt.groups.iter().position(|(_, g)| g.column(column).is_some())
    }

    /// Where a filter runs: `Ids` for object_id lookups, `Group(i)` when group i
    /// runs it exactly, None when DataFusion applies it after the stitch.
    fn route(&self, filter: &Expr) -> Option<Route> {
        if let Some(ids) = id_literals(filter) {
            return Some(Route::Ids(ids));
        }
        let cols = filter.column_refs();
        let mut groups: Vec<usize> =
            cols.iter().filter(|c| c.name != OBJECT_ID).map(|c| self.group_of(&c.name)).collect::<Option<_>>()?;
        groups.sort_unstable();
        groups.dedup();
        let g = match groups.as_slice() {
            [] => 0,
            [g] => *g,
            _ => return None,
        };
        let (backend, group) = &self.rt.groups[g];
        if backend.filter_pushdown(group, filter) != Pushdown::Exact {
            return None;
        }
        if g != 0 && !null_rejecting(filter) {
            return None;
        }
        Some(Route::Group(g))
    }
}

/// An entity's SQL table: its fields in declaration order, each in its
/// logical type's Arrow type; only object_id is never NULL.
pub(crate) fn table_schema(def: &EntityDef) -> SchemaRef {
    let fields: Vec<_> = def
        .fields
        .iter()
        .map(|f| datafusion::arrow::datatypes::Field::new(&f.name, f.ty.arrow_type(), f.name != OBJECT_ID))
        .collect();
    Arc::new(Schema::new(fields))
}

impl EntityTable {
    /// The object_ids that equality filters on every field of a declared
    /// primary key select (`id = 5`, `id IN (5, 6)`, `a = 1 AND b = 'x'`): the
    /// ids derive from the key, so the scan becomes a key lookup. The filters
    /// themselves still run.
    fn key_ids(&self, filters: &[Expr]) -> Option<Vec<String>> {
        let key = self.rt.def.id_source.key()?;
        let mut values: Vec<Option<Vec<serde_json::Value>>> = vec![None; key.len()];
        for f in filters {
            if let Some((column, list)) = column_literals(f) {
                if let Some(i) = key.iter().position(|k| *k == column) {
                    values[i] = Some(list);
                }
            }
        }
        let values: Vec<Vec<serde_json::Value>> = values.into_iter().collect::<Option<_>>()?;
        let e = self.rt.def.storage_name();
        match values.as_slice() {
            [one] => one.iter().map(|v| derive_key_object_id(e, std::slice::from_ref(v))).collect(),
            // Several fields: one value each (a product of IN lists stays a filter).
            several if several.iter().all(|v| v.len() == 1) => {
                let parts: Vec<serde_json::Value> = several.iter().map(|v| v[0].clone()).collect();
                Some(vec![derive_key_object_id(e, &parts)?])
            }
            _ => None,
        }
    }
}

/// `column = literal` or `column IN (literals)` with integer or text literals,
/// as the key's JSON values.
fn column_literals(e: &Expr) -> Option<(String, Vec<serde_json::Value>)> {
    let value = |e: &Expr| match e {
        Expr::Literal(v, _) => match v {
            ScalarValue::Int64(Some(n)) => Some(serde_json::json!(n)),
            ScalarValue::Int32(Some(n)) => Some(serde_json::json!(n)),
            ScalarValue::Int16(Some(n)) => Some(serde_json::json!(n)),
            ScalarValue::Int8(Some(n)) => Some(serde_json::json!(n)),
            ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s)) | ScalarValue::LargeUtf8(Some(s)) => {
                Some(serde_json::json!(s))
            }
            _ => None,
        },
        _ => None,
    };
    match e {
        Expr::BinaryExpr(BinaryExpr { left, op: Operator::Eq, right }) => match (left.as_ref(), right.as_ref()) {
            (Expr::Column(c), v) | (v, Expr::Column(c)) => Some((c.name.clone(), vec![value(v)?])),
            _ => None,
        },
        Expr::InList(l) if !l.negated => match l.expr.as_ref() {
            Expr::Column(c) => Some((c.name.clone(), l.list.iter().map(value).collect::<Option<_>>()?)),
            _ => None,
        },
        _ => None,
    }
}

/// A field default as a SQL literal, for INSERTs that leave the column out.
fn default_literal(ty: &LogicalType, default: &serde_json::Value) -> Option<Expr> {
    use serde_json::Value as Json;
    let value = match (ty, default) {
        (LogicalType::Json, v) => ScalarValue::Utf8(Some(v.to_string())),
        (LogicalType::Timestamp, v) => {
            ScalarValue::TimestampMillisecond(Some(heavenbase_catalog::types::coerce_timestamp(v).ok()?), Some("UTC".into()))
        }
        // A list default (`n int[] DEFAULT '{7,8}'`) as the one-row list the
        // column holds, built as the write path builds it.
        (LogicalType::Array { .. } | LogicalType::Vector { .. }, v) => {
            let mut list = heavenbase_catalog::ColumnBuilder::new(ty, 1);
            list.push(&ty.coerce(v).ok()?).ok()?;
            ScalarValue::try_from_array(&list.finish(), 0).ok()?
        }
        (LogicalType::Artifact, _) => return None,
        (LogicalType::Float, Json::Number(n)) => ScalarValue::Float64(n.as_f64()),
        (_, Json::Number(n)) if n.is_i64() => ScalarValue::Int64(n.as_i64()),
        (_, Json::Number(n)) => ScalarValue::Float64(n.as_f64()),
        (_, Json::String(s)) => ScalarValue::Utf8(Some(s.clone())),
        (_, Json::Bool(b)) => ScalarValue::Boolean(Some(*b)),
        _ => return None,
    };
    Some(Expr::Literal(value, None))
}

enum Route {
    Ids(Vec<String>),
    Group(usize),
}

/// `object_id = 'x'` or `object_id IN ('x', 'y')`.
fn id_literals(e: &Expr) -> Option<Vec<String>> {
    let text = |e: &Expr| match e {
        Expr::Literal(ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s)) | ScalarValue::LargeUtf8(Some(s)), _) => {
            Some(s.clone())
        }
        _ => None,
    };
    let is_id = |e: &Expr| matches!(e, Expr::Column(c) if c.name == OBJECT_ID);
    match e {
        Expr::BinaryExpr(BinaryExpr { left, op: Operator::Eq, right }) => {
            if is_id(left) {
                Some(vec![text(right)?])
            } else if is_id(right) {
                Some(vec![text(left)?])
            } else {
                None
            }
        }
        Expr::InList(l) if !l.negated && is_id(&l.expr) => l.list.iter().map(text).collect(),
        _ => None,
    }
}

/// A filter that is never true when its columns are NULL.
fn null_rejecting(e: &Expr) -> bool {
    match e {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
            Operator::And => null_rejecting(left) || null_rejecting(right),
            Operator::Or => null_rejecting(left) && null_rejecting(right),
            Operator::Eq | Operator::NotEq | Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq => true,
            _ => false,
        },
        Expr::IsNotNull(_) | Expr::Like(_) | Expr::Between(_) => true,
        Expr::InList(l) => !l.negated,
        Expr::Column(_) => true,
        _ => false,
    }
}

#[async_trait]
impl TableProvider for EntityTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn get_column_default(&self, column: &str) -> Option<&Expr> {
        self.defaults.get(column)
    }

    /// INSERT goes through the workspace write path (`Workspace::write_batch`:
    /// validation and coercion on the Arrow columns, id derivation, every field
    /// group, the Catalog), as a DataFusion `DataSinkExec` over [`EntitySink`].
    /// `INSERT` refuses existing ids; `REPLACE INTO` / `INSERT OR REPLACE`
    /// replaces them.
    async fn insert_into(
        &self,
        _state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        op: InsertOp,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let mode = match op {
            InsertOp::Append => WriteMode::Insert,
            _ => WriteMode::Upsert,
        };
        // The sink takes the input's schema as it is: the write path checks
        // required fields and ids itself, with messages that name them.
        let sink = EntitySink { ws: self.ws.clone(), entity: self.rt.def.entity_id.clone(), mode, schema: input.schema() };
        Ok(Arc::new(DataSinkExec::new(input, Arc::new(sink), None)))
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| match self.route(f) {
                Some(_) => TableProviderFilterPushDown::Exact,
                None => TableProviderFilterPushDown::Unsupported,
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let overlay = crate::workspace::transaction::of_config(state.config()).and_then(|t| t.overlay(&self.rt.def.entity_id));
        match overlay {
            Some(overlay) => self.scan_with_overlay(state, projection, filters, overlay),
            None => self.scan_stored(projection, filters, limit),
        }
    }
}

impl EntityTable {
    /// Inside a transaction block that has changed this entity: the stored
    /// rows of objects the block did not touch, and the block's own rows,
    /// each filtered by `filters` (the stored ones in their backends, as
    /// outside a block; the held ones here).
    fn scan_with_overlay(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        overlay: Arc<crate::workspace::transaction::Overlay>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        use datafusion::common::DFSchema;
        use datafusion::physical_expr::expressions::{Column as PhysicalColumn, in_list, lit};
        use datafusion::physical_plan::filter::FilterExec;
        use datafusion::physical_plan::union::UnionExec;
        let out_schema = match projection {
            Some(p) => Arc::new(self.schema.project(p)?),
            None => self.schema.clone(),
        };
        let id_index = self.schema.index_of(OBJECT_ID)?;
        let stored = self.scan_stored(None, filters, None)?;
        let untouched = in_list(
            Arc::new(PhysicalColumn::new(OBJECT_ID, id_index)),
            overlay.touched().iter().map(|id| lit(id.clone())).collect(),
            &true,
            &self.schema,
        )?;
        let stored: Arc<dyn ExecutionPlan> = Arc::new(FilterExec::try_new(untouched, stored)?);
        let held = overlay.batch(&self.rt.def).map_err(|e| DataFusionError::External(Box::new(e)))?;
        let mut held: Arc<dyn ExecutionPlan> =
            datafusion::datasource::memory::MemorySourceConfig::try_new_exec(&[vec![held]], self.schema.clone(), None)?;
        if let Some(predicate) = datafusion::logical_expr::utils::conjunction(filters.iter().cloned()) {
            let df_schema = DFSchema::try_from(self.schema.as_ref().clone())?;
            held = Arc::new(FilterExec::try_new(state.create_physical_expr(predicate, &df_schema)?, held)?);
        }
        project_to(UnionExec::try_new(vec![stored, held])?, &out_schema)
    }

    /// The committed rows, read from the entity's field groups.
    fn scan_stored(
        &self,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let out_schema = match projection {
            Some(p) => Arc::new(self.schema.project(p)?),
            None => self.schema.clone(),
        };
        let n = self.rt.groups.len();
        let mut ids: Option<Vec<String>> = None;
        let mut group_filters: Vec<Vec<Expr>> = vec![Vec::new(); n];
        for f in filters {
            match self.route(f) {
                Some(Route::Ids(list)) => {
                    ids = Some(match ids {
                        None => list,
                        Some(prev) => prev.into_iter().filter(|i| list.contains(i)).collect(),
                    })
                }
                Some(Route::Group(g)) => group_filters[g].push(f.clone()),
                None => return Err(DataFusionError::Internal(format!("filter {f} was not accepted"))),
            }
        }
        if let Some(key_ids) = self.key_ids(filters) {
            ids = Some(match ids {
                None => key_ids,
                Some(prev) => prev.into_iter().filter(|i| key_ids.contains(i)).collect(),
            });
        }
        let mut group_columns: Vec<Vec<String>> = vec![Vec::new(); n];
        for field in out_schema.fields() {
            if field.name() != OBJECT_ID {
                let g = self.group_of(field.name()).expect("schema column has a group");
                group_columns[g].push(field.name().clone());
            }
        }
        let needed: Vec<usize> =
            (0..n).filter(|g| *g == 0 || !group_columns[*g].is_empty() || !group_filters[*g].is_empty()).collect();
        let ids = ids.map(Arc::new);

        if needed == [0] {
            let (backend, group) = &self.rt.groups[0];
            let request = ScanRequest { columns: group_columns[0].clone(), filters: group_filters[0].clone(), ids, limit };
            return Ok(Arc::new(scan_exec(backend.clone(), group.clone(), request, &out_schema)?));
        }

        let plan = Arc::new(StitchPlan {
            groups: needed
                .iter()
                .map(|g| {
                    let (backend, group) = &self.rt.groups[*g];
                    GroupScan {
                        backend: backend.clone(),
                        group: group.clone(),
                        columns: group_columns[*g].clone(),
                        filters: group_filters[*g].clone(),
                    }
                })
                .collect(),
            ids,
            limit,
            schema: out_schema.clone(),
        });
        let described = plan.clone();
        let run_plan = plan.clone();
        Ok(Arc::new(LazyBatchesExec::new(
            "StitchExec",
            Arc::new(move || described.describe()),
            out_schema,
            Arc::new(move || {
                let p = run_plan.clone();
                Box::pin(async move { p.run().await })
            }),
        )))
    }
}

/// What a stitched scan reads from one field group.
struct GroupScan {
    backend: Arc<dyn Backend>,
    group: GroupSpec,
    /// The group's columns the query needs (object_id comes with every batch).
    columns: Vec<String>,
    /// Filters the group's backend runs itself.
    filters: Vec<Expr>,
}

/// The per-query plan of a stitched scan; `groups[0]` is the primary.
struct StitchPlan {
    groups: Vec<GroupScan>,
    ids: Option<Arc<Vec<String>>>,
    limit: Option<usize>,
    schema: SchemaRef,
}

impl StitchPlan {
    /// Filtered groups first (they narrow the ids), primary first among equals.
    fn order(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.groups.len()).collect();
        order.sort_by_key(|g| (self.groups[*g].filters.is_empty(), *g != 0));
        order
    }

    fn describe(&self) -> String {
        let order = self.order();
        let parts: Vec<String> = order
            .iter()
            .map(|g| {
                let GroupScan { backend, group, columns: cols, filters } = &self.groups[*g];
                let how = if filters.is_empty() && (self.ids.is_some() || *g != order[0]) {
                    "key lookup"
                } else if filters.is_empty() {
                    "scan"
                } else {
                    "filtered scan"
                };
                let pushed: Vec<String> = filters.iter().map(|f| f.to_string()).collect();
                format!(
                    "group[{}{}] backend={} ({}) {how} columns=[{}] pushed=[{}] native=[{}]",
                    group.table,
                    if *g == 0 { ", primary" } else { "" },
                    backend.info().name,
                    backend.info().kind,
                    cols.join(", "),
                    pushed.join(" AND "),
                    if filters.is_empty() { "-" } else { "exact" }
                )
            })
            .collect();
        let ids = self.ids.as_ref().map(|i| format!(" ids={}", i.len())).unwrap_or_default();
        format!("{}{ids}; then join by object_id", parts.join("; "))
    }

    async fn scan_batches(&self, g: usize, ids: Option<Arc<Vec<String>>>) -> DfResult<Vec<RecordBatch>> {
        let GroupScan { backend, group, columns: cols, filters } = &self.groups[g];
        let request = ScanRequest { columns: cols.clone(), filters: filters.clone(), ids, limit: None };
        backend.scan(group, &request).await.map_err(|e| DataFusionError::External(Box::new(e)))
    }

    fn concat(&self, g: usize, mut batches: Vec<RecordBatch>) -> DfResult<RecordBatch> {
        if batches.len() == 1 {
            return Ok(batches.pop().expect("one batch"));
        }
        let GroupScan { group, columns: cols, .. } = &self.groups[g];
        Ok(concat_batches(&heavenbase_providers::backend::scan_schema(group, cols), &batches)?)
    }

    async fn scan_group(&self, g: usize, ids: Option<Arc<Vec<String>>>) -> DfResult<RecordBatch> {
        let batches = self.scan_batches(g, ids).await?;
        self.concat(g, batches)
    }

    async fn run(&self) -> DfResult<Vec<RecordBatch>> {
        let narrowing = self.ids.is_some() || self.groups.iter().any(|g| !g.filters.is_empty());
        if narrowing {
            let results = self.run_narrowing().await?;
            return Ok(vec![self.stitch(&results)?]);
        }
        // Nothing narrows the rows: read every group whole, concurrently.
        let scans = futures::future::try_join_all((0..self.groups.len()).map(|g| self.scan_batches(g, None))).await?;
        if let Some(zipped) = self.zip_aligned(&scans)? {
            return Ok(zipped);
        }
        let results = scans.into_iter().enumerate().map(|(g, b)| self.concat(g, b)).collect::<DfResult<Vec<_>>>()?;
        Ok(vec![self.stitch(&results)?])
    }

    /// Groups written together hand out batches with the very same ids (often the
    /// same buffers): put their columns side by side, batch by batch, no copy.
    fn zip_aligned(&self, scans: &[Vec<RecordBatch>]) -> DfResult<Option<Vec<RecordBatch>>> {
        let primary = &scans[0];
        for other in &scans[1..] {
            if other.len() != primary.len() {
                return Ok(None);
            }
            for (a, b) in primary.iter().zip(other) {
                let (a, b) = (a.column(0).to_data(), b.column(0).to_data());
                if !(a.ptr_eq(&b) || a == b) {
                    return Ok(None);
                }
            }
        }
        let mut remaining = self.limit.unwrap_or(usize::MAX);
        let mut out = Vec::with_capacity(primary.len());
        for (i, p) in primary.iter().enumerate() {
            if remaining == 0 {
                break;
            }
            let rows = p.num_rows().min(remaining);
            remaining -= rows;
            let mut columns = Vec::with_capacity(self.schema.fields().len());
            for field in self.schema.fields() {
                let g = self.group_index(field.name());
                let b = &scans[g][i];
                columns.push(b.column(b.schema().index_of(field.name())?).slice(0, rows));
            }
            out.push(RecordBatch::try_new_with_options(
                self.schema.clone(),
                columns,
                &datafusion::arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(rows)),
            )?);
        }
        Ok(Some(out))
    }

    fn group_index(&self, column: &str) -> usize {
        if column == OBJECT_ID {
            return 0;
        }
        self.groups.iter().position(|g| g.columns.iter().any(|c| c == column)).expect("column has a group")
    }

    /// Filtered groups first; the ids that survive reach the next group as key
    /// lookups (or, past KEY_LOOKUP_LIMIT, as a whole scan joined in memory).
    async fn run_narrowing(&self) -> DfResult<Vec<RecordBatch>> {
        let mut ids = self.ids.clone();
        let mut results: Vec<Option<RecordBatch>> = vec![None; self.groups.len()];
        for g in self.order() {
            let lookup = ids.as_ref().filter(|i| i.len() <= KEY_LOOKUP_LIMIT).cloned();
            let batch = self.scan_group(g, lookup).await?;
            // Groups without filters do not narrow the row set, except the primary.
            if !self.groups[g].filters.is_empty() || g == 0 {
                let col = batch.column(0).as_string::<i32>();
                let keep: Option<std::collections::HashSet<&str>> = ids.as_ref().map(|i| i.iter().map(String::as_str).collect());
                let found: Vec<String> =
                    col.iter().flatten().filter(|id| keep.as_ref().is_none_or(|k| k.contains(id))).map(String::from).collect();
                ids = Some(Arc::new(found));
            }
            results[g] = Some(batch);
        }
        let survivors: std::collections::HashSet<String> = ids.map(|i| i.iter().cloned().collect()).unwrap_or_default();
        // Keep only surviving primary rows; the stitch follows the primary's order.
        let primary = results[0].take().expect("primary scanned");
        let mask: datafusion::arrow::array::BooleanArray =
            primary.column(0).as_string::<i32>().iter().map(|id| Some(id.is_some_and(|id| survivors.contains(id)))).collect();
        results[0] = Some(datafusion::arrow::compute::filter_record_batch(&primary, &mask)?);
        Ok(results.into_iter().map(|r| r.expect("group scanned")).collect())
    }

    /// Align every group's columns to the primary's rows by object_id. Groups that
    /// hold the same ids in the same order (groups written together, or sorted by
    /// key) are zipped without hashing.
    fn stitch(&self, results: &[RecordBatch]) -> DfResult<RecordBatch> {
        let primary = &results[0];
        let rows = self.limit.map_or(primary.num_rows(), |l| l.min(primary.num_rows()));
        let primary_ids = primary.column(0).as_string::<i32>();
        let mut positions: Vec<Option<Option<UInt32Array>>> = vec![None; results.len()];
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
        for field in self.schema.fields() {
            let g = self.group_index(field.name());
            let batch = &results[g];
            let source = batch.column(batch.schema().index_of(field.name())?);
            // None: aligned with the primary; Some(idx): gather by idx.
            let idx = positions[g].get_or_insert_with(|| {
                let ids = batch.column(0).as_string::<i32>();
                if g == 0 || (ids.len() >= rows && ids.slice(0, rows) == primary_ids.slice(0, rows)) {
                    return None;
                }
                let at: HashMap<&str, u32> = ids.iter().enumerate().filter_map(|(i, id)| Some((id?, i as u32))).collect();
                Some(primary_ids.iter().take(rows).map(|id| id.and_then(|id| at.get(id).copied())).collect())
            });
            columns.push(match idx {
                None => source.slice(0, rows),
                Some(idx) => take(source.as_ref(), idx, None)?,
            });
        }
        Ok(RecordBatch::try_new_with_options(
            self.schema.clone(),
            columns,
            &datafusion::arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(rows)),
        )?)
    }
}

/// Where an INSERT's rows go: the workspace write path.
///
/// The input's batches are gathered and written as one batch, so a statement
/// that fails anywhere (a bad value in its last row, a duplicate id) writes
/// nothing: without a transaction to undo earlier batches, that is the only way
/// to keep a failed INSERT from leaving part of its rows behind. The gathered
/// rows are Arrow columns (no per-row objects); streaming batch by batch waits
/// for transactions (see docs/design.md).
#[derive(Debug)]
pub(crate) struct EntitySink {
    ws: Weak<Inner>,
    entity: String,
    mode: WriteMode,
    schema: SchemaRef,
}

impl DisplayAs for EntitySink {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EntitySink: entity={} mode={:?}", self.entity, self.mode)
    }
}

#[async_trait]
impl DataSink for EntitySink {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    async fn write_all(&self, mut data: SendableRecordBatchStream, context: &Arc<TaskContext>) -> DfResult<u64> {
        let inner = self.ws.upgrade().ok_or_else(|| DataFusionError::Execution("the workspace was closed".into()))?;
        // Inside a transaction block the block holds the rows.
        let ws = Workspace::for_session(inner, context.session_config());
        let mut batches = Vec::new();
        while let Some(batch) = data.next().await {
            batches.push(batch?);
        }
        let batch = concat_batches(&self.schema, &batches)?;
        drop(batches);
        let n = batch.num_rows() as u64;
        if n > 0 {
            ws.write_batch(&self.entity, batch, self.mode).await.map_err(|e| DataFusionError::External(Box::new(e)))?;
        }
        Ok(n)
    }
}

/// The text values of the first column of `batches` (object_ids, as scans
/// and write plans put them first), NULLs left out.
pub(crate) fn first_column_ids(batches: &[RecordBatch]) -> Vec<String> {
    batches.iter().flat_map(|b| b.column(0).as_string::<i32>().iter().flatten().map(String::from).collect::<Vec<_>>()).collect()
}
