//! A DataFusion table over one field group of one backend: projection, filters
//! (Exact where the backend runs them natively) and limit reach the backend.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{RecordBatch, RecordBatchOptions};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use futures::StreamExt;

use crate::backend::{Backend, GroupSpec, Pushdown, ScanRequest, scan_schema};
use crate::exec::LazyBatchesExec;

#[derive(Debug)]
pub struct GroupTable {
    backend: Arc<dyn Backend>,
    group: GroupSpec,
}

impl GroupTable {
    pub fn new(backend: Arc<dyn Backend>, group: GroupSpec) -> Self {
        GroupTable { backend, group }
    }
}

/// A plan that runs `request` against `backend` when executed, its batches
/// given `out`'s columns (picked by name from the backend's object_id-first
/// columns): no projection plan above it, which a key lookup would build and
/// throw away per statement.
pub fn scan_exec(
    backend: Arc<dyn Backend>,
    group: GroupSpec,
    request: ScanRequest,
    out: &SchemaRef,
) -> DfResult<LazyBatchesExec> {
    let scanned = scan_schema(&group, &request.columns);
    let picked: Vec<usize> = out.fields().iter().map(|f| scanned.index_of(f.name())).collect::<Result<_, _>>()?;
    let identity = picked.len() == scanned.fields().len() && picked.iter().enumerate().all(|(i, p)| i == *p);
    let out = out.clone();
    let request = Arc::new(request);
    let detail = {
        let (backend, group, request) = (backend.clone(), group.clone(), request.clone());
        Arc::new(move || {
            format!("backend={} ({}) {}", backend.info().name, backend.info().kind, backend.explain_scan(&group, &request))
        })
    };
    let schema = out.clone();
    Ok(LazyBatchesExec::streaming(
        "BackendScanExec",
        detail,
        schema,
        Arc::new(move || {
            let backend = backend.clone();
            let group = group.clone();
            let request = request.clone();
            let (out, picked) = (out.clone(), picked.clone());
            let batches =
                async move { backend.scan_stream(&group, &request).await.map_err(|e| DataFusionError::External(Box::new(e))) };
            futures::stream::once(batches)
                .map(|r| match r {
                    Ok(s) => s.map(|b| b.map_err(|e| DataFusionError::External(Box::new(e)))).left_stream(),
                    Err(e) => futures::stream::iter([Err(e)]).right_stream(),
                })
                .flatten()
                .map(move |batch| if identity { batch } else { pick_columns(batch?, &out, &picked) })
                .boxed()
        }),
    ))
}

/// `batch`'s columns at `picked`, as a batch of `out`.
fn pick_columns(batch: RecordBatch, out: &SchemaRef, picked: &[usize]) -> DfResult<RecordBatch> {
    let columns = picked.iter().map(|i| batch.column(*i).clone()).collect();
    let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    Ok(RecordBatch::try_new_with_options(out.clone(), columns, &options)?)
}

/// `exec`'s columns, picked by name, in the order and selection of `out`.
pub fn project_to(exec: Arc<dyn ExecutionPlan>, out: &SchemaRef) -> DfResult<Arc<dyn ExecutionPlan>> {
    let input = exec.schema();
    if input.fields().len() == out.fields().len() && input.fields().iter().zip(out.fields()).all(|(a, b)| a.name() == b.name()) {
        return Ok(exec);
    }
    let exprs = out
        .fields()
        .iter()
        .map(|f| {
            let idx = input.index_of(f.name())?;
            Ok((Arc::new(datafusion::physical_expr::expressions::Column::new(f.name(), idx)) as _, f.name().clone()))
        })
        .collect::<DfResult<Vec<_>>>()?;
    Ok(Arc::new(datafusion::physical_plan::projection::ProjectionExec::try_new(exprs, exec)?))
}

#[async_trait]
impl TableProvider for GroupTable {
    fn schema(&self) -> SchemaRef {
        self.group.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| match self.backend.filter_pushdown(&self.group, f) {
                Pushdown::Exact => TableProviderFilterPushDown::Exact,
                Pushdown::Unsupported => TableProviderFilterPushDown::Unsupported,
            })
            .collect())
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let schema = self.group.schema();
        let wanted: Vec<usize> = projection.cloned().unwrap_or_else(|| (0..schema.fields().len()).collect());
        let columns: Vec<String> = wanted.iter().filter(|i| **i != 0).map(|i| schema.field(*i).name().clone()).collect();
        let request = ScanRequest { columns, filters: filters.to_vec(), ids: None, limit };
        Ok(Arc::new(scan_exec(self.backend.clone(), self.group.clone(), request, &Arc::new(schema.project(&wanted)?))?))
    }
}
