//! Federation: a subplan whose every table is an entity stored whole in one
//! Postgres backend (filters, projections, aggregates, ORDER BY … LIMIT, joins)
//! runs in that Postgres as one SQL statement.
//!
//! An optimizer rule of our own rather than datafusion-federation: it decides
//! federation per expression against an allow-list of forms whose Postgres
//! semantics equal DataFusion's (so a federated query returns what the stitched
//! plan would), it reads results straight into the types DataFusion planned
//! (casting Postgres' `numeric` sums and averages back to int8/float8 in the
//! statement), and it leaves entity tables as they are for every other query
//! and for writes.
//!
//! Left to DataFusion on purpose: lower/upper and ILIKE (Postgres with the "C"
//! collation folds ASCII only), float→integer casts (Postgres rounds, DataFusion
//! truncates), float→text casts (different spelling), timestamp literals, JSON,
//! list and vector columns, window functions, unions and subqueries in
//! expressions.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, DFSchema, JoinType, NullEquality, TableReference};
use datafusion::datasource::{TableProvider, TableType, provider_as_source, source_as_provider};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{BinaryExpr, Cast, Expr, ExprSchemable, LogicalPlan, LogicalPlanBuilder, Operator};
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::scalar::ScalarValue;
use datafusion::sql::sqlparser::ast::{self, SelectItem, SetExpr, Statement};
use datafusion::sql::unparser::Unparser;
use datafusion::sql::unparser::dialect::PostgreSqlDialect;
use heavenbase_catalog::LogicalType;
use heavenbase_providers::{Backend, LazyBatchesExec};

use crate::table::EntityTable;

/// The optimizer rule; added last to the workspace session's rules.
#[derive(Debug, Default)]
pub struct Federation;

impl OptimizerRule for Federation {
    fn name(&self) -> &str {
        "heavenbase_federation"
    }

    fn rewrite(&self, plan: LogicalPlan, _config: &dyn OptimizerConfig) -> DfResult<Transformed<LogicalPlan>> {
        federate(plan)
    }
}

fn federate(plan: LogicalPlan) -> DfResult<Transformed<LogicalPlan>> {
    // A lone scan already runs in its backend, with its filters and limit.
    if !matches!(plan, LogicalPlan::TableScan(_)) {
        let mut found = None;
        if remote_only(&plan, &mut found) {
            if let Some(backend) = found {
                if let Some(remote) = to_remote(&plan, backend)? {
                    return Ok(Transformed::yes(remote));
                }
            }
        }
    }
    plan.map_children(federate)
}

/// The Arrow types a federated result may hold: those Postgres returns as the
/// same values (text, int8/int4, float8/float4, bool, date).
fn readable(ty: &DataType) -> bool {
    matches!(
        ty,
        DataType::Utf8
            | DataType::Int64
            | DataType::Int32
            | DataType::Float64
            | DataType::Float32
            | DataType::Boolean
            | DataType::Date32
    )
}

/// Whether `plan` reads only single-group Postgres entities of one backend,
/// through plan nodes and expressions that Postgres runs with the same result.
fn remote_only(plan: &LogicalPlan, found: &mut Option<Arc<dyn Backend>>) -> bool {
    // A result without columns (count(*) over a subquery) has no rows to carry.
    if plan.schema().fields().is_empty() {
        return false;
    }
    if !plan.schema().fields().iter().all(|f| readable(f.data_type())) {
        return false;
    }
    let node_ok = match plan {
        LogicalPlan::TableScan(scan) => {
            let Ok(provider) = source_as_provider(&scan.source) else { return false };
            let any: &dyn std::any::Any = provider.as_ref();
            let Some(entity) = any.downcast_ref::<EntityTable>() else { return false };
            let Some((backend, table, types)) = entity.federated_table() else { return false };
            // The statement names tables as the session does: bare, resolved by
            // the connection's search_path (the workspace schema).
            let TableReference::Bare { table: name } = &scan.table_name else { return false };
            if name.as_ref() != table {
                return false;
            }
            let columns_ok = scan
                .projected_schema
                .fields()
                .iter()
                .all(|f| types.iter().find(|(n, _)| n == f.name()).is_some_and(|(_, t)| scalar_storage(t)));
            let Ok(source) = DFSchema::try_from_qualified_schema(scan.table_name.clone(), &scan.source.schema()) else {
                return false;
            };
            if !columns_ok || !scan.filters.iter().all(|f| expr_ok(f, &source)) {
                return false;
            }
            match found {
                Some(b) if !Arc::ptr_eq(b, &backend) => return false,
                Some(_) => {}
                None => *found = Some(backend),
            }
            return true;
        }
        LogicalPlan::Projection(p) => p.expr.iter().all(|e| expr_ok(e, p.input.schema())),
        LogicalPlan::Filter(f) => expr_ok(&f.predicate, f.input.schema()),
        LogicalPlan::Aggregate(a) => {
            let input = a.input.schema();
            a.group_expr.iter().chain(&a.aggr_expr).all(|e| expr_ok(e, input))
        }
        LogicalPlan::Sort(s) => s.expr.iter().all(|e| expr_ok(&e.expr, s.input.schema())),
        // OFFSET stays with DataFusion: the unparser folds a LIMIT … OFFSET over a
        // sort that already carries skip + fetch into one wrong LIMIT. The sort
        // below (ORDER BY … LIMIT skip + fetch) still federates.
        LogicalPlan::Limit(l) => {
            l.skip.as_deref().is_none_or(|e| matches!(e, Expr::Literal(ScalarValue::Int64(Some(0)), _)))
                && l.fetch.as_deref().is_none_or(|e| matches!(e, Expr::Literal(..)))
        }
        LogicalPlan::Join(j) => {
            matches!(j.join_type, JoinType::Inner | JoinType::Left | JoinType::Right | JoinType::Full)
                && j.null_equality == NullEquality::NullEqualsNothing
                && j.on.iter().all(|(l, r)| expr_ok(l, j.left.schema()) && expr_ok(r, j.right.schema()))
                && j.filter.as_ref().is_none_or(|f| expr_ok(f, &j.schema))
        }
        LogicalPlan::SubqueryAlias(_) => true,
        _ => false,
    };
    node_ok && plan.inputs().iter().all(|i| remote_only(i, found))
}

