//! Correlated scalar subqueries whose correlation is not an equality:
//! `SELECT a, (SELECT count(*) FROM t1 AS x WHERE x.b < t1.b) FROM t1`, the
//! rank-by-count shape SQL users write, and the shape EXISTS in a select list
//! becomes (crate::exists). DataFusion decorrelates a scalar subquery into a
//! join only when each correlated predicate under its aggregate is
//! `inner = outer`; any other form is left in the plan, and the physical
//! planner refuses it ("does not support logical expression ScalarSubquery").
//! Postgres runs it (as a subplan per outer row).
//!
//! This rule, run just before DataFusion's `scalar_subquery_to_join`, turns
//! the non-equal correlation into an equal one over the outer values' domain
//! (the "magic set" rewrite):
//!
//! ```text
//! (SELECT agg(..) FROM input WHERE local AND p(inner, outer.c))
//!   ⇒ (SELECT agg(..) FROM (SELECT DISTINCT c AS d FROM <outer input>) dom
//!                      JOIN (SELECT * FROM input WHERE local) ON p(inner, dom.d)
//!      WHERE dom.d = outer.c)
//! ```
//!
//! Each distinct outer value is joined once with the rows its predicate keeps,
//! and the remaining `dom.d = outer.c` is the equality DataFusion pulls up into
//! a group-by and a left join. An outer value no inner row matches has no
//! group; the left join then gives the aggregate's empty-input value (DataFusion
//! compensates count's 0), as the per-row subquery would. A NULL outer value
//! matches no domain row, and `p(inner, NULL)` keeps no row either: the same
//! answer. Only the plain shape is rewritten (projections over an aggregate
//! without GROUP BY over one filter, nothing correlated below it, every outer
//! column from the node's own input); anything else is left as it was.

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, Result};
use datafusion::logical_expr::expr::Cast;
use datafusion::logical_expr::utils::{conjunction, split_conjunction_owned};
use datafusion::logical_expr::{
    Aggregate, BinaryExpr, Expr, JoinType, LogicalPlan, LogicalPlanBuilder, Operator, Projection, Subquery,
};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};

pub const RULE_NAME: &str = "correlated_subquery_over_domain";

/// The rule (module doc).
#[derive(Debug, Default)]
pub struct CorrelatedOverDomain;

impl OptimizerRule for CorrelatedOverDomain {
    fn name(&self) -> &str {
        RULE_NAME
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::TopDown)
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(&self, plan: LogicalPlan, config: &dyn OptimizerConfig) -> Result<Transformed<LogicalPlan>> {
        // DataFusion decorrelates scalar subqueries of these two nodes only.
        let outer = match &plan {
            LogicalPlan::Projection(p) => p.input.as_ref().clone(),
            LogicalPlan::Filter(f) => f.input.as_ref().clone(),
            _ => return Ok(Transformed::no(plan)),
        };
        let mut any = false;
        plan.apply_expressions(|e| {
            any |= e.exists(|e| Ok(matches!(e, Expr::ScalarSubquery(s) if !s.outer_ref_columns.is_empty())))?;
            Ok(TreeNodeRecursion::Continue)
        })?;
        if !any {
            return Ok(Transformed::no(plan));
        }
        plan.map_expressions(|e| {
            e.transform_up(|e| match e {
                Expr::ScalarSubquery(sub) if !sub.outer_ref_columns.is_empty() => Ok(match over_domain(&sub, &outer, config)? {
                    Some(rewritten) => Transformed::yes(Expr::ScalarSubquery(rewritten)),
                    None => Transformed::no(Expr::ScalarSubquery(sub)),
                }),
                other => Ok(Transformed::no(other)),
            })
        })
    }
}

