//! `INSERT … RETURNING` and `INSERT … ON CONFLICT`, planned once like every
//! other statement.
//!
//! DataFusion plans an INSERT as `LogicalPlan::Dml`, whose only output is a
//! row count, and refuses RETURNING and ON CONFLICT. Here the INSERT without
//! those clauses is planned by DataFusion as usual; its input (the rows, from
//! VALUES or a query, with any `$n` parameters) goes under a [`WrittenRows`]
//! node that writes them through the workspace write path (meeting existing
//! rows as the ON CONFLICT clause says, `workspace/conflict.rs`) and yields
//! them as written (object_ids derived, identity values drawn, defaults
//! filled). RETURNING is a projection over that node; without RETURNING the
//! node sits in a `LogicalPlan::Dml` that [`Workspace::execute_dml`] runs and
//! counts. Either way the plan is an ordinary logical plan: parameters bind
//! with `with_param_values`, and clients are told its result columns (or that
//! it has none) at Describe.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Weak};

use async_trait::async_trait;
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::{Column, DFSchema, DFSchemaRef, TableReference};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::context::{QueryPlanner, SessionState};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{
    DmlStatement, Expr, Extension, LogicalPlan, LogicalPlanBuilder, UserDefinedLogicalNode, UserDefinedLogicalNodeCore, WriteOp,
};
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties};
use datafusion::physical_planner::{DefaultPhysicalPlanner, ExtensionPlanner, PhysicalPlanner};
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{
    AssignmentTarget, ConflictTarget, ExprWithAlias, OnConflictAction, OnInsert, SelectItem, Statement,
};
use futures::StreamExt;
use heavenbase_catalog::OBJECT_ID;

use crate::workspace::conflict::{Conflict, ConflictUpdate};
use crate::workspace::{EntityRuntime, Inner, Workspace};
use crate::{Error, Result};

/// What a [`WrittenRows`] node does with its input.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Action {
    /// Insert the input's rows, meeting existing ones as the conflict says.
    Insert(Conflict),
    /// Patch the rows the input names (object_id, then the new values).
    Update,
    /// Delete the rows the input names (object_id).
    Delete,
}

impl Action {
    fn describe(&self) -> String {
        match self {
            Action::Insert(c) => format!("insert on conflict {}", c.describe()),
            Action::Update => "update".into(),
            Action::Delete => "delete".into(),
        }
    }
}

/// The entity a [`WrittenRows`] node writes, under the name its columns are
/// qualified with (crate::lineage).
pub(crate) fn written_entity(node: &dyn UserDefinedLogicalNode) -> Option<(String, Arc<EntityRuntime>)> {
    let written = node.as_any().downcast_ref::<WrittenRows>()?;
    let rt = written.ws.upgrade()?.entities.read().get(&written.entity)?.clone();
    Some((written.table.table().to_string(), rt))
}

/// Writes its input's rows into an entity and yields them as written, in the
/// entity table's columns: inserted or updated rows as they are now, deleted
/// rows as they were.
pub(crate) struct WrittenRows {
    table: TableReference,
    entity: String,
    action: Action,
    input: LogicalPlan,
    /// For DO UPDATE: an empty relation of the stored and proposed rows'
    /// columns (the table's, then `excluded`), the node's second input, so
    /// DataFusion's analyzer resolves and coerces the SET and WHERE
    /// expressions against the columns they name. It yields no rows.
    scope: Option<LogicalPlan>,
    schema: DFSchemaRef,
    ws: Weak<Inner>,
}

impl fmt::Debug for WrittenRows {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        UserDefinedLogicalNodeCore::fmt_for_explain(self, f)
    }
}

// A plan node compares by what it does, not by the workspace handle.
impl PartialEq for WrittenRows {
    fn eq(&self, other: &Self) -> bool {
        self.table == other.table && self.entity == other.entity && self.action == other.action && self.input == other.input
    }
}

impl Eq for WrittenRows {}

impl PartialOrd for WrittenRows {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        (&self.entity, &self.input).partial_cmp(&(&other.entity, &other.input))
    }
}

impl Hash for WrittenRows {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.table.hash(state);
        self.entity.hash(state);
        self.action.hash(state);
        self.input.hash(state);
    }
}

