//! The named rewrite rules, in the order they apply. Each says which client
//! sends the SQL and which DataFusion gap the rewrite closes.

use datafusion::sql::sqlparser::ast::{
    AccessExpr, ArrayElemTypeDef, DataType, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Query, SelectItem, SetExpr,
    Value,
};

use super::{
    Context, Locals, Rule, aggregated, catalog_oid, has_subquery, helpers, is_aggregate, is_custom, is_regclass, is_text,
    last_part, name_duplicates, parse_expr,
};

/// Every rule, in order: for each expression the first that applies wins.
pub(crate) const RULES: &[&dyn Rule] = &[
    &NameRepeatedOutputs,
    &SystemRegclassToOid,
    &RegtypeTextToName,
    &RegtypeArrayToText,
    &AggregateCorrelatedSubquery,
    &CaseSubqueryToWhen,
    &QuotedOidArguments,
    &CatalogArraySubqueryToNull,
    &QualifyPgIndexes,
    &UnnestVectorColumns,
    &ExpandArray,
    &KeepDataSubqueries,
    &TableoidColumn,
    &CharTypeToText,
    &RegprocCasts,
    &NameSubscript,
    &DumpSkipsSystemColumnIndexes,
    &AnyOfVectorColumn,
];

/// datafusion-pg-catalog's `RemoveSubqueryFromProjection` (it runs after
/// these rules) turns a select-list scalar subquery it takes for correlated
/// (an `outer.column` it does not read) into NULL, and stamps `LIMIT 1` on the
/// others, after which DataFusion cannot decorrelate one that is correlated
/// after all (by an unqualified column). For the catalog queries of tools the
/// NULL stands where DataFusion could not plan the subquery; for data it is a
/// wrong answer (`SELECT c.name, (SELECT count(*) FROM o WHERE o.c = c.id)
/// FROM c` answered NULL counts). Put in parentheses, `((SELECT …))`, which
/// that rule does not match, are: a select-list subquery that reads a
/// workspace table, and one that aggregates (as [`AggregateCorrelatedSubquery`]
/// leaves it) without `LIMIT` and without a qualified outer column (sqlsmith's
/// `(SELECT max(nspname) FROM pg_namespace WHERE oid = pronamespace)`).
/// DataFusion plans them (a correlated aggregate becomes a join) or the
/// statement fails with its error, never with NULLs.
pub(crate) struct KeepDataSubqueries;

impl Rule for KeepDataSubqueries {
    fn name(&self) -> &'static str {
        "keep_data_subqueries"
    }
    fn query(&self, query: &mut Query, _cx: &Context) -> bool {
        let SetExpr::Select(select) = query.body.as_mut() else { return false };
        let mut changed = false;
        for item in &mut select.projection {
            let expr = match item {
                SelectItem::UnnamedExpr(expr) | SelectItem::ExprWithAlias { expr, .. } => expr,
                _ => continue,
            };
            if let Expr::Subquery(subquery) = &*expr
                && (reads_data(subquery) || plannable_aggregate(subquery))
            {
                *expr = Expr::Nested(Box::new(expr.clone()));
                changed = true;
            }
        }
        changed
    }
}

/// Whether `query` is one aggregate over its rows, with no `LIMIT`, and reads
/// no `outer.column` (which datafusion-pg-catalog would make NULL).
fn plannable_aggregate(query: &Query) -> bool {
    if query.limit_clause.is_some() || query.fetch.is_some() || query.with.is_some() {
        return false;
    }
    let SetExpr::Select(select) = query.body.as_ref() else { return false };
    let [SelectItem::UnnamedExpr(item) | SelectItem::ExprWithAlias { expr: item, .. }] = select.projection.as_slice() else {
        return false;
    };
    let locals = Locals::of(select);
    let mut qualified_outer = false;
    let _ = datafusion::sql::sqlparser::ast::visit_expressions(select.as_ref(), |e| {
        qualified_outer |= matches!(e, Expr::CompoundIdentifier(parts) if locals.is_outer(parts));
        std::ops::ControlFlow::<()>::Continue(())
    });
    is_aggregate(item) && !qualified_outer
}

/// Whether `query` reads a relation outside the system catalogs.
fn reads_data(query: &Query) -> bool {
    let mut data = false;
    let _ = datafusion::sql::sqlparser::ast::visit_relations(query, |name| {
        let schema = (name.0.len() > 1).then(|| name.0[name.0.len() - 2].to_string().trim_matches('"').to_ascii_lowercase());
        let catalog =
            matches!(schema.as_deref(), Some("pg_catalog" | "information_schema")) || last_part(name).starts_with("pg_");
        data |= !catalog;
        std::ops::ControlFlow::<()>::Continue(())
    });
    data
}

/// Replace `expr` when `new` is Some; whether it did.
fn replace(expr: &mut Expr, new: Option<Expr>) -> bool {
    match new {
        Some(new) => {
            *expr = new;
            true
        }
        None => false,
    }
}

