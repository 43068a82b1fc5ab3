//! An execution plan whose batches come from one async computation run when the
//! plan executes (never while planning), and that shows what it will do in EXPLAIN.
//! The computation yields either all its batches at once or a stream of them.
//! What EXPLAIN shows may be rendered only when shown: a key lookup over the
//! wire builds one of these plans per statement and is never explained.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::Result as DfResult;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties};
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{StreamExt, stream};

pub type BatchesFuture = BoxFuture<'static, DfResult<Vec<RecordBatch>>>;
pub type BatchesFn = Arc<dyn Fn() -> BatchesFuture + Send + Sync>;
pub type BatchStreamFn = Arc<dyn Fn() -> BoxStream<'static, DfResult<RecordBatch>> + Send + Sync>;
/// What EXPLAIN shows of the plan, rendered when shown.
pub type DetailFn = Arc<dyn Fn() -> String + Send + Sync>;

pub struct LazyBatchesExec {
    name: &'static str,
    detail: DetailFn,
    schema: SchemaRef,
    run: BatchStreamFn,
    properties: Arc<PlanProperties>,
}

impl LazyBatchesExec {
    pub fn new(name: &'static str, detail: DetailFn, schema: SchemaRef, run: BatchesFn) -> Self {
        let run: BatchStreamFn = Arc::new(move || {
            stream::once(run())
                .map(|r| match r {
                    Ok(batches) => stream::iter(batches.into_iter().map(Ok)).left_stream(),
                    Err(e) => stream::iter(vec![Err(e)]).right_stream(),
                })
                .flatten()
                .boxed()
        });
        Self::with_stream(name, detail, schema, run, EmissionType::Final)
    }

    /// A plan whose execution is the stream `run` returns; `detail` renders
    /// what EXPLAIN shows of it.
    pub fn streaming(name: &'static str, detail: DetailFn, schema: SchemaRef, run: BatchStreamFn) -> Self {
        Self::with_stream(name, detail, schema, run, EmissionType::Incremental)
    }

    fn with_stream(name: &'static str, detail: DetailFn, schema: SchemaRef, run: BatchStreamFn, emission: EmissionType) -> Self {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            Partitioning::UnknownPartitioning(1),
            emission,
            Boundedness::Bounded,
        ));
        LazyBatchesExec { name, detail, schema, run, properties }
    }

    /// A plan that runs `produce` once per execution for one batch in `full`
    /// schema, and returns its `projection` (a table provider's scan request).
    pub fn projected<F>(
        name: &'static str,
        detail: String,
        full: &SchemaRef,
        projection: Option<&Vec<usize>>,
        produce: F,
    ) -> DfResult<Self>
    where
        F: Fn() -> BoxFuture<'static, DfResult<RecordBatch>> + Send + Sync + 'static,
    {
        let schema = match projection {
            Some(p) => Arc::new(full.project(p)?),
            None => full.clone(),
        };
        let projection = projection.cloned();
        let run: BatchesFn = Arc::new(move || {
            let batch = produce();
            let projection = projection.clone();
            Box::pin(async move {
                let batch = batch.await?;
                Ok(vec![match &projection {
                    Some(p) => batch.project(p)?,
                    None => batch,
                }])
            })
        });
        Ok(Self::new(name, Arc::new(move || detail.clone()), schema, run))
    }
}

impl fmt::Debug for LazyBatchesExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name, (self.detail)())
    }
}

impl DisplayAs for LazyBatchesExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}: {}", self.name, (self.detail)())
    }
}

impl ExecutionPlan for LazyBatchesExec {
    fn name(&self) -> &str {
        self.name
    }
    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }
    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }
    fn with_new_children(self: Arc<Self>, _: Vec<Arc<dyn ExecutionPlan>>) -> DfResult<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }
    fn execute(&self, _partition: usize, _context: Arc<TaskContext>) -> DfResult<SendableRecordBatchStream> {
        Ok(Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), (self.run)())))
    }
}
