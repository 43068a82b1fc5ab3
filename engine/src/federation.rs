//! Federation: a subplan whose every table is an entity stored whole in one
//! backend with a SQL engine (Postgres, SQLite) — filters, projections,
//! aggregates, ORDER BY … LIMIT, joins — runs in that engine as one statement.
//!
//! An optimizer rule of our own rather than datafusion-federation: it decides
//! federation per expression against an allow-list, per dialect, of forms whose
//! semantics in that engine equal DataFusion's (so a federated query returns
//! what the stitched plan would), it reads results straight into the types
//! DataFusion planned (casting Postgres' `numeric` sums and averages back to
//! int8/float8 in the statement), and it leaves entity tables as they are for
//! every other query and for writes.
//!
//! Left to DataFusion on purpose: lower/upper and ILIKE (Postgres with the "C"
//! collation folds ASCII only), float→integer casts (Postgres rounds, DataFusion
//! truncates), float→text casts (different spelling), timestamp literals, JSON,
//! list and vector columns, window functions, unions and subqueries in
//! expressions; for SQLite also division and modulo (NULL where DataFusion
//! raises division by zero), date literals and text→date casts (SQLite has no
//! date type) and character_length.
//!
//! What federates is the backend's [`FederationScope`]: Postgres everything;
//! SQLite top-N by default (its GROUP BY is slower than DataFusion's hash
//! aggregate, measured by the sqlite-aggregate benchmark), everything that
//! aggregates, sorts or joins with `"federate": "all"`.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, DFSchema, JoinType, NullEquality, TableReference};
use datafusion::datasource::{TableProvider, TableType, provider_as_source, source_as_provider};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{BinaryExpr, Cast, Expr, ExprSchemable, LogicalPlan, LogicalPlanBuilder, Operator, TableScan};
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::scalar::ScalarValue;
use datafusion::sql::sqlparser::ast::{self, SelectItem, SetExpr, Statement};
use datafusion::sql::unparser::Unparser;
use datafusion::sql::unparser::dialect::{Dialect as UnparserDialect, PostgreSqlDialect};
use heavenbase_catalog::LogicalType;
use heavenbase_providers::{Backend, Dialect, FederationScope, LazyBatchesExec};

use crate::table::{EntityTable, FederatedTable};

/// The optimizer rule; added last to the workspace session's rules.
#[derive(Debug, Default)]
pub struct Federation;

/// The rule's name (a transaction's session runs without it).
pub(crate) const RULE_NAME: &str = "heavenbase_federation";

impl OptimizerRule for Federation {
    fn name(&self) -> &str {
        RULE_NAME
    }

    fn rewrite(&self, plan: LogicalPlan, _config: &dyn OptimizerConfig) -> DfResult<Transformed<LogicalPlan>> {
        federate(plan)
    }
}

fn federate(plan: LogicalPlan) -> DfResult<Transformed<LogicalPlan>> {
    // A lone scan already runs in its backend, with its filters and limit.
    if !matches!(plan, LogicalPlan::TableScan(_)) {
        let mut found = None;
        if remote_only(&plan, &mut found)
            && let Some((backend, dialect)) = found
            && worth_federating(&plan, &backend, dialect)
            && let Some(remote) = to_remote(&plan, backend, dialect)?
        {
            return Ok(Transformed::yes(remote));
        }
    }
    plan.map_children(federate)
}

/// Whether one statement saves work over the stitched plan, by the engine's
/// federation scope. `All` for Postgres: any subplan (one round trip instead
/// of one per scan). `All` for SQLite, in process: a plan that aggregates,
/// sorts or joins (a scan of it already carries its filters, columns and limit,
/// and key lookups keep their fast path). `TopN`: a plan with ORDER BY … LIMIT.
fn worth_federating(plan: &LogicalPlan, backend: &Arc<dyn Backend>, dialect: Dialect) -> bool {
    let has = |f: fn(&LogicalPlan) -> bool| plan.exists(|p| Ok(f(p))).unwrap_or(false);
    match backend.sql_engine().map(|e| e.federation()) {
        Some(FederationScope::All) => {
            dialect == Dialect::Postgres
                || has(|p| matches!(p, LogicalPlan::Aggregate(_) | LogicalPlan::Sort(_) | LogicalPlan::Join(_)))
        }
        Some(FederationScope::TopN) => has(|p| matches!(p, LogicalPlan::Sort(s) if s.fetch.is_some())),
        Some(FederationScope::Off) | None => false,
    }
}