/// psql's publication listing (`SELECT pubname, NULL, NULL`): Postgres allows
/// repeated unnamed outputs, DataFusion refuses duplicate column names. The
/// repeats get distinct names.
pub(crate) struct NameRepeatedOutputs;

impl Rule for NameRepeatedOutputs {
    fn name(&self) -> &'static str {
        "name_repeated_outputs"
    }
    fn query(&self, query: &mut Query, _cx: &Context) -> bool {
        name_duplicates(query.body.as_mut())
    }
}

/// psql and pgJDBC write `'pg_class'::regclass` (pg_description's `classoid`
/// holds the catalogs' OIDs); DataFusion has no regclass. A system catalog's
/// name becomes its fixed OID; `$n::regclass` becomes `hb_regclass($n)`,
/// resolved at run time. User tables keep datafusion-postgres' own lookup.
pub(crate) struct SystemRegclassToOid;

impl Rule for SystemRegclassToOid {
    fn name(&self) -> &'static str {
        "system_regclass_to_oid"
    }
    fn expr(&self, expr: &mut Expr, _cx: &Context) -> bool {
        let Expr::Cast { expr: inner, data_type, .. } = &*expr else { return false };
        if !is_regclass(data_type) {
            return false;
        }
        let new = match inner.as_ref() {
            Expr::Value(v) => match &v.value {
                Value::SingleQuotedString(name) => catalog_oid(name).and_then(|oid| parse_expr(&oid.to_string())),
                Value::Placeholder(p) => parse_expr(&format!("{}(CAST({p} AS TEXT))", helpers::REGCLASS)),
                _ => None,
            },
            _ => None,
        };
        replace(expr, new)
    }
}

/// pgcli's column listing writes `atttypid::regtype::text`: DataFusion plans
/// regtype as an integer, so the text would be the OID. It becomes
/// `format_type(x, NULL)`, the type's name.
pub(crate) struct RegtypeTextToName;

impl Rule for RegtypeTextToName {
    fn name(&self) -> &'static str {
        "regtype_text_to_name"
    }
    fn expr(&self, expr: &mut Expr, _cx: &Context) -> bool {
        let Expr::Cast { expr: inner, data_type, .. } = &*expr else { return false };
        if !is_text(data_type) {
            return false;
        }
        let new = match inner.as_ref() {
            Expr::Cast { expr: oid, data_type: reg, .. }
                if is_custom(reg, "regtype") && !matches!(oid.as_ref(), Expr::Value(_)) =>
            {
                parse_expr(&format!("pg_catalog.format_type({oid}, NULL)"))
            }
            _ => None,
        };
        replace(expr, new)
    }
}

/// pgcli's function list writes `proargtypes::regtype[]`; DataFusion has no
/// regtype arrays, and pg_proc keeps argument types as text. It becomes the
/// list of the OIDs as text.
pub(crate) struct RegtypeArrayToText;

impl Rule for RegtypeArrayToText {
    fn name(&self) -> &'static str {
        "regtype_array_to_text"
    }
    fn expr(&self, expr: &mut Expr, _cx: &Context) -> bool {
        let new = match &*expr {
            Expr::Cast { expr: inner, data_type: DataType::Array(ArrayElemTypeDef::SquareBracket(element, _)), .. }
                if is_custom(element, "regtype") && !matches!(inner.as_ref(), Expr::Value(_)) =>
            {
                parse_expr(&format!("string_to_array(btrim(CAST({inner} AS TEXT), '[]{{}}'), ',')"))
            }
            _ => None,
        };
        replace(expr, new)
    }
}

/// SQLAlchemy's column reflection selects one plain value from a subquery
/// that refers to the outer row (`(SELECT pg_get_expr(…) FROM pg_attrdef
/// WHERE adrelid = a.attrelid …)`); DataFusion decorrelates only aggregated
/// scalar subqueries. It becomes `(SELECT max(…) …)`: for the at most one row
/// such a subquery yields, max is that row. Conditions on the outer row alone
/// move outside as `hb_when`; what DataFusion cannot plan at all becomes NULL
/// in catalog queries (see `aggregated`).
pub(crate) struct AggregateCorrelatedSubquery;

impl Rule for AggregateCorrelatedSubquery {
    fn name(&self) -> &'static str {
        "aggregate_correlated_subquery"
    }
    fn expr(&self, expr: &mut Expr, cx: &Context) -> bool {
        let new = match &*expr {
            Expr::Subquery(query) => aggregated(query, cx.catalog).and_then(|q| parse_expr(&q)),
            _ => None,
        };
        replace(expr, new)
    }
}

/// SQLAlchemy wraps column-default lookups as `CASE WHEN c THEN (SELECT …)
/// END`; DataFusion cannot execute a subquery inside CASE but decorrelates one
/// in a function argument. It becomes `hb_when(c, (SELECT …))`.
pub(crate) struct CaseSubqueryToWhen;