impl UserDefinedLogicalNodeCore for WrittenRows {
    fn name(&self) -> &str {
        "WrittenRows"
    }
    fn inputs(&self) -> Vec<&LogicalPlan> {
        std::iter::once(&self.input).chain(&self.scope).collect()
    }
    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }
    fn expressions(&self) -> Vec<Expr> {
        match &self.action {
            Action::Insert(c) => c.expressions(),
            _ => Vec::new(),
        }
    }
    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "WrittenRows: entity={} {}", self.entity, self.action.describe())
    }
    fn with_exprs_and_inputs(&self, exprs: Vec<Expr>, mut inputs: Vec<LogicalPlan>) -> DfResult<Self> {
        let scope = if self.scope.is_some() { inputs.pop() } else { None };
        let input = inputs.pop().ok_or_else(|| DataFusionError::Internal("WrittenRows has an input".into()))?;
        Ok(WrittenRows {
            table: self.table.clone(),
            entity: self.entity.clone(),
            action: match &self.action {
                Action::Insert(c) => Action::Insert(c.with_expressions(exprs)),
                other => other.clone(),
            },
            input,
            scope,
            schema: self.schema.clone(),
            ws: self.ws.clone(),
        })
    }
}

impl Workspace {
    /// Plan an `INSERT … RETURNING` or `INSERT … ON CONFLICT` (None for any
    /// other statement, which DataFusion plans into the table's `insert_into`).
    /// With RETURNING the plan yields the list over each written row, in input
    /// order; without, it is a `LogicalPlan::Dml` for [`Workspace::execute_dml`].
    pub async fn plan_insert(&self, statement: &Statement) -> Result<Option<LogicalPlan>> {
        let Statement::Insert(insert) = statement else { return Ok(None) };
        if insert.returning.is_none() && insert.on.is_none() {
            return Ok(None);
        }
        let mut plain = insert.clone();
        plain.returning = None;
        plain.on = None;
        let state = self.session().state();
        let plan = state.statement_to_plan(DfStatement::Statement(Box::new(Statement::Insert(plain)))).await?;
        let LogicalPlan::Dml(dml) = plan else {
            return Err(Error::internal(format!("DataFusion planned {statement} as something other than an INSERT")));
        };
        let rt = self.runtime(dml.table_name.table())?;
        let schema =
            Arc::new(DFSchema::try_from_qualified_schema(dml.table_name.clone(), crate::table::table_schema(&rt.def).as_ref())?);
        let conflict = match (&insert.on, &dml.op) {
            (Some(on), _) => self.plan_conflict(&state, &rt.def, &schema, on)?,
            (None, WriteOp::Insert(InsertOp::Append)) => Conflict::Fail,
            (None, WriteOp::Insert(_)) => Conflict::Replace,
            (None, other) => return Err(Error::internal(format!("an INSERT planned as {other}"))),
        };
        let scope = match &conflict {
            Conflict::Update(u) => Some(LogicalPlan::EmptyRelation(datafusion::logical_expr::EmptyRelation {
                produce_one_row: false,
                schema: u.schema.clone(),
            })),
            _ => None,
        };
        let node = WrittenRows {
            table: dml.table_name.clone(),
            entity: rt.def.entity_id.clone(),
            action: Action::Insert(conflict),
            input: Arc::unwrap_or_clone(dml.input),
            scope,
            schema: schema.clone(),
            ws: Arc::downgrade(&self.inner),
        };
        let written = LogicalPlan::Extension(Extension { node: Arc::new(node) });
        let Some(returning) = &insert.returning else {
            let ids = LogicalPlanBuilder::from(written)
                .project(vec![Expr::Column(Column::new(Some(dml.table_name.clone()), OBJECT_ID))])?
                .build()?;
            return Ok(Some(LogicalPlan::Dml(DmlStatement::new(dml.table_name, dml.target, dml.op, Arc::new(ids)))));
        };
        Ok(Some(returning_plan(&state, &rt.def, &dml.table_name, &schema, written, returning)?))
    }

    /// `UPDATE … RETURNING` / `DELETE … RETURNING` over the plan of the rows
    /// it changes (`rows`: object_id, then an UPDATE's new values): the list
    /// over each row as the statement leaves it (a deleted row as it was).
    /// `shown_as`: the name RETURNING qualifies the table's columns with (an
    /// alias the statement gave it, or its name).
    pub(crate) fn plan_changed_rows(
        &self,
        table: &TableReference,
        shown_as: &TableReference,
        delete: bool,
        rows: LogicalPlan,
        returning: &[SelectItem],
    ) -> Result<LogicalPlan> {
        let rt = self.runtime(table.table())?;
        let state = self.session().state();
        let schema =
            Arc::new(DFSchema::try_from_qualified_schema(shown_as.clone(), crate::table::table_schema(&rt.def).as_ref())?);
        let node = WrittenRows {
            table: table.clone(),
            entity: rt.def.entity_id.clone(),
            action: if delete { Action::Delete } else { Action::Update },
            input: rows,
            scope: None,
            schema: schema.clone(),
            ws: Arc::downgrade(&self.inner),
        };
        let written = LogicalPlan::Extension(Extension { node: Arc::new(node) });
        returning_plan(&state, &rt.def, shown_as, &schema, written, returning)
    }
}