/// The Arrow types a federated result may hold: those both engines return as
/// the same values (text, int8/int4, float8/float4, bool, date).
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

/// The backend a federated subplan runs in, and the dialect of its engine.
type Found = Option<(Arc<dyn Backend>, Dialect)>;

/// Whether `plan` reads only single-group entities of one SQL-engine backend,
/// through plan nodes and expressions that engine runs with the same result.
/// Inputs are checked first: the scans below a node name the dialect its
/// expressions are checked against.
fn remote_only(plan: &LogicalPlan, found: &mut Found) -> bool {
    // A result without columns (count(*) over a subquery) has no rows to carry.
    if plan.schema().fields().is_empty() {
        return false;
    }
    if !plan.schema().fields().iter().all(|f| readable(f.data_type())) {
        return false;
    }
    if let LogicalPlan::TableScan(scan) = plan {
        return scan_ok(scan, found);
    }
    if !plan.inputs().iter().all(|i| remote_only(i, found)) {
        return false;
    }
    let Some((_, dialect)) = found else { return false };
    let rules = Rules(*dialect);
    match plan {
        LogicalPlan::Projection(p) => p.expr.iter().all(|e| rules.expr_ok(e, p.input.schema())),
        LogicalPlan::Filter(f) => rules.expr_ok(&f.predicate, f.input.schema()),
        LogicalPlan::Aggregate(a) => {
            let input = a.input.schema();
            a.group_expr.iter().chain(&a.aggr_expr).all(|e| rules.expr_ok(e, input))
        }
        LogicalPlan::Sort(s) => s.expr.iter().all(|e| rules.expr_ok(&e.expr, s.input.schema())),
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
                && j.on.iter().all(|(l, r)| rules.expr_ok(l, j.left.schema()) && rules.expr_ok(r, j.right.schema()))
                && j.filter.as_ref().is_none_or(|f| rules.expr_ok(f, &j.schema))
        }
        LogicalPlan::SubqueryAlias(_) => true,
        _ => false,
    }
}

/// A scan of an entity stored whole in one table of a federating backend, all
/// of whose columns and pushed filters the engine reads as DataFusion does.
fn scan_ok(scan: &TableScan, found: &mut Found) -> bool {
    let Ok(provider) = source_as_provider(&scan.source) else { return false };
    let any: &dyn std::any::Any = provider.as_ref();
    let Some(entity) = any.downcast_ref::<EntityTable>() else { return false };
    let Some(FederatedTable { backend, dialect, table, types }) = entity.federated_table() else { return false };
    // The statement names tables as the session does: bare, resolved by the
    // connection (Postgres' search_path, SQLite's one database).
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
    let rules = Rules(dialect);
    if !columns_ok || !scan.filters.iter().all(|f| rules.expr_ok(f, &source)) {
        return false;
    }
    match found {
        Some((b, _)) if !Arc::ptr_eq(b, &backend) => false,
        Some(_) => true,
        None => {
            *found = Some((backend, dialect));
            true
        }
    }
}

/// Columns both engines store as plain scalars of the same value.
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

/// The allow-list of one dialect: the expression forms its engine evaluates
/// exactly as DataFusion does.
#[derive(Debug, Clone, Copy)]
struct Rules(Dialect);

impl Rules {
    /// Literals of the planned types. A date literal is unparsed as
    /// `CAST('…' AS DATE)`, which SQLite reads as the number of its year.
    fn literal_ok(self, v: &ScalarValue) -> bool {
        match v {
            ScalarValue::Null
            | ScalarValue::Boolean(_)
            | ScalarValue::Int64(_)
            | ScalarValue::Int32(_)
            | ScalarValue::Float64(_)
            | ScalarValue::Utf8(_) => true,
            ScalarValue::Date32(_) => self.0 == Dialect::Postgres,
            _ => false,
        }
    }