/// `sub` rewritten over the domain of its outer columns in `outer`, or None
/// when its shape is not the one this rule handles (module doc).
fn over_domain(sub: &Subquery, outer: &LogicalPlan, config: &dyn OptimizerConfig) -> Result<Option<Subquery>> {
    let mut projections = Vec::new();
    let mut node = sub.subquery.as_ref();
    while let LogicalPlan::Projection(p) = node {
        projections.push(p);
        node = p.input.as_ref();
    }
    let LogicalPlan::Aggregate(agg) = node else { return Ok(None) };
    let LogicalPlan::Filter(filter) = agg.input.as_ref() else { return Ok(None) };
    if !agg.group_expr.is_empty() || !filter.input.all_out_ref_exprs().is_empty() {
        return Ok(None);
    }
    let (correlated, local): (Vec<Expr>, Vec<Expr>) =
        split_conjunction_owned(filter.predicate.clone()).into_iter().partition(|e| e.contains_outer());
    if correlated.is_empty() || correlated.iter().all(plain_equality) {
        return Ok(None); // DataFusion decorrelates these itself.
    }

    // The outer columns the predicates read, each with the field it has there.
    let mut outer_refs = Vec::new();
    for e in &correlated {
        e.apply(|e| {
            if let Expr::OuterReferenceColumn(field, column) = e
                && !outer_refs.iter().any(|(_, c)| c == column)
            {
                outer_refs.push((field.clone(), column.clone()));
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
    }
    if outer_refs.iter().any(|(_, c)| !outer.schema().has_column(c)) {
        return Ok(None); // a column of a query further out
    }

    let alias = config.alias_generator().next("__domain");
    let domain_column = |i: usize| Expr::Column(Column::new(Some(alias.as_str()), format!("d{i}")));
    let domain = LogicalPlanBuilder::from(outer.clone())
        .project(outer_refs.iter().enumerate().map(|(i, (_, c))| Expr::Column(c.clone()).alias(format!("d{i}"))))?
        .distinct()?
        .alias(alias.as_str())?
        .build()?;
    let on_domain = |e: Expr| {
        e.transform_up(|e| match e {
            Expr::OuterReferenceColumn(_, c) => {
                let i = outer_refs.iter().position(|(_, o)| *o == c).unwrap_or_default();
                Ok(Transformed::yes(domain_column(i)))
            }
            other => Ok(Transformed::no(other)),
        })
        .map(|t| t.data)
    };
    let on = correlated.into_iter().map(on_domain).collect::<Result<Vec<_>>>()?;
    let mut inner = LogicalPlanBuilder::from(filter.input.as_ref().clone());
    if let Some(local) = conjunction(local) {
        inner = inner.filter(local)?;
    }
    let equal = outer_refs
        .iter()
        .enumerate()
        .map(|(i, (field, c))| domain_column(i).eq(Expr::OuterReferenceColumn(field.clone(), c.clone())));
    let joined = LogicalPlanBuilder::from(domain)
        .join_on(inner.build()?, JoinType::Inner, on)?
        .filter(conjunction(equal).unwrap_or_else(|| datafusion::logical_expr::lit(true)))?
        .build()?;

    let mut plan = LogicalPlan::Aggregate(Aggregate::try_new(Arc::new(joined), agg.group_expr.clone(), agg.aggr_expr.clone())?);
    for p in projections.iter().rev() {
        plan = LogicalPlan::Projection(Projection::try_new(p.expr.clone(), Arc::new(plan))?);
    }
    Ok(Some(Subquery { subquery: Arc::new(plan), outer_ref_columns: sub.outer_ref_columns.clone(), spans: sub.spans.clone() }))
}

/// `inner = outer` as DataFusion pulls it over an aggregate: a column (or a
/// cast of one) on one side, nothing of the inner plan on the other.
fn plain_equality(e: &Expr) -> bool {
    let Expr::BinaryExpr(BinaryExpr { left, op: Operator::Eq, right }) = e else { return false };
    let column = |e: &Expr| match e {
        Expr::Column(_) => true,
        Expr::Cast(Cast { expr, .. }) => matches!(expr.as_ref(), Expr::Column(_)),
        _ => false,
    };
    (column(left) && !right.any_column_refs()) || (column(right) && !left.any_column_refs())
}

/// DataFusion's default optimizer rules with this one just before the rule that
/// turns scalar subqueries into joins.
pub fn optimizer_rules() -> Vec<Arc<dyn OptimizerRule + Send + Sync>> {
    let mut rules = datafusion::optimizer::Optimizer::new().rules;
    let at = rules.iter().position(|r| r.name() == "scalar_subquery_to_join").unwrap_or(0);
    rules.insert(at, Arc::new(CorrelatedOverDomain));
    rules
}