impl Rule for CaseSubqueryToWhen {
    fn name(&self) -> &'static str {
        "case_subquery_to_when"
    }
    fn expr(&self, expr: &mut Expr, _cx: &Context) -> bool {
        let new = match &*expr {
            Expr::Case { operand: None, conditions, else_result, .. }
                if conditions.len() == 1
                    && else_result.as_deref().is_none_or(|e| e.to_string().eq_ignore_ascii_case("NULL"))
                    && (has_subquery(&conditions[0].condition) || has_subquery(&conditions[0].result)) =>
            {
                parse_expr(&format!("{}({}, {})", helpers::WHEN, conditions[0].condition, conditions[0].result))
            }
            _ => None,
        };
        replace(expr, new)
    }
}

/// Catalog functions whose arguments are OIDs, which clients pass quoted.
const OID_FUNCTIONS: &[&str] = &[
    "pg_relation_is_publishable",
    "pg_table_is_visible",
    "pg_get_partkeydef",
    "pg_relation_size",
    "pg_total_relation_size",
    "pg_table_size",
    "pg_get_constraintdef",
    "pg_get_indexdef",
    "pg_get_userbyid",
    "obj_description",
    "col_description",
];

/// psql's `\d` passes OIDs quoted (`pg_relation_is_publishable('16387')`):
/// Postgres reads the literal as an oid, DataFusion as text. Quoted numbers
/// given to the catalog functions that take OIDs become integers.
pub(crate) struct QuotedOidArguments;

impl Rule for QuotedOidArguments {
    fn name(&self) -> &'static str {
        "quoted_oid_arguments"
    }
    fn expr(&self, expr: &mut Expr, _cx: &Context) -> bool {
        let Expr::Function(f) = expr else { return false };
        if !OID_FUNCTIONS.contains(&last_part(&f.name).as_str()) {
            return false;
        }
        let FunctionArguments::List(list) = &mut f.args else { return false };
        let mut changed = false;
        for arg in &mut list.args {
            let FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) = arg else { continue };
            let oid = match e {
                Expr::Value(v) => match &v.value {
                    Value::SingleQuotedString(t) if !t.is_empty() && t.len() <= 10 && t.bytes().all(|b| b.is_ascii_digit()) => {
                        parse_expr(&format!("CAST({t} AS INTEGER)"))
                    }
                    _ => None,
                },
                _ => None,
            };
            changed |= replace(e, oid);
        }
        changed
    }
}

/// psql's `\d` builds lists of table options, policy roles and the like with
/// `ARRAY(SELECT …)`, which DataFusion lacks; the catalog holds none of them.
/// In catalog queries it becomes NULL.
pub(crate) struct CatalogArraySubqueryToNull;

impl Rule for CatalogArraySubqueryToNull {
    fn name(&self) -> &'static str {
        "catalog_array_subquery_to_null"
    }
    fn expr(&self, expr: &mut Expr, cx: &Context) -> bool {
        let new = match &*expr {
            Expr::Function(f)
                if cx.catalog && last_part(&f.name) == "array" && matches!(f.args, FunctionArguments::Subquery(_)) =>
            {
                // Typed, so functions over arrays (pg_dump's
                // `array_to_string(ARRAY(…), ', ')`) plan and answer NULL.
                parse_expr("CAST(NULL AS TEXT[])")
            }
            _ => None,
        };
        replace(expr, new)
    }
}

/// pg_dump asks `x = ANY(partclass)` of an oidvector column: DataFusion
/// cannot look into text. The column becomes the list of its numbers.
pub(crate) struct AnyOfVectorColumn;

impl Rule for AnyOfVectorColumn {
    fn name(&self) -> &'static str {
        "any_of_vector_column"
    }
    fn expr(&self, expr: &mut Expr, _cx: &Context) -> bool {
        let Expr::AnyOp { right, .. } = expr else { return false };
        let Some(column) = column_of(right) else { return false };
        if !VECTOR_COLUMNS.contains(&column.as_str()) {
            return false;
        }
        let Some(list) = parse_expr(&format!("{}({})", helpers::OIDVECTOR, right)) else { return false };
        **right = list;
        true
    }
}

/// pg_dump recreates every index it lists with `CREATE INDEX`. A table with
/// Postgres' shape (declared columns only, docs/sql.md) also has the
/// workspace's own indexes on its system columns (`name`; indkey `-2`),
/// which psql lists as they are, but which no Postgres table can have: in
/// pg_dump's index listing (the query that reads `indstatcols`) they are left
/// out, so its output restores.
pub(crate) struct DumpSkipsSystemColumnIndexes;

impl Rule for DumpSkipsSystemColumnIndexes {
    fn name(&self) -> &'static str {
        "dump_skips_system_column_indexes"
    }
    fn query(&self, query: &mut Query, _cx: &Context) -> bool {
        let SetExpr::Select(select) = query.body.as_mut() else { return false };
        let dumps = select.projection.iter().any(
            |item| matches!(item, SelectItem::ExprWithAlias { alias, .. } if alias.value.eq_ignore_ascii_case("indstatcols")),
        );
        if !dumps {
            return false;
        }
        let Some(condition) = parse_expr("NOT (i.indkey LIKE '-%' OR i.indkey LIKE '% -%')") else { return false };
        select.selection = Some(match select.selection.take() {
            Some(existing) => Expr::BinaryOp {
                left: Box::new(Expr::Nested(Box::new(existing))),
                op: datafusion::sql::sqlparser::ast::BinaryOperator::And,
                right: Box::new(condition),
            },
            None => condition,
        });
        true
    }
}