/// The RETURNING list as a projection over the written rows (`schema`, the
/// table's columns): `*` is the table's `SELECT *`, without system columns.
fn returning_plan(
    state: &SessionState,
    def: &heavenbase_catalog::EntityDef,
    table: &TableReference,
    schema: &DFSchemaRef,
    written: LogicalPlan,
    returning: &[SelectItem],
) -> Result<LogicalPlan> {
    {
        let mut exprs = Vec::with_capacity(returning.len());
        for item in returning {
            let (expr, alias) = match item {
                // `*` is the table's `SELECT *`: without its system columns.
                SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..) => {
                    let shown = def.star_fields().map(|f| Expr::Column(Column::new(Some(table.clone()), &f.name)));
                    exprs.extend(shown);
                    continue;
                }
                SelectItem::UnnamedExpr(e) => (e.clone(), None),
                SelectItem::ExprWithAlias { expr, alias } => (expr.clone(), Some(alias.clone())),
                SelectItem::ExprWithAliases { .. } => {
                    return Err(Error::not_supported(format!("RETURNING {item} is not supported")));
                }
            };
            exprs.push(state.create_logical_expr_from_sql_expr(ExprWithAlias { expr, alias }, schema)?);
        }
        Ok(LogicalPlanBuilder::from(written).project(exprs)?.build()?)
    }
}

impl Workspace {
    /// `ON CONFLICT [(key)] DO NOTHING | DO UPDATE SET … [WHERE …]`. A conflict
    /// is a taken object_id, so the target must be the declared primary key
    /// (or object_id); DO UPDATE needs it named, and cannot assign the key.
    fn plan_conflict(
        &self,
        state: &datafusion::execution::SessionState,
        def: &heavenbase_catalog::EntityDef,
        schema: &DFSchemaRef,
        on: &OnInsert,
    ) -> Result<Conflict> {
        let e = &def.entity_id;
        let OnInsert::OnConflict(on) = on else {
            return Err(Error::not_supported(format!("INSERT INTO {e}: ON DUPLICATE KEY UPDATE is MySQL's; use ON CONFLICT")));
        };
        let key: Vec<String> = def.id_source.key().map(<[String]>::to_vec).unwrap_or_else(|| vec![OBJECT_ID.to_string()]);
        match &on.conflict_target {
            None => {}
            Some(ConflictTarget::Columns(columns)) => {
                let mut named: Vec<String> = columns.iter().map(|c| c.value.clone()).collect();
                let (mut want, mut by_id) = (key.clone(), vec![OBJECT_ID.to_string()]);
                named.sort();
                want.sort();
                by_id.sort();
                if named != want && named != by_id {
                    return Err(Error::not_supported(format!(
                        "INSERT INTO {e} … ON CONFLICT ({}): a conflict is on the primary key ({}); other unique constraints \
                         cannot be an ON CONFLICT target yet",
                        named.join(", "),
                        key.join(", ")
                    )));
                }
            }
            Some(ConflictTarget::OnConstraint(name)) => {
                return Err(Error::not_supported(format!(
                    "INSERT INTO {e} … ON CONFLICT ON CONSTRAINT {name}: name the key columns"
                )));
            }
        }
        let update = match &on.action {
            OnConflictAction::DoNothing => return Ok(Conflict::Skip),
            OnConflictAction::DoUpdate(update) => update,
        };
        if on.conflict_target.is_none() {
            return Err(Error::new(
                crate::ErrorKind::Syntax,
                format!(
                    "INSERT INTO {e} … ON CONFLICT DO UPDATE requires the conflict target: ON CONFLICT ({}) DO UPDATE",
                    key.join(", ")
                ),
            ));
        }
        // The stored row by the table's name, the proposed one as `excluded`.
        let excluded = DFSchema::try_from_qualified_schema("excluded", schema.as_arrow())?;
        let mut both = schema.as_ref().clone();
        both.merge(&excluded);
        let both = Arc::new(both);
        let mut assignments = Vec::with_capacity(update.assignments.len());
        for a in &update.assignments {
            let AssignmentTarget::ColumnName(column) = &a.target else {
                return Err(Error::not_supported(format!(
                    "INSERT INTO {e} … DO UPDATE SET (a, b) = …: assign columns one by one"
                )));
            };
            let name = column.0.last().and_then(|p| p.as_ident()).map(|i| i.value.clone()).unwrap_or_default();
            if def.get(&name).is_none() {
                return Err(Error::unknown_field(format!(
                    "Unknown column '{name}' in ON CONFLICT DO UPDATE of '{e}'.{}",
                    crate::error::suggest(&name, def.fields.iter().map(|f| f.name.as_str()))
                )));
            }
            if name == OBJECT_ID || key.contains(&name) {
                return Err(Error::not_supported(format!(
                    "INSERT INTO {e} … DO UPDATE cannot assign {name}: the conflict is on it"
                )));
            }
            let value = state.create_logical_expr_from_sql_expr(ExprWithAlias { expr: a.value.clone(), alias: None }, &both)?;
            assignments.push((name, value));
        }
        let selection = match &update.selection {
            Some(w) => Some(state.create_logical_expr_from_sql_expr(ExprWithAlias { expr: w.clone(), alias: None }, &both)?),
            None => None,
        };
        Ok(Conflict::Update(ConflictUpdate { assignments, selection, schema: both }))
    }
}

