//! Result columns named as Postgres names them.
//!
//! DataFusion names an unaliased select item after its whole expression
//! (`count(*)`, `round(avg(product.price),Int64(2))`, `Int64(1) + Int64(1)`);
//! Postgres names it by `FigureColname` (parse_target.c): a column by its
//! name, a function call by the function's name (`count`, `round`), a cast by
//! what it casts (or the type, `1::int` is `int4`), `CASE` as `case`, and
//! anything else `?column?`. pandas frames, BI tools and ORMs take these names
//! as they come, so every unaliased item of every SELECT is given the name
//! Postgres would give it, as an alias.
//!
//! DataFusion refuses two output columns of one name, which Postgres allows
//! (`SELECT 1, 2` is `?column?` twice; `SELECT (SELECT count(*) …), (SELECT
//! count(*) …)` is `count` twice, where DataFusion names both `(<subquery>)`
//! and refuses the pair): items that share a name are aliased apart with a
//! marker (the name, [`REPEAT`], the item's position), and once planned,
//! [`restore_repeated_names`] gives the plan's output the shared name again,
//! each column under a qualifier of its own (a DataFusion schema may hold one
//! name under several qualifiers). The items of a list with a `*` (whose
//! columns are not known here) keep DataFusion's names.
//!
//! The same marker serves `SELECT round(n.score, 2) AS score … ORDER BY
//! n.score`, which Postgres runs: DataFusion adds the sorted input column
//! `n.score` to the projection beside the alias `score` and refuses the pair
//! as ambiguous. An item whose name a qualified ORDER BY column shares is
//! marked apart, and an ORDER BY by that bare name (which means the output
//! column) is pointed at the marked alias.

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;

use datafusion::common::{Column, Result, TableReference};
use datafusion::logical_expr::{Expr as PlanExpr, LogicalPlan, LogicalPlanBuilder};
use datafusion::sql::sqlparser::ast::{
    DataType, Expr, Ident, OrderByKind, Query, Select, SelectItem, SetExpr, Statement, VisitMut, VisitorMut, visit_expressions,
};

/// Separates a shared name from the item's position in a marked alias; no
/// name a client writes holds it.
pub const REPEAT: char = '\u{1}';

/// The name a client sees for a planned column: a marked alias's shared name.
pub fn shown_name(name: &str) -> &str {
    name.split_once(REPEAT).map_or(name, |(shown, _)| shown)
}

/// `plan` with every marked output column named by its shared name again
/// (module doc); unchanged when it has none.
pub fn restore_repeated_names(plan: LogicalPlan) -> Result<LogicalPlan> {
    if !plan.schema().fields().iter().any(|f| f.name().contains(REPEAT)) {
        return Ok(plan);
    }
    let exprs: Vec<PlanExpr> = plan
        .schema()
        .iter()
        .enumerate()
        .map(|(i, (qualifier, field))| {
            let column = PlanExpr::Column(Column::new(qualifier.cloned(), field.name()));
            match field.name().split_once(REPEAT) {
                Some((shown, _)) => column.alias_qualified(Some(TableReference::bare(format!("#{i}"))), shown),
                None => column,
            }
        })
        .collect();
    LogicalPlanBuilder::from(plan).project(exprs)?.build()
}

/// Alias every unaliased select item of `statement` with its Postgres name
/// (module doc). Returns whether anything changed.
pub fn name_columns_as_postgres(statement: &mut Statement) -> bool {
    let mut namer = Namer { changed: false };
    let _ = statement.visit(&mut namer);
    namer.changed
}

struct Namer {
    changed: bool,
}

impl VisitorMut for Namer {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        let order_by = match query.order_by.as_mut().map(|o| &mut o.kind) {
            Some(OrderByKind::Expressions(items)) => items.as_mut_slice(),
            _ => &mut [],
        };
        // The names of qualified columns the ORDER BY reads (`n.score` → score).
        let mut sorted_columns = HashSet::new();
        for item in order_by.iter() {
            let _ = visit_expressions(&item.expr, |e| {
                if let Expr::CompoundIdentifier(parts) = e {
                    sorted_columns.extend(parts.last().map(normalized));
                }
                ControlFlow::<()>::Continue(())
            });
        }
        let (changed, marked) = match query.body.as_mut() {
            SetExpr::Select(select) => name_select(select, &sorted_columns),
            body => (name_body(body), HashMap::new()),
        };
        // An ORDER BY by an output column's bare name follows its marked alias.
        for item in order_by.iter_mut() {
            if let Expr::Identifier(id) = &item.expr {
                if let Some(alias) = marked.get(&normalized(id)) {
                    item.expr = Expr::Identifier(Ident::with_quote('"', alias.clone()));
                }
            }
        }
        self.changed |= changed;
        ControlFlow::Continue(())
    }
}