/// pg_dump tells array types by `typname[0] = '_'`: a `name` is an array
/// of bytes in Postgres, so `[0]` is its first character; DataFusion cannot
/// subscript text. A subscript of a catalog column ending in `name` becomes
/// `substr(column, n + 1, 1)`.
pub(crate) struct NameSubscript;

impl Rule for NameSubscript {
    fn name(&self) -> &'static str {
        "name_subscript"
    }
    fn expr(&self, expr: &mut Expr, cx: &Context) -> bool {
        use datafusion::sql::sqlparser::ast::Subscript;
        let Expr::CompoundFieldAccess { root, access_chain } = &*expr else { return false };
        let Some(column) = column_of(root) else { return false };
        if !cx.catalog || !column.ends_with("name") {
            return false;
        }
        let [AccessExpr::Subscript(Subscript::Index { index: Expr::Value(v) })] = access_chain.as_slice() else { return false };
        let Value::Number(n, _) = &v.value else { return false };
        let Ok(n) = n.parse::<i64>() else { return false };
        replace(expr, parse_expr(&format!("substr({root}, {}, 1)", n + 1)))
    }
}

/// pg_dump writes `'r'::"char"` (Postgres' one-byte internal type, which the
/// catalogs' kind columns have); DataFusion has no such type, and the fixed
/// catalog keeps those columns as text. A cast to `"char"` becomes one to
/// text.
pub(crate) struct CharTypeToText;

impl Rule for CharTypeToText {
    fn name(&self) -> &'static str {
        "char_type_to_text"
    }
    fn expr(&self, expr: &mut Expr, _cx: &Context) -> bool {
        let Expr::Cast { data_type, .. } = expr else { return false };
        let quoted_char = matches!(&*data_type, DataType::Custom(name, _)
            if name.0.len() == 1 && name.0[0].as_ident().is_some_and(|i| i.quote_style == Some('"') && i.value == "char"));
        if quoted_char {
            *data_type = DataType::Text;
        }
        quoted_char
    }
}

/// pg_dump reads functions named by the catalogs as `x::regproc` and as
/// `x::oid` (`amhandler::pg_catalog.regproc`, `oprcode::oid`, the text
/// search parsers' `prsstart::oid`). The fixed catalog keeps those columns as
/// the functions' names, which is what `::regproc` shows: it becomes a cast to
/// text. Their OIDs it does not know: `::oid` of one of those columns is NULL
/// (pg_dump looks them up only for functions outside pg_catalog, and there
/// are none).
pub(crate) struct RegprocCasts;

/// The catalog columns of type regproc (Postgres 15), which the fixed catalog holds as names.
const REGPROC_COLUMNS: &[&str] = &[
    "oprcode",
    "oprrest",
    "oprjoin",
    "amhandler",
    "prsstart",
    "prstoken",
    "prsend",
    "prsheadline",
    "prslextype",
    "tmplinit",
    "tmpllexize",
    "fdwhandler",
    "fdwvalidator",
    "aggfnoid",
    "aggtransfn",
    "aggfinalfn",
    "typinput",
    "typoutput",
    "typreceive",
    "typsend",
    "typmodin",
    "typmodout",
    "typanalyze",
    "typsubscript",
    "rngcanonical",
    "rngsubdiff",
    "trffromsql",
    "trftosql",
    "evtfoid",
    "tgfoid",
];

/// The column `expr` names (`col`, `t.col`, `(col)`), lowercased.
fn column_of(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Identifier(id) => Some(id.value.to_ascii_lowercase()),
        Expr::CompoundIdentifier(parts) => parts.last().map(|p| p.value.to_ascii_lowercase()),
        Expr::Nested(inner) => column_of(inner),
        _ => None,
    }
}

/// The column a cast reads, when it reads one directly.
fn cast_column(expr: &Expr) -> Option<String> {
    let Expr::Cast { expr: inner, .. } = expr else { return None };
    column_of(inner)
}

impl Rule for RegprocCasts {
    fn name(&self) -> &'static str {
        "regproc_casts"
    }
    /// Postgres names `prsstart::oid` after its column; DataFusion names a
    /// cast of a qualified column by the qualified name.
    fn query(&self, query: &mut Query, _cx: &Context) -> bool {
        let SetExpr::Select(select) = query.body.as_mut() else { return false };
        let mut changed = false;
        for item in &mut select.projection {
            let SelectItem::UnnamedExpr(e) = item else { continue };
            if let Some(column) = cast_column(e).filter(|c| REGPROC_COLUMNS.contains(&c.as_str())) {
                let alias = datafusion::sql::sqlparser::ast::Ident::new(column);
                *item = SelectItem::ExprWithAlias { expr: e.clone(), alias };
                changed = true;
            }
        }
        changed
    }
    fn expr(&self, expr: &mut Expr, _cx: &Context) -> bool {
        let Expr::Cast { data_type, expr: inner, .. } = expr else { return false };
        if is_custom(data_type, "regproc") {
            *data_type = DataType::Text;
            return true;
        }
        let Some(column) = column_of(inner) else { return false };
        if (is_custom(data_type, "oid") || matches!(data_type, DataType::Custom(..) if data_type.to_string().ends_with("oid")))
            && REGPROC_COLUMNS.contains(&column.as_str())
        {
            // TRY_CAST of a name is NULL, and keeps the column's name as the
            // output's (`oprcode`), which pg_dump reads its results by.
            *expr = parse_expr(&format!("TRY_CAST({inner} AS BIGINT)")).expect("parses");
            return true;
        }
        false
    }
}