/// Runs [`WrittenRows`]: its input is gathered and written as one batch, as
/// the INSERT sink does (a statement that fails anywhere writes nothing).
struct WriteRowsExec {
    entity: String,
    action: Action,
    ws: Weak<Inner>,
    input: Arc<dyn ExecutionPlan>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl fmt::Debug for WriteRowsExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_as(DisplayFormatType::Default, f)
    }
}

impl DisplayAs for WriteRowsExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "WriteRowsExec: entity={} {}", self.entity, self.action.describe())
    }
}

impl ExecutionPlan for WriteRowsExec {
    fn name(&self) -> &str {
        "WriteRowsExec"
    }
    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }
    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }
    fn with_new_children(self: Arc<Self>, mut children: Vec<Arc<dyn ExecutionPlan>>) -> DfResult<Arc<dyn ExecutionPlan>> {
        let input = children.pop().ok_or_else(|| DataFusionError::Internal("WriteRowsExec has one input".into()))?;
        Ok(Arc::new(WriteRowsExec {
            entity: self.entity.clone(),
            action: self.action.clone(),
            ws: self.ws.clone(),
            input,
            schema: self.schema.clone(),
            properties: self.properties.clone(),
        }))
    }
    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> DfResult<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!("WriteRowsExec has one partition, not {partition}")));
        }
        let config = context.session_config().clone();
        let input = datafusion::physical_plan::execute_stream(self.input.clone(), context)?;
        let (ws, entity, action, schema) = (self.ws.clone(), self.entity.clone(), self.action.clone(), self.input.schema());
        let written = futures::stream::once(async move {
            let inner = ws.upgrade().ok_or_else(|| DataFusionError::Execution("the workspace was closed".into()))?;
            let batches: Vec<_> = input.collect::<Vec<_>>().await.into_iter().collect::<DfResult<_>>()?;
            let batch = concat_batches(&schema, &batches)?;
            drop(batches);
            // The transaction the statement runs in, if any, holds the write.
            let ws = Workspace::for_session(inner, &config);
            match &action {
                Action::Insert(conflict) => ws.insert_rows(&entity, batch, conflict).await,
                Action::Update => ws.change_rows(&entity, false, batch).await,
                Action::Delete => ws.change_rows(&entity, true, batch).await,
            }
            .map_err(|e| DataFusionError::External(Box::new(e)))
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), written.boxed())))
    }
}

/// Turns [`WrittenRows`] into [`WriteRowsExec`].
struct WritePlanner;

#[async_trait]
impl ExtensionPlanner for WritePlanner {
    async fn plan_extension(
        &self,
        _planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        _session_state: &SessionState,
    ) -> DfResult<Option<Arc<dyn ExecutionPlan>>> {
        let Some(node) = node.as_any().downcast_ref::<WrittenRows>() else { return Ok(None) };
        // The second input (DO UPDATE's scope) only names columns: it is not run.
        let Some(input) = physical_inputs.first() else {
            return Err(DataFusionError::Internal("WrittenRows has an input".into()));
        };
        let schema: SchemaRef = Arc::new(node.schema.as_arrow().clone());
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        ));
        Ok(Some(Arc::new(WriteRowsExec {
            entity: node.entity.clone(),
            action: node.action.clone(),
            ws: node.ws.clone(),
            input: input.clone(),
            schema,
            properties,
        })))
    }
}

/// The workspace session's query planner: DataFusion's, with the plan nodes
/// the workspace adds.
#[derive(Debug)]
pub(crate) struct WorkspacePlanner;

#[async_trait]
impl QueryPlanner for WorkspacePlanner {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session_state: &SessionState,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        DefaultPhysicalPlanner::with_extension_planners(vec![Arc::new(WritePlanner)])
            .create_physical_plan(logical_plan, session_state)
            .await
    }
}