    /// Scalar functions with the same meaning in the engine. SQLite spells
    /// character_length `length`, which the unparser does not rename.
    fn function_ok(self, name: &str) -> bool {
        match name {
            "abs" | "coalesce" => true,
            "character_length" | "length" => self.0 == Dialect::Postgres,
            _ => false,
        }
    }

    fn operator_ok(self, op: Operator) -> bool {
        match op {
            Operator::Eq
            | Operator::NotEq
            | Operator::Lt
            | Operator::LtEq
            | Operator::Gt
            | Operator::GtEq
            | Operator::Plus
            | Operator::Minus
            | Operator::Multiply
            | Operator::And
            | Operator::Or
            | Operator::IsDistinctFrom
            | Operator::IsNotDistinctFrom
            | Operator::StringConcat => true,
            // SQLite answers NULL where DataFusion raises division by zero.
            Operator::Divide | Operator::Modulo => self.0 == Dialect::Postgres,
            _ => false,
        }
    }

    /// Every node of `e` (over `schema`) is a form the engine evaluates as DataFusion does.
    fn expr_ok(self, e: &Expr, schema: &DFSchema) -> bool {
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
                | Expr::InList(_)
                // Standard CASE (coalesce is simplified into one).
                | Expr::Case(_) => true,
                Expr::Literal(v, _) => self.literal_ok(v),
                Expr::BinaryExpr(BinaryExpr { op, .. }) => self.operator_ok(*op),
                // Both engines' LIKE is case-sensitive here (SQLite connections set
                // case_sensitive_like); DataFusion's default escape is the backslash.
                Expr::Like(l) => {
                    !l.case_insensitive
                        && l.escape_char.is_none()
                        && matches!(l.pattern.as_ref(), Expr::Literal(ScalarValue::Utf8(Some(p)), _) if !p.contains('\\'))
                }
                Expr::Cast(Cast { expr, field }) => self.cast_ok(expr, field.data_type(), schema),
                Expr::ScalarFunction(f) => self.function_ok(f.name()),
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

    /// Casts the engine performs as DataFusion does: integer widening, integer
    /// to float or text, a type to itself; for Postgres also text to date (SQLite
    /// has no date type to check the text against). Float to integer rounds in
    /// Postgres and truncates in DataFusion; float to text is spelled differently.
    fn cast_ok(self, expr: &Expr, to: &DataType, schema: &DFSchema) -> bool {
        let Ok(from) = expr.get_type(schema) else { return false };
        if &from == to {
            return true;
        }
        match (from, to) {
            (DataType::Int32 | DataType::Int64, DataType::Int64 | DataType::Float64 | DataType::Utf8) => true,
            (DataType::Float32, DataType::Float64) => true,
            (DataType::Utf8, DataType::Date32) => self.0 == Dialect::Postgres,
            (DataType::Null, _) => true,
            _ => false,
        }
    }
}

/// Replace `plan` by a scan of its result computed in the backend, under a
/// projection that restores the plan's qualified column names.
fn to_remote(plan: &LogicalPlan, backend: Arc<dyn Backend>, dialect: Dialect) -> DfResult<Option<LogicalPlan>> {
    let Some(sql) = unparse(&with_select_list(plan)?, dialect)? else { return Ok(None) };
    let schema = plan.schema();
    if !backend.sql_engine().is_some_and(|engine| engine.accepts(&sql, schema.fields().len())) {
        return Ok(None);
    }
    let fields: Vec<Field> =
        schema.fields().iter().enumerate().map(|(i, f)| Field::new(format!("c{i}"), f.data_type().clone(), true)).collect();
    let scan_name = format!("{}_{}", dialect.name(), backend.info().name);
    let provider = Arc::new(RemoteQuery { backend, dialect, sql, schema: Arc::new(Schema::new(fields)) });
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

/// `plan` with its select list made explicit where the unparser would get it
/// wrong: the statement's columns are read by position, and an aggregate with
/// no projection above it (under HAVING, ORDER BY or LIMIT at most) is
/// listed aggregates first, then groups, the reverse of the plan's schema.
/// Such a plan gets a projection of its own columns in order.
fn with_select_list(plan: &LogicalPlan) -> DfResult<LogicalPlan> {
    let mut below = plan;
    while let LogicalPlan::Sort(_) | LogicalPlan::Limit(_) | LogicalPlan::Filter(_) = below {
        below = below.inputs()[0];
    }
    if !matches!(below, LogicalPlan::Aggregate(_)) {
        return Ok(plan.clone());
    }
    let columns: Vec<Expr> = plan.schema().columns().into_iter().map(Expr::Column).collect();
    LogicalPlanBuilder::from(plan.clone()).project(columns)?.build()
}

/// The plan as one statement of `dialect`. For Postgres its output columns are
/// cast to the types DataFusion planned (sums and averages are numeric there);
/// SQLite's values are read into the planned types as they come.
fn unparse(plan: &LogicalPlan, dialect: Dialect) -> DfResult<Option<String>> {
    let statement = match dialect {
        Dialect::Postgres => Unparser::new(&PostgreSqlDialect {}).plan_to_sql(plan),
        Dialect::Sqlite => Unparser::new(&SqliteUnparse).plan_to_sql(plan),
    };
    let Ok(statement) = statement else { return Ok(None) };
    let Statement::Query(mut query) = statement else { return Ok(None) };
    let SetExpr::Select(select) = query.body.as_mut() else { return Ok(None) };
    let schema = plan.schema();
    if select.projection.len() != schema.fields().len() {
        return Ok(None);
    }
    let cast_outputs = dialect == Dialect::Postgres;
    for (item, field) in select.projection.iter_mut().zip(schema.fields()) {
        let cast_to = match field.data_type() {
            _ if !cast_outputs => continue,
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
    // Nor does it always resolve a column named after an expression of a
    // projection it merged away.
    if names_dotted_column(&query) {
        return Ok(None);
    }
    Ok(Some(sql))
}

/// Whether an expression of the statement names a column with a dot in its
/// name: the unparser's rendering of a column named after a merged-away
/// expression (`"product.qty"`), which no entity column can be.
fn names_dotted_column(query: &ast::Query) -> bool {
    let dotted = |i: &ast::Ident| i.value.contains('.');
    ast::visit_expressions(query, |e| match e {
        ast::Expr::Identifier(i) if dotted(i) => std::ops::ControlFlow::Break(()),
        ast::Expr::CompoundIdentifier(parts) if parts.iter().any(dotted) => std::ops::ControlFlow::Break(()),
        _ => std::ops::ControlFlow::Continue(()),
    })
    .is_break()
}

/// SQLite as the unparser writes it for federation: identifiers in double
/// quotes and derived tables aliased, as for Postgres (DataFusion's own SQLite
/// dialect leaves derived tables bare, and SQLite then cannot see their columns
/// from outside). Dates and `character_length` never reach it: the allow-list
/// keeps them with DataFusion.
struct SqliteUnparse;

impl UnparserDialect for SqliteUnparse {
    fn identifier_quote_style(&self, _: &str) -> Option<char> {
        Some('"')
    }

    fn supports_qualify(&self) -> bool {
        false
    }

    fn requires_derived_table_alias(&self) -> bool {
        true
    }
}

/// The result of one statement run in a backend's SQL engine.
#[derive(Debug)]
struct RemoteQuery {
    backend: Arc<dyn Backend>,
    dialect: Dialect,
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
        let name = match self.dialect {
            Dialect::Postgres => "PostgresQueryExec",
            Dialect::Sqlite => "SqliteQueryExec",
        };
        let exec = LazyBatchesExec::projected(name, detail, &self.schema, projection, move || {
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