/// pg_dump reads `tableoid` beside `oid` from every catalog (`SELECT
/// tableoid, oid, … FROM pg_am`, `c.tableoid` in joins): Postgres' system
/// column holding the OID of the table a row lives in, which the fixed
/// catalog's tables do not have. A `tableoid` of a system catalog in the
/// query's FROM (qualified by its name or alias, or unqualified when the
/// FROM has that one table) becomes that catalog's fixed OID.
pub(crate) struct TableoidColumn;

impl Rule for TableoidColumn {
    fn name(&self) -> &'static str {
        "tableoid_column"
    }
    fn query(&self, query: &mut Query, _cx: &Context) -> bool {
        use datafusion::sql::sqlparser::ast::{TableFactor, VisitMut, VisitorMut};
        use std::ops::ControlFlow;
        let SetExpr::Select(select) = query.body.as_mut() else { return false };
        // Catalog tables of this FROM by the name they are referred to.
        let mut tables: Vec<(String, i64)> = Vec::new();
        let mut relations = 0;
        for from in &select.from {
            for factor in std::iter::once(&from.relation).chain(from.joins.iter().map(|j| &j.relation)) {
                relations += 1;
                if let TableFactor::Table { name, alias, .. } = factor {
                    if let Some(oid) = catalog_oid(&last_part(name)) {
                        let referred =
                            alias.as_ref().map(|a| a.name.value.to_ascii_lowercase()).unwrap_or_else(|| last_part(name));
                        tables.push((referred, oid));
                    }
                }
            }
        }
        if tables.is_empty() {
            return false;
        }
        let only = (relations == 1).then(|| tables[0].1);
        struct Replace<'a> {
            tables: &'a [(String, i64)],
            only: Option<i64>,
            changed: bool,
        }
        impl VisitorMut for Replace<'_> {
            type Break = ();
            fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
                let oid = match &*expr {
                    Expr::Identifier(id) if id.value.eq_ignore_ascii_case("tableoid") => self.only,
                    Expr::CompoundIdentifier(parts) if parts.len() == 2 && parts[1].value.eq_ignore_ascii_case("tableoid") => {
                        let table = parts[0].value.to_ascii_lowercase();
                        self.tables.iter().find(|(t, _)| *t == table).map(|(_, oid)| *oid)
                    }
                    _ => None,
                };
                if let Some(new) = oid.and_then(|oid| parse_expr(&oid.to_string())) {
                    *expr = new;
                    self.changed = true;
                }
                ControlFlow::Continue(())
            }
        }
        // An unaliased `x.tableoid` item keeps its name once it is a number.
        for item in &mut select.projection {
            if let SelectItem::UnnamedExpr(e) = item {
                if column_of(e).as_deref() == Some("tableoid") {
                    let alias = datafusion::sql::sqlparser::ast::Ident::new("tableoid");
                    *item = SelectItem::ExprWithAlias { expr: e.clone(), alias };
                }
            }
        }
        let mut replace = Replace { tables: &tables, only, changed: false };
        let _ = select.visit(&mut replace);
        replace.changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rewrite::rewrite_with;

    /// `rule` alone turns `sql` into SQL containing `expected`; None: it leaves
    /// `sql` alone.
    fn assert_rewrite(rule: &dyn Rule, sql: &str, expected: Option<&str>) {
        let out = rewrite_with(sql, &[rule], None).expect("without a workspace nothing fails");
        match (expected, &out) {
            (Some(part), Some(out)) => assert!(out.contains(part), "{}: {out}", rule.name()),
            (None, None) => {}
            _ => panic!("{}: {sql} gave {out:?}, expected {expected:?}", rule.name()),
        }
    }

    #[test]
    fn each_rule_alone() {
        assert_rewrite(&NameRepeatedOutputs, "SELECT a, NULL, NULL FROM t", Some("NULL AS \"?column?2\""));
        assert_rewrite(&NameRepeatedOutputs, "SELECT a, NULL FROM t WHERE b IS NULL", None);
        assert_rewrite(
            &SystemRegclassToOid,
            "SELECT 1 FROM pg_description d WHERE d.classoid = 'pg_class'::regclass",
            Some("= 1259"),
        );
        assert_rewrite(
            &SystemRegclassToOid,
            "SELECT 1 FROM t WHERE x = CAST($1 AS REGCLASS)",
            Some("hb_regclass(CAST($1 AS TEXT))"),
        );
        assert_rewrite(&SystemRegclassToOid, "SELECT 'note'::regclass", None);
        assert_rewrite(
            &KeepDataSubqueries,
            "SELECT c.name, (SELECT count(*) FROM o WHERE o.c = c.id) AS n FROM c",
            Some("((SELECT count(*) FROM o WHERE o.c = c.id)) AS n"),
        );
        assert_rewrite(&KeepDataSubqueries, "SELECT (SELECT n.nspname FROM pg_catalog.pg_namespace n) FROM t", None);
        assert_rewrite(
            &KeepDataSubqueries,
            "SELECT (SELECT max(nspname) FROM pg_namespace WHERE oid = pronamespace) FROM pg_proc",
            Some("((SELECT max(nspname) FROM pg_namespace WHERE oid = pronamespace))"),
        );
        assert_rewrite(
            &KeepDataSubqueries,
            "SELECT (SELECT max(d.adbin) FROM pg_attrdef d WHERE d.adrelid = a.attrelid) FROM pg_attribute a",
            None,
        );
        assert_rewrite(&KeepDataSubqueries, "SELECT (SELECT typname FROM pg_type LIMIT 1) FROM pg_proc", None);
        assert_rewrite(
            &UnnestVectorColumns,
            "SELECT unnest(proargtypes) FROM pg_proc WHERE oid = '1242'",
            Some("unnest(hb_oidvector(proargtypes))"),
        );
        assert_rewrite(&UnnestVectorColumns, "SELECT unnest(i.indkey) FROM pg_index i", Some("unnest(hb_oidvector(i.indkey))"));
        assert_rewrite(&UnnestVectorColumns, "SELECT unnest(tags) FROM t", None);
        assert_rewrite(
            &ExpandArray,
            "SELECT (information_schema._pg_expandarray(i.indkey)).n AS key_seq, information_schema._pg_expandarray(i.indkey) AS keys FROM pg_catalog.pg_index i",
            Some(
                "unnest(generate_series(1, CAST(cardinality(hb_oidvector(i.indkey)) AS BIGINT))) AS key_seq, unnest(hb_oidvector(i.indkey)) AS keys",
            ),
        );
        assert_rewrite(
            &ExpandArray,
            "SELECT r.a FROM (SELECT information_schema._pg_expandarray(i.indkey) AS keys, i.a FROM pg_catalog.pg_index i) r WHERE r.a = (r.keys).x",
            Some("WHERE r.a = r.keys"),
        );
        assert_rewrite(&ExpandArray, "SELECT (t.c).x FROM t", None);
        assert_rewrite(
            &ExpandArray,
            "SELECT (information_schema._pg_expandarray(i.indkey)).n AS p, i.indoption AS o FROM pg_catalog.pg_index i",
            Some("hb_oidvector(i.indoption) AS o"),
        );
        assert_rewrite(
            &UnnestVectorColumns,
            "SELECT generate_subscripts(pg_catalog.pg_index.indkey, $1::INTEGER) FROM pg_catalog.pg_index",
            Some(
                "unnest(generate_series(1, CASE WHEN ($1::INTEGER) = 1 THEN CAST(cardinality(hb_oidvector(pg_catalog.pg_index.indkey)) AS BIGINT) ELSE 0 END))",
            ),
        );
        assert_rewrite(
            &KeepDataSubqueries,
            "SELECT (SELECT max(typname) FROM pg_type) FROM t",
            Some("((SELECT max(typname) FROM pg_type))"),
        );
        assert_rewrite(
            &RegtypeTextToName,
            "SELECT a.atttypid::regtype::text FROM pg_attribute a",
            Some("format_type(a.atttypid, NULL)"),
        );
        assert_rewrite(
            &RegtypeArrayToText,
            "SELECT p.proargtypes::regtype[] FROM pg_proc p",
            Some("string_to_array(btrim(CAST(p.proargtypes AS TEXT)"),
        );
        assert_rewrite(
            &AggregateCorrelatedSubquery,
            "SELECT (SELECT d.x FROM pg_attrdef d WHERE d.adrelid = a.attrelid) FROM pg_attribute a",
            Some("(SELECT max(d.x) FROM"),
        );
        assert_rewrite(&AggregateCorrelatedSubquery, "SELECT (SELECT max(x) FROM t WHERE t.y = s.y) FROM s", None);
        assert_rewrite(
            &CaseSubqueryToWhen,
            "SELECT CASE WHEN a.f THEN (SELECT 1 FROM t) END, NULL FROM a",
            Some("hb_when(a.f, (SELECT 1 FROM t))"),
        );
        assert_rewrite(
            &QuotedOidArguments,
            "SELECT pg_table_is_visible('16387'), NULL, NULL",
            Some("pg_table_is_visible(CAST(16387 AS INTEGER))"),
        );
        assert_rewrite(&QuotedOidArguments, "SELECT upper('16387'), NULL, NULL", None);
        assert_rewrite(
            &CatalogArraySubqueryToNull,
            "SELECT c.x || array(select 1 from pg_catalog.pg_class), NULL FROM pg_catalog.pg_class c",
            Some("c.x || CAST(NULL AS TEXT[])"),
        );
        assert_rewrite(&CatalogArraySubqueryToNull, "SELECT array(select 1 from t), NULL, NULL FROM t", None);
    }

    #[test]
    fn name_subscripts_are_characters() {
        assert_rewrite(&NameSubscript, "SELECT typname[0] = '_' FROM pg_catalog.pg_type", Some("SUBSTR(typname, 1, 1) = '_'"));
        assert_rewrite(&NameSubscript, "SELECT tags[1] FROM pg_catalog.pg_type", None);
    }

    #[test]
    fn char_and_regproc_casts() {
        assert_rewrite(&CharTypeToText, "SELECT 'r'::\"char\" FROM pg_class", Some("'r'::TEXT"));
        assert_rewrite(&CharTypeToText, "SELECT 'r'::char FROM pg_class", None);
        assert_rewrite(&RegprocCasts, "SELECT amhandler::pg_catalog.regproc FROM pg_am", Some("amhandler::TEXT"));
        assert_rewrite(
            &RegprocCasts,
            "SELECT tableoid, oprcode::oid AS oprcode FROM pg_operator",
            Some("TRY_CAST(oprcode AS BIGINT) AS oprcode"),
        );
        assert_rewrite(&RegprocCasts, "SELECT oid::oid FROM pg_proc", None);
    }

    #[test]
    fn tableoid_is_the_catalogs_oid() {
        assert_rewrite(
            &TableoidColumn,
            "SELECT tableoid, oid, amname FROM pg_am",
            Some("SELECT 2601 AS tableoid, oid, amname FROM pg_am"),
        );
        assert_rewrite(
            &TableoidColumn,
            "SELECT c.tableoid, t.tableoid AS t FROM pg_class c JOIN pg_catalog.pg_type t ON t.oid = c.reltype WHERE c.tableoid > 0",
            Some(
                "SELECT 1259 AS tableoid, 1247 AS t FROM pg_class c JOIN pg_catalog.pg_type t ON t.oid = c.reltype WHERE 1259 > 0",
            ),
        );
        // Unqualified among several tables is ambiguous, and a user table's is left alone.
        assert_rewrite(&TableoidColumn, "SELECT tableoid FROM pg_class c, pg_type t", None);
        assert_rewrite(&TableoidColumn, "SELECT tableoid FROM product", None);
    }

    #[test]
    fn rule_names_are_distinct() {
        let mut names: Vec<&str> = RULES.iter().map(|r| r.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), RULES.len());
    }
}