fn name_body(body: &mut SetExpr) -> bool {
    match body {
        SetExpr::Select(select) => name_select(select, &HashSet::new()).0,
        // Only the left side names a set operation's columns; the right may keep its own.
        SetExpr::SetOperation { left, .. } => name_body(left),
        _ => false,
    }
}

/// Name the items of `select` (module doc). `sorted_columns` are the names of
/// qualified columns its query's ORDER BY reads: an item that is not such a
/// column but has its name is marked apart. Returns whether anything
/// changed, and the marked alias of each such name.
fn name_select(select: &mut Select, sorted_columns: &HashSet<String>) -> (bool, HashMap<String, String>) {
    let mut marked = HashMap::new();
    if select.projection.iter().any(|i| matches!(i, SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..))) {
        return (false, marked);
    }
    let names: Vec<Option<String>> = select
        .projection
        .iter()
        .map(|item| match item {
            SelectItem::UnnamedExpr(e) => Some(figure_colname(e)),
            SelectItem::ExprWithAlias { alias, .. } => Some(normalized(alias)),
            _ => None,
        })
        .collect();
    let mut uses: HashMap<&str, usize> = HashMap::new();
    for name in names.iter().flatten() {
        *uses.entry(name.as_str()).or_default() += 1;
    }
    let mut changed = false;
    for (position, (item, name)) in select.projection.iter_mut().zip(&names).enumerate() {
        let Some(name) = name else { continue };
        let is_column = matches!(item, SelectItem::UnnamedExpr(Expr::Identifier(_) | Expr::CompoundIdentifier(_)));
        let shadows_sorted = !is_column && sorted_columns.contains(name);
        let repeated = uses[name.as_str()] > 1 || shadows_sorted;
        let alias = if repeated { format!("{name}{REPEAT}{position}") } else { name.clone() };
        if shadows_sorted && uses[name.as_str()] == 1 {
            marked.insert(name.clone(), alias.clone());
        }
        match item {
            // A column keeps its own name already.
            SelectItem::UnnamedExpr(Expr::Identifier(_) | Expr::CompoundIdentifier(_)) if !repeated => continue,
            SelectItem::UnnamedExpr(expr) => {
                let expr = expr.clone();
                *item = SelectItem::ExprWithAlias { expr, alias: Ident::with_quote('"', alias) };
            }
            SelectItem::ExprWithAlias { alias: given, .. } if repeated => *given = Ident::with_quote('"', alias),
            _ => continue,
        }
        changed = true;
    }
    (changed, marked)
}

/// An identifier as Postgres (and DataFusion) folds it: unquoted ones in lower case.
pub(crate) fn normalized(ident: &Ident) -> String {
    match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_lowercase(),
    }
}

/// The name Postgres gives an unaliased select item.
fn figure_colname(expr: &Expr) -> String {
    figure(expr).unwrap_or_else(|| "?column?".to_string())
}

fn figure(expr: &Expr) -> Option<String> {
    Some(match expr {
        Expr::Identifier(i) => normalized(i),
        Expr::CompoundIdentifier(parts) => normalized(parts.last()?),
        Expr::Function(f) => normalized(f.name.0.last()?.as_ident()?),
        Expr::Cast { expr, data_type, .. } => return figure(expr).or_else(|| Some(type_name(data_type))),
        Expr::Nested(inner) => return figure(inner),
        Expr::Collate { expr, .. } => return figure(expr),
        Expr::Case { .. } => "case".into(),
        Expr::Exists { .. } => "exists".into(),
        Expr::Array(_) => "array".into(),
        Expr::Tuple(_) => "row".into(),
        Expr::Extract { .. } => "extract".into(),
        Expr::Substring { .. } => "substring".into(),
        Expr::Position { .. } => "position".into(),
        Expr::Overlay { .. } => "overlay".into(),
        Expr::Ceil { .. } => "ceil".into(),
        Expr::Floor { .. } => "floor".into(),
        Expr::Trim { .. } => "btrim".into(),
        Expr::AtTimeZone { .. } => "timezone".into(),
        Expr::Interval(_) => "interval".into(),
        Expr::TypedString(t) => type_name(&t.data_type),
        // A scalar subquery is named by its one column.
        Expr::Subquery(q) => match q.body.as_ref() {
            SetExpr::Select(s) => match s.projection.first()? {
                SelectItem::UnnamedExpr(e) => return figure(e),
                SelectItem::ExprWithAlias { alias, .. } => normalized(alias),
                _ => return None,
            },
            _ => return None,
        },
        _ => return None,
    })
}