/// Columns Postgres stores as plain scalars of the same value.
fn scalar_storage(ty: &LogicalType) -> bool {
    !matches!(
        ty,
        LogicalType::Json
            | LogicalType::Array { .. }
            | LogicalType::Vector { .. }
            | LogicalType::Artifact
            | LogicalType::Timestamp
    )
}

fn literal_ok(v: &ScalarValue) -> bool {
    matches!(
        v,
        ScalarValue::Null
            | ScalarValue::Boolean(_)
            | ScalarValue::Int64(_)
            | ScalarValue::Int32(_)
            | ScalarValue::Float64(_)
            | ScalarValue::Utf8(_)
            | ScalarValue::Date32(_)
    )
}

/// Every node of `e` (over `schema`) is a form Postgres evaluates as DataFusion does.
fn expr_ok(e: &Expr, schema: &DFSchema) -> bool {
    let mut ok = true;
    let _ = e.apply(|e| {
        let good = match e {
            Expr::Column(_)
            | Expr::Alias(_)
            | Expr::Not(_)
            | Expr::IsNull(_)
            | Expr::IsNotNull(_)
            | Expr::IsTrue(_)
            | Expr::IsFalse(_)
            | Expr::IsNotTrue(_)
            | Expr::IsNotFalse(_)
            | Expr::Negative(_)
            | Expr::Between(_)
            | Expr::InList(_) => true,
            Expr::Literal(v, _) => literal_ok(v),
            Expr::BinaryExpr(BinaryExpr { op, .. }) => matches!(
                op,
                Operator::Eq
                    | Operator::NotEq
                    | Operator::Lt
                    | Operator::LtEq
                    | Operator::Gt
                    | Operator::GtEq
                    | Operator::Plus
                    | Operator::Minus
                    | Operator::Multiply
                    | Operator::Divide
                    | Operator::Modulo
                    | Operator::And
                    | Operator::Or
                    | Operator::IsDistinctFrom
                    | Operator::IsNotDistinctFrom
                    | Operator::StringConcat
            ),
            Expr::Like(l) => {
                !l.case_insensitive
                    && l.escape_char.is_none()
                    && matches!(l.pattern.as_ref(), Expr::Literal(ScalarValue::Utf8(Some(p)), _) if !p.contains('\\'))
            }
            Expr::Cast(Cast { expr, field }) => cast_ok(expr, field.data_type(), schema),
            Expr::ScalarFunction(f) => matches!(f.name(), "abs" | "coalesce" | "character_length" | "length"),
            Expr::AggregateFunction(a) => {
                let name = a.func.name();
                let p = &a.params;
                matches!(name, "count" | "sum" | "min" | "max" | "avg")
                    && p.filter.is_none()
                    && p.order_by.is_empty()
                    && (!p.distinct || name == "count")
            }
            _ => false,
        };
        if good {
            Ok(TreeNodeRecursion::Continue)
        } else {
            ok = false;
            Ok(TreeNodeRecursion::Stop)
        }
    });
    ok
}