/// The catalogs' oidvector and int2vector columns, which the fixed catalog
/// (and describe.rs) keep in their text form, `'23 25'`.
const VECTOR_COLUMNS: &[&str] = &["proargtypes", "indkey", "indclass", "indcollation", "indoption", "partclass", "partattrs"];

/// `unnest(proargtypes)` (sqlsmith's routine signatures; Postgres unnests an
/// oidvector into its OIDs) and `generate_subscripts(indkey, 1)` beside
/// `unnest(indkey)` (SQLAlchemy's primary key, unique constraint and index
/// reflection): DataFusion cannot unnest text. They become
/// `unnest(hb_oidvector(proargtypes))`, the numbers (none for a function
/// without arguments: splitting the text gave one '' there, which clients
/// failed to read as an OID), and `unnest(generate_series(1,
/// cardinality(hb_oidvector(indkey))))`, their positions; two unnests in one
/// select list pair up row by row, as Postgres pairs set-returning functions.
pub(crate) struct UnnestVectorColumns;

impl Rule for UnnestVectorColumns {
    fn name(&self) -> &'static str {
        "unnest_vector_columns"
    }
    fn expr(&self, expr: &mut Expr, _cx: &Context) -> bool {
        let Expr::Function(f) = expr else { return false };
        let function = last_part(&f.name);
        let FunctionArguments::List(list) = &f.args else { return false };
        let (column, dimension) = match (function.as_str(), list.args.as_slice()) {
            ("unnest", [FunctionArg::Unnamed(FunctionArgExpr::Expr(column))]) => (column, None),
            (
                "generate_subscripts",
                [FunctionArg::Unnamed(FunctionArgExpr::Expr(column)), FunctionArg::Unnamed(FunctionArgExpr::Expr(d))],
            ) => (column, Some(d)),
            _ => return false,
        };
        let Some(name) = column_of(column) else { return false };
        if !VECTOR_COLUMNS.contains(&name.as_str()) {
            return false;
        }
        let numbers = format!("{}({column})", helpers::OIDVECTOR);
        let new = match dimension {
            None => format!("unnest({numbers})"),
            // A vector has one dimension: subscripts 1..n there, none in any
            // other (the dimension may be a bound parameter, so it stays).
            Some(d) => {
                format!("unnest(generate_series(1, CASE WHEN ({d}) = 1 THEN CAST(cardinality({numbers}) AS BIGINT) ELSE 0 END))")
            }
        };
        replace(expr, parse_expr(&new))
    }
}

