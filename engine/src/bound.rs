//! Table functions whose arguments are bound parameters
//! (`search('doc', 'body', $1, $2)`, as psycopg sends a query with
//! server-side binding). DataFusion hands a table function its arguments while
//! planning, before any value is bound, so such a call plans to an
//! [`Unbound`] table of the function's fixed schema; the door that executes
//! the statement puts the bound values in the session's config
//! ([`BoundParams`]), and the scan substitutes them and plans the function
//! then, with the same checks and messages as literal arguments.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::Session;
use datafusion::common::ParamValues;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionConfig;

/// The values bound to a statement's parameters, for the statement's
/// execution (a `SessionConfig` extension).
#[derive(Debug, Clone)]
pub struct BoundParams(pub ParamValues);

impl BoundParams {
    /// `config` carrying `params` for the table functions of one statement.
    pub fn attach(config: &mut SessionConfig, params: &ParamValues) {
        config.set_extension(Arc::new(BoundParams(params.clone())));
    }
}

/// Plans a table function from arguments that are all values.
pub(crate) type Resolve = Arc<dyn Fn(&[Expr]) -> DfResult<Arc<dyn TableProvider>> + Send + Sync>;

pub(crate) fn has_placeholder(args: &[Expr]) -> bool {
    args.iter().any(|a| matches!(a, Expr::Placeholder(_)))
}

/// A table-function call waiting for its bound arguments.
pub(crate) struct Unbound {
    pub name: &'static str,
    pub schema: SchemaRef,
    pub args: Vec<Expr>,
    pub resolve: Resolve,
}

impl std::fmt::Debug for Unbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Unbound({}, {} arguments)", self.name, self.args.len())
    }
}

impl Unbound {
    fn bind(&self, config: &SessionConfig) -> DfResult<Arc<dyn TableProvider>> {
        let params = config.get_extension::<BoundParams>().ok_or_else(|| {
            DataFusionError::Plan(format!(
                "{}(): a parameter ($n) is an argument, and this statement was run without its values",
                self.name
            ))
        })?;
        let args = self
            .args
            .iter()
            .map(|a| match a {
                Expr::Placeholder(p) => {
                    let value = params.0.get_placeholders_with_values(&p.id)?.value;
                    // Integers of any width are the functions' counts (top_k, k).
                    let value = if value.data_type().is_integer() { value.cast_to(&DataType::Int64)? } else { value };
                    Ok(Expr::Literal(value, None))
                }
                other => Ok(other.clone()),
            })
            .collect::<DfResult<Vec<_>>>()?;
        (self.resolve)(&args)
    }
}

#[async_trait]
impl TableProvider for Unbound {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        self.bind(state.config())?.scan(state, projection, filters, limit).await
    }
}

/// The parameters a plan's table functions take, by number (`$1` is 1) and
/// type: counts (`top_k`, `k`) are integers, every other argument text.
pub fn table_function_parameters(plan: &datafusion::logical_expr::LogicalPlan) -> Vec<(usize, DataType)> {
    use datafusion::common::tree_node::TreeNodeRecursion;
    let mut found = Vec::new();
    let _ = plan.apply_with_subqueries(|node| {
        if let datafusion::logical_expr::LogicalPlan::TableScan(scan) = node {
            if let Ok(provider) = datafusion::datasource::source_as_provider(&scan.source) {
                if let Some(unbound) = provider.downcast_ref::<Unbound>() {
                    // Argument positions that are counts.
                    let counts: &[usize] = match unbound.name {
                        "near" | "search" => &[3],
                        "hybrid" => &[5, 7],
                        _ => &[],
                    };
                    for (i, a) in unbound.args.iter().enumerate() {
                        if let Expr::Placeholder(p) = a {
                            if let Some(n) = p.id.strip_prefix('$').and_then(|n| n.parse::<usize>().ok()) {
                                let ty = if counts.contains(&i) { DataType::Int64 } else { DataType::Utf8 };
                                found.push((n, ty));
                            }
                        }
                    }
                }
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

/// `plan` with its table functions' parameters typed where DataFusion infers
/// parameter types, its expressions: under a filter `$n IS NULL OR … OR true`
/// that names each with its type and that the optimiser removes once values
/// are bound. Without it a door numbering parameters from the plan would miss
/// these (and misnumber the rest).
pub fn type_table_function_parameters(
    plan: datafusion::logical_expr::LogicalPlan,
) -> DfResult<datafusion::logical_expr::LogicalPlan> {
    use datafusion::arrow::datatypes::Field;
    use datafusion::logical_expr::expr::Placeholder;
    let params = table_function_parameters(&plan);
    if params.is_empty() {
        return Ok(plan);
    }
    let known = plan.get_parameter_types()?;
    let mut predicate = datafusion::logical_expr::lit(true);
    for (n, ty) in params {
        let id = format!("${n}");
        if known.get(&id).is_some_and(Option::is_some) {
            continue;
        }
        let field = Arc::new(Field::new(&id, ty, true));
        predicate = Expr::Placeholder(Placeholder::new_with_field(id, Some(field))).is_null().or(predicate);
    }
    datafusion::logical_expr::LogicalPlanBuilder::from(plan).filter(predicate)?.build()
}