/// Casts Postgres performs as DataFusion does: integer widening, integer to
/// float or text, text to date, a type to itself. Float to integer rounds in
/// Postgres and truncates in DataFusion; float to text is spelled differently.
fn cast_ok(expr: &Expr, to: &DataType, schema: &DFSchema) -> bool {
    let Ok(from) = expr.get_type(schema) else { return false };
    if &from == to {
        return true;
    }
    match (from, to) {
        (DataType::Int32 | DataType::Int64, DataType::Int64 | DataType::Float64 | DataType::Utf8) => true,
        (DataType::Float32, DataType::Float64) => true,
        (DataType::Utf8, DataType::Date32) => true,
        (DataType::Null, _) => true,
        _ => false,
    }
}

/// Replace `plan` by a scan of its result computed in Postgres, under a
/// projection that restores the plan's qualified column names.
fn to_remote(plan: &LogicalPlan, backend: Arc<dyn Backend>) -> DfResult<Option<LogicalPlan>> {
    let Some(sql) = unparse(plan)? else { return Ok(None) };
    let schema = plan.schema();
    let fields: Vec<Field> =
        schema.fields().iter().enumerate().map(|(i, f)| Field::new(format!("c{i}"), f.data_type().clone(), true)).collect();
    let scan_name = format!("postgres_{}", backend.info().name);
    let provider = Arc::new(RemoteQuery { backend, sql, schema: Arc::new(Schema::new(fields)) });
    let scan = LogicalPlanBuilder::scan(scan_name.as_str(), provider_as_source(provider), None)?.build()?;
    let exprs: Vec<Expr> = schema
        .iter()
        .enumerate()
        .map(|(i, (qualifier, field))| {
            Expr::Column(Column::new(Some(scan_name.as_str()), format!("c{i}"))).alias_qualified(qualifier.cloned(), field.name())
        })
        .collect();
    Ok(Some(LogicalPlanBuilder::from(scan).project(exprs)?.build()?))
}

/// The plan as one Postgres statement whose output columns have the types
/// DataFusion planned: sums and averages (numeric in Postgres) cast back.
fn unparse(plan: &LogicalPlan) -> DfResult<Option<String>> {
    let dialect = PostgreSqlDialect {};
    let Ok(statement) = Unparser::new(&dialect).plan_to_sql(plan) else { return Ok(None) };
    let Statement::Query(mut query) = statement else { return Ok(None) };
    let SetExpr::Select(select) = query.body.as_mut() else { return Ok(None) };
    let schema = plan.schema();
    if select.projection.len() != schema.fields().len() {
        return Ok(None);
    }
    for (item, field) in select.projection.iter_mut().zip(schema.fields()) {
        let cast_to = match field.data_type() {
            DataType::Int64 => ast::DataType::BigInt(None),
            DataType::Float64 => ast::DataType::DoublePrecision,
            _ => continue,
        };
        let wrap = |expr: ast::Expr| ast::Expr::Cast {
            kind: ast::CastKind::Cast,
            expr: Box::new(expr),
            data_type: cast_to.clone(),
            array: false,
            format: None,
        };
        *item = match std::mem::replace(item, SelectItem::Wildcard(Default::default())) {
            SelectItem::UnnamedExpr(e @ (ast::Expr::Identifier(_) | ast::Expr::CompoundIdentifier(_))) => {
                SelectItem::UnnamedExpr(e)
            }
            SelectItem::UnnamedExpr(e) => {
                SelectItem::ExprWithAlias { expr: wrap(e), alias: ast::Ident::with_quote('"', field.name()) }
            }
            SelectItem::ExprWithAlias { expr, alias } => SelectItem::ExprWithAlias { expr: wrap(expr), alias },
            // A wildcard or qualified wildcard: the columns cannot be matched one by one.
            _ => return Ok(None),
        };
    }
    let sql = query.to_string();
    // The unparser wraps some shapes (a projection over a LIMIT) in derived
    // tables whose outer references it does not always requalify; leave those to
    // the subplans below, which federate on their own.
    if sql.contains("AS \"derived_") {
        return Ok(None);
    }
    Ok(Some(sql))
}

/// The result of one statement run in a Postgres backend.
#[derive(Debug)]
struct RemoteQuery {
    backend: Arc<dyn Backend>,
    sql: String,
    schema: SchemaRef,
}

#[async_trait]
impl TableProvider for RemoteQuery {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let backend = self.backend.clone();
        let sql = self.sql.clone();
        let full = self.schema.clone();
        let detail = format!("backend={} sql=[{}]", backend.info().name, self.sql);
        let exec = LazyBatchesExec::projected("PostgresQueryExec", detail, &self.schema, projection, move || {
            let (backend, sql, full) = (backend.clone(), sql.clone(), full.clone());
            Box::pin(async move {
                let engine = backend
                    .sql_engine()
                    .ok_or_else(|| DataFusionError::Internal("the federated backend has no SQL engine".into()))?;
                engine.execute(&sql, full).await.map_err(|e| DataFusionError::External(Box::new(e)))
            })
        })?;
        Ok(Arc::new(exec))
    }
}