/// pgJDBC's `getPrimaryKeys` numbers a key's columns with
/// `information_schema._pg_expandarray(i.indkey)`, a function of rows `(x, n)`
/// (each element and its position) that DataFusion does not have, reading
/// `(…).n` in one column, the rows themselves in another (`AS keys`) and
/// `(keys).x` outside. The element becomes `unnest(hb_oidvector(v))`, the
/// position `unnest(generate_series(1, cardinality(hb_oidvector(v))))` (two
/// unnests in one select list pair up row by row), and `(keys).x` the column.
/// Its `getIndexInfo` subscripts `i.indoption` (int2vector text here), which
/// becomes `hb_oidvector(i.indoption)`; every index here is ascending (all
/// options 0), so whichever element the 0-based subscript reads, or NULL past
/// the end, the answer is 'A'.
pub(crate) struct ExpandArray;

impl Rule for ExpandArray {
    fn name(&self) -> &'static str {
        "expand_array"
    }
    fn expr(&self, expr: &mut Expr, cx: &Context) -> bool {
        if !cx.expandarray {
            return false;
        }
        let new = match &*expr {
            Expr::CompoundIdentifier(parts) if parts.last().is_some_and(|p| p.value.eq_ignore_ascii_case("indoption")) => {
                parse_expr(&format!("{}({expr})", helpers::OIDVECTOR))
            }
            Expr::Function(f) if last_part(&f.name) == "_pg_expandarray" => {
                expandarray_argument(expr).and_then(|v| parse_expr(&format!("unnest({}({v}))", helpers::OIDVECTOR)))
            }
            Expr::CompoundFieldAccess { root, access_chain } => {
                let [AccessExpr::Dot(Expr::Identifier(field))] = access_chain.as_slice() else { return false };
                let mut inner = root.as_ref();
                while let Expr::Nested(e) = inner {
                    inner = e;
                }
                // The function may already be the element's unnest (rules run bottom-up).
                let vector = expandarray_argument(inner).or_else(|| unnested_vector(inner));
                match (field.value.to_ascii_lowercase().as_str(), vector) {
                    ("n", Some(v)) => parse_expr(&format!(
                        "unnest(generate_series(1, CAST(cardinality({}({v})) AS BIGINT)))",
                        helpers::OIDVECTOR
                    )),
                    ("x", Some(v)) => parse_expr(&format!("unnest({}({v}))", helpers::OIDVECTOR)),
                    ("x", None) if matches!(inner, Expr::Identifier(_) | Expr::CompoundIdentifier(_)) => Some(inner.clone()),
                    _ => None,
                }
            }
            _ => None,
        };
        replace(expr, new)
    }
}