/// A type as Postgres names it in a column heading (`int4`, `float8`, `bool`).
fn type_name(t: &DataType) -> String {
    match t {
        DataType::Int(_) | DataType::Integer(_) | DataType::Int4(_) => "int4".into(),
        DataType::BigInt(_) | DataType::Int8(_) => "int8".into(),
        DataType::SmallInt(_) | DataType::Int2(_) => "int2".into(),
        DataType::Real | DataType::Float4 => "float4".into(),
        DataType::Double(_) | DataType::DoublePrecision | DataType::Float8 => "float8".into(),
        DataType::Boolean | DataType::Bool => "bool".into(),
        DataType::Varchar(_) | DataType::CharacterVarying(_) => "varchar".into(),
        DataType::Char(_) | DataType::Character(_) => "bpchar".into(),
        DataType::Numeric(_) | DataType::Decimal(_) => "numeric".into(),
        DataType::Timestamp(_, datafusion::sql::sqlparser::ast::TimezoneInfo::WithTimeZone) => "timestamptz".into(),
        DataType::Timestamp(..) => "timestamp".into(),
        other => other.to_string().to_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn named(sql: &str) -> String {
        let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap();
        super::name_columns_as_postgres(&mut statements[0]);
        statements[0].to_string()
    }

    #[test]
    fn items_get_the_names_postgres_gives_them() {
        assert_eq!(
            named("SELECT category, count(*), round(avg(price), 2), 1 + 1, price::int, 1::int, CASE WHEN true THEN 1 END FROM p"),
            "SELECT category, count(*) AS \"count\", round(avg(price), 2) AS \"round\", 1 + 1 AS \"?column?\", \
             price::INT AS \"price\", 1::INT AS \"int4\", CASE WHEN true THEN 1 END AS \"case\" FROM p"
        );
        // Repeated names are marked apart (restored once planned); lists with
        // `*` keep DataFusion's names; aliases stay.
        assert_eq!(
            named("SELECT 1, 2, max(a) AS m, a, a FROM p"),
            "SELECT 1 AS \"?column?\u{1}0\", 2 AS \"?column?\u{1}1\", max(a) AS m, a AS \"a\u{1}3\", a AS \"a\u{1}4\" FROM p"
        );
        assert_eq!(named("SELECT *, count(*) OVER () FROM p"), "SELECT *, count(*) OVER () FROM p");
        assert_eq!(named("SELECT a, a::text FROM p"), "SELECT a AS \"a\u{1}0\", a::TEXT AS \"a\u{1}1\" FROM p");
        // Subqueries too: an outer query may name their columns.
        assert_eq!(
            named("SELECT s.count FROM (SELECT count(*) FROM p) s"),
            "SELECT s.count FROM (SELECT count(*) AS \"count\" FROM p) s"
        );
    }

    #[test]
    fn an_alias_that_shares_a_sorted_columns_name_is_marked_apart() {
        // ORDER BY n.score sorts by the input column; ORDER BY score by the output one.
        assert_eq!(
            named("SELECT round(n.score, 2) AS score, n.id FROM n ORDER BY n.score DESC, score"),
            "SELECT round(n.score, 2) AS \"score\u{1}0\", n.id FROM n ORDER BY n.score DESC, \"score\u{1}0\""
        );
        // The column itself, or an alias no qualified ORDER BY column shares, stays.
        assert_eq!(named("SELECT n.score FROM n ORDER BY n.score"), "SELECT n.score FROM n ORDER BY n.score");
        assert_eq!(
            named("SELECT round(score) AS score FROM n ORDER BY score"),
            "SELECT round(score) AS score FROM n ORDER BY score"
        );
    }
}
