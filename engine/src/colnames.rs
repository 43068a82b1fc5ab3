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
//! (`SELECT 1, 2` is `?column?` twice): an item whose Postgres name another
//! item of its list also has keeps DataFusion's name, and so do the items of a
//! list with a `*` (whose columns are not known here).

use std::collections::HashMap;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    DataType, Expr, Ident, Query, Select, SelectItem, SetExpr, Statement, VisitMut, VisitorMut,
};

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
        self.changed |= name_body(&mut query.body);
        ControlFlow::Continue(())
    }
}

fn name_body(body: &mut SetExpr) -> bool {
    match body {
        SetExpr::Select(select) => name_select(select),
        // Only the left side names a set operation's columns; the right may keep its own.
        SetExpr::SetOperation { left, .. } => name_body(left),
        _ => false,
    }
}

fn name_select(select: &mut Select) -> bool {
    if select.projection.iter().any(|i| matches!(i, SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..))) {
        return false;
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
    for (item, name) in select.projection.iter_mut().zip(&names) {
        let (SelectItem::UnnamedExpr(expr), Some(name)) = (&*item, name) else { continue };
        // A column keeps its own name already; a repeated name stays DataFusion's.
        if matches!(expr, Expr::Identifier(_) | Expr::CompoundIdentifier(_)) || uses[name.as_str()] > 1 {
            continue;
        }
        let expr = expr.clone();
        *item = SelectItem::ExprWithAlias { expr, alias: Ident::with_quote('"', name.as_str()) };
        changed = true;
    }
    changed
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
        // Repeated names and lists with `*` keep DataFusion's names; aliases stay.
        assert_eq!(named("SELECT 1, 2, max(a) AS m FROM p"), "SELECT 1, 2, max(a) AS m FROM p");
        assert_eq!(named("SELECT *, count(*) OVER () FROM p"), "SELECT *, count(*) OVER () FROM p");
        assert_eq!(named("SELECT a, a::text FROM p"), "SELECT a, a::TEXT FROM p");
        // Subqueries too: an outer query may name their columns.
        assert_eq!(
            named("SELECT s.count FROM (SELECT count(*) FROM p) s"),
            "SELECT s.count FROM (SELECT count(*) AS \"count\" FROM p) s"
        );
    }
}