/// The vector `_pg_expandarray(v)` expands.
fn expandarray_argument(expr: &Expr) -> Option<String> {
    let Expr::Function(f) = expr else { return None };
    (last_part(&f.name) == "_pg_expandarray").then(|| only_argument(f)).flatten().map(ToString::to_string)
}

/// The vector of `unnest(hb_oidvector(v))`.
fn unnested_vector(expr: &Expr) -> Option<String> {
    let Expr::Function(f) = expr else { return None };
    let Expr::Function(inner) = only_argument(f).filter(|_| last_part(&f.name) == "unnest")? else { return None };
    (last_part(&inner.name) == helpers::OIDVECTOR).then(|| only_argument(inner)).flatten().map(ToString::to_string)
}

/// The argument of a call with one, `f(x)`.
fn only_argument(f: &datafusion::sql::sqlparser::ast::Function) -> Option<&Expr> {
    let FunctionArguments::List(list) = &f.args else { return None };
    let [FunctionArg::Unnamed(FunctionArgExpr::Expr(argument))] = list.args.as_slice() else { return None };
    Some(argument)
}

/// `SELECT … FROM pg_indexes` (people, Rails' and Django's index checks;
/// pg_dump's `FROM pg_transform`): Postgres finds pg_catalog's views before
/// the schema's tables; DataFusion looks in the default schema only, and
/// datafusion-pg-catalog qualifies the fixed catalog's tables but knows none
/// of the ones describe.rs adds.
pub(crate) struct QualifyPgIndexes;

impl Rule for QualifyPgIndexes {
    fn name(&self) -> &'static str {
        "qualify_pg_indexes"
    }
    fn query(&self, query: &mut Query, _cx: &Context) -> bool {
        use datafusion::sql::sqlparser::ast::{Ident, ObjectNamePart, visit_relations_mut};
        let mut changed = false;
        let _ = visit_relations_mut(query, |name| {
            if let [ObjectNamePart::Identifier(table)] = name.0.as_slice() {
                let ours = ["pg_indexes", "pg_transform", "pg_seclabels"];
                if table.quote_style.is_none() && ours.iter().any(|t| table.value.eq_ignore_ascii_case(t)) {
                    name.0.insert(0, ObjectNamePart::Identifier(Ident::new("pg_catalog")));
                    changed = true;
                }
            }
            std::ops::ControlFlow::<()>::Continue(())
        });
        changed
    }
}
