//! Rewrites of the catalog queries drivers send that DataFusion cannot plan as
//! written. Applied before datafusion-postgres sees the statement, and only
//! when the statement needs one: other SQL passes through untouched.
//!
//! Each rewrite is a named rule in [`rules`] (one struct each, with the client
//! that needs it and the DataFusion gap it closes), applied in the order of
//! [`rules::RULES`], as datafusion-pg-catalog's `sql/rules.rs` assembles its
//! own. The SQL helper functions rules emit (`hb_when`, `hb_regclass`,
//! `hb_null`) are defined in compat.rs under the names in [`helpers`].

mod rules;

use std::collections::HashSet;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    BinaryOperator, DataType, Expr, ObjectName, Query, SelectItem, SetExpr, TableFactor, Value, VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

pub(crate) use rules::RULES;

/// Names of the SQL functions the rules emit (registered by compat.rs).
pub(crate) mod helpers {
    /// `hb_when(condition, value)`: value where condition holds, else NULL.
    pub(crate) const WHEN: &str = "hb_when";
    /// `hb_regclass(name)`: a system catalog's OID, NULL for anything else.
    pub(crate) const REGCLASS: &str = "hb_regclass";
    /// `hb_null(…)`: NULL, naming parameters that must stay in the statement.
    pub(crate) const NULL: &str = "hb_null";
    /// `hb_oidvector(text)`: an oidvector's or int2vector's text (`'23 25'`)
    /// as a list of numbers, empty for `''`.
    pub(crate) const OIDVECTOR: &str = "hb_oidvector";
}

/// The system catalogs (every `pg_catalog` table of Postgres 15) with their
/// fixed OIDs: clients name them in `::regclass` casts, and each row's
/// `tableoid` is its catalog's OID.
const CATALOG_OIDS: &[(&str, i64)] = &[
    ("pg_default_acl", 826),
    ("pg_tablespace", 1213),
    ("pg_shdepend", 1214),
    ("pg_type", 1247),
    ("pg_attribute", 1249),
    ("pg_proc", 1255),
    ("pg_class", 1259),
    ("pg_authid", 1260),
    ("pg_auth_members", 1261),
    ("pg_database", 1262),
    ("pg_foreign_server", 1417),
    ("pg_user_mapping", 1418),
    ("pg_sequence", 2224),
    ("pg_foreign_data_wrapper", 2328),
    ("pg_shdescription", 2396),
    ("pg_aggregate", 2600),
    ("pg_am", 2601),
    ("pg_amop", 2602),
    ("pg_amproc", 2603),
    ("pg_attrdef", 2604),
    ("pg_cast", 2605),
    ("pg_constraint", 2606),
    ("pg_conversion", 2607),
    ("pg_depend", 2608),
    ("pg_description", 2609),
    ("pg_index", 2610),
    ("pg_inherits", 2611),
    ("pg_language", 2612),
    ("pg_largeobject", 2613),
    ("pg_namespace", 2615),
    ("pg_opclass", 2616),
    ("pg_operator", 2617),
    ("pg_rewrite", 2618),
    ("pg_statistic", 2619),
    ("pg_trigger", 2620),
    ("pg_opfamily", 2753),
    ("pg_db_role_setting", 2964),
    ("pg_largeobject_metadata", 2995),
    ("pg_extension", 3079),
    ("pg_foreign_table", 3118),
    ("pg_policy", 3256),
    ("pg_partitioned_table", 3350),
    ("pg_statistic_ext", 3381),
    ("pg_init_privs", 3394),
    ("pg_statistic_ext_data", 3429),
    ("pg_collation", 3456),
    ("pg_event_trigger", 3466),
    ("pg_enum", 3501),
    ("pg_range", 3541),
    ("pg_transform", 3576),
    ("pg_shseclabel", 3592),
    ("pg_seclabel", 3596),
    ("pg_ts_dict", 3600),
    ("pg_ts_parser", 3601),
    ("pg_ts_config", 3602),
    ("pg_ts_config_map", 3603),
    ("pg_ts_template", 3764),
    ("pg_replication_origin", 6000),
    ("pg_subscription", 6100),
    ("pg_subscription_rel", 6102),
    ("pg_publication", 6104),
    ("pg_publication_rel", 6106),
    ("pg_publication_namespace", 6237),
    ("pg_parameter_acl", 6243),
];

/// The OID of a system catalog named as `regclass` text (`pg_class`,
/// `pg_catalog.pg_class`).
pub(crate) fn catalog_oid(name: &str) -> Option<i64> {
    let name = name.trim().trim_start_matches("pg_catalog.").trim_matches('"').to_ascii_lowercase();
    CATALOG_OIDS.iter().find(|(n, _)| *n == name).map(|(_, oid)| *oid)
}

/// One rewrite. A rule changes an expression (bottom-up, every expression of
/// the statement) or a query (after its parts), in place, and says whether it
/// did. For each expression, the first rule that changes it wins.
pub(crate) trait Rule: Sync {
    /// A short name, for logs and tests.
    fn name(&self) -> &'static str;
    fn expr(&self, _expr: &mut Expr, _cx: &Context) -> bool {
        false
    }
    fn query(&self, _query: &mut Query, _cx: &Context) -> bool {
        false
    }
}

/// What the rules know of the statement being rewritten.
pub(crate) struct Context {
    /// The statement reads the system catalogs (psql's `\d` and the like).
    pub catalog: bool,
    /// The statement calls `information_schema._pg_expandarray` (pgJDBC's key listings).
    pub expandarray: bool,
}

/// The rewritten SQL, or None when nothing in it needs rewriting (writes never
/// do; a query that does not parse here is left for datafusion-postgres to report).
#[cfg(test)]
pub(crate) fn rewrite(sql: &str) -> Option<String> {
    rewrite_with(sql, RULES, None).expect("without a workspace nothing fails")
}

/// [`rewrite`] for a statement sent to `ws`, which also gives tables with
/// system columns their Postgres shape (`Workspace::shape_statement`: `*`
/// and positional INSERTs cover the declared columns) and writes vectors in
/// pgvector's text form and arrays in Postgres' array text as ARRAY literals
/// (`Workspace::list_literals`: a malformed vector, or one of the wrong
/// dimension, is the statement's error).
pub(crate) fn rewrite_for(ws: &heavenbase::Workspace, sql: &str) -> heavenbase::Result<Option<String>> {
    rewrite_with(sql, RULES, Some(ws))
}

fn rewrite_with(sql: &str, rules: &[&dyn Rule], ws: Option<&heavenbase::Workspace>) -> heavenbase::Result<Option<String>> {
    if let Some(plain) = plain_operators(sql) {
        let again = rewrite_with(&plain, rules, ws)?;
        return Ok(Some(again.unwrap_or(plain)));
    }
    let lower = sql.to_ascii_lowercase();
    let lists = ws.filter(|ws| {
        (lower.contains("insert") || lower.contains("update")) && (sql.contains('[') || sql.contains('{')) && ws.has_list_fields()
    });
    let shape = ws.filter(|ws| (sql.contains('*') || lower.contains("insert")) && ws.has_system_columns());
    // `DEFAULT` in VALUES and `DEFAULT VALUES` (Workspace::insert_defaults).
    let defaults = ws.filter(|_| lower.trim_start().starts_with("insert") && lower.contains("default"));
    let query = ["select", "with", "("].iter().any(|start| lower.trim_start().starts_with(start));
    let worth_parsing = query
        && (lower.contains("regclass")
            || lower.contains("regtype")
            || lower.matches("select").nth(1).is_some()
            || lower.matches("null").nth(1).is_some()
            || lower.contains("pg_indexes")
            || lower.contains("unnest")
            || lower.contains("generate_subscripts")
            || lower.contains("_pg_expandarray")
            || lower.contains("tableoid")
            || lower.contains("\"char\"")
            || lower.contains("regproc")
            || lower.contains("pg_transform")
            || lower.contains("indstatcols")
            || lower.contains("name["));
    // Long AND/OR chains in any statement are balanced before anything plans
    // them (heavenbase::chains): as written they would overflow the stack.
    let chains = heavenbase::chains::may_hold_chain(sql);
    // Every query's unaliased items are named as Postgres names them
    // (heavenbase::colnames), so every query is parsed (once: prepared
    // statements are cached by their text). Not the system-catalog queries
    // drivers send: they alias what they read by name, read the rest by
    // position, and the rules below match their items as written.
    let catalog_query = lower.contains("pg_") || lower.contains("information_schema") || lower.contains("regclass");
    // An INSERT's SELECT too: DataFusion refuses its items sharing a name
    // (`SELECT CAST(v AS text), CAST(v AS text)`), which Postgres takes.
    let insert_select = lower.trim_start().starts_with("insert") && lower.contains("select");
    let named = ws.is_some() && (query || insert_select) && !catalog_query;
    // EXISTS in a select list (heavenbase::exists; psql's `\d index`).
    let exists = query && heavenbase::exists::may_hold_exists(sql);
    // `x::uuid`, which DataFusion has no type for (heavenbase::uuids).
    let uuid_casts = ws.is_some() && heavenbase::uuids::may_cast_to_uuid(sql);
    // SQLAlchemy's multi-row INSERT … SELECT … FROM (VALUES …) (heavenbase::insert_values).
    let insert_values = insert_select && lower.contains("values");
    if !worth_parsing
        && !chains
        && shape.is_none()
        && !named
        && !insert_values
        && lists.is_none()
        && defaults.is_none()
        && !exists
        && !uuid_casts
    {
        return Ok(None);
    }
    let Ok(mut statements) = Parser::parse_sql(&PostgreSqlDialect {}, sql) else { return Ok(None) };
    for statement in &statements {
        heavenbase::check_subquery_columns(statement)?;
    }
    let balanced = chains && heavenbase::chains::balance_chains(&mut statements);
    let mut flattened = false;
    if insert_values {
        for statement in &mut statements {
            flattened |= heavenbase::insert_values::flatten_insert_values(statement);
        }
    }
    let mut shaped = false;
    if let Some(ws) = shape {
        for statement in &mut statements {
            shaped |= ws.shape_statement(statement);
        }
    }
    let mut defaulted = false;
    if let Some(ws) = defaults {
        for statement in &mut statements {
            defaulted |= ws.insert_defaults(statement)?;
        }
    }
    let mut listed = false;
    if let Some(ws) = lists {
        for statement in &mut statements {
            listed |= ws.list_literals(statement)?;
        }
    }
    let mut renamed = false;
    if named {
        for statement in &mut statements {
            renamed |= heavenbase::colnames::name_columns_as_postgres(statement);
        }
    }
    // After naming: an unaliased EXISTS keeps Postgres' name, `exists`.
    let mut existed = false;
    if exists {
        for statement in &mut statements {
            existed |= heavenbase::exists::exists_in_select_lists(statement);
        }
    }
    // After naming: `x::uuid` keeps the name Postgres gives it.
    let mut uuids = false;
    if uuid_casts {
        for statement in &mut statements {
            uuids |= heavenbase::uuids::casts_to_functions(statement);
        }
    }
    // Queries of the system catalogs, qualified or not (pg_dump sets an empty
    // search_path and still names some catalogs bare).
    let catalog = lower.contains("pg_catalog.") || lower.contains("from pg_") || lower.contains("join pg_");
    let cx = Context { catalog, expandarray: lower.contains("_pg_expandarray") };
    let mut rewriter = Rewriter { rules, cx, applied: Vec::new() };
    if worth_parsing {
        let _ = statements.visit(&mut rewriter);
    }
    if balanced {
        rewriter.applied.push("balanced_chains");
    }
    if flattened {
        rewriter.applied.push("insert_select_from_values");
    }
    if shaped {
        rewriter.applied.push("system_columns");
    }
    if renamed {
        rewriter.applied.push("postgres_column_names");
    }
    if listed {
        rewriter.applied.push("list_text");
    }
    if defaulted {
        rewriter.applied.push("insert_defaults");
    }
    if uuids {
        rewriter.applied.push("uuid_casts");
    }
    if existed {
        rewriter.applied.push("select_list_exists");
    }
    if rewriter.applied.is_empty() {
        return Ok(None);
    }
    let rewritten = statements.iter().map(heavenbase::render::sql_text).collect::<Vec<_>>().join("; ");
    tracing::debug!(rules = ?rewriter.applied, "catalog query rewritten for DataFusion: {rewritten}");
    Ok(Some(rewritten))
}

/// psql's and pg_dump's pattern lookups (`\d t`, `pg_dump -t t`) write
/// operators qualified, `c.relname OPERATOR(pg_catalog.~) '^(t)$' COLLATE
/// pg_catalog.default` and `relkind OPERATOR(pg_catalog.=) ANY (…)`, which
/// the SQL parser reads only in part (not before ANY). Every operator lives
/// in pg_catalog here, and every text compares in the one collation: the
/// text is written with the bare operators and without that COLLATE. None
/// when there is neither (the text is not touched).
fn plain_operators(sql: &str) -> Option<String> {
    if !sql.contains("OPERATOR(pg_catalog.") && !sql.contains("COLLATE pg_catalog.default") {
        return None;
    }
    let mut out = sql.replace(" COLLATE pg_catalog.default", "");
    while let Some(start) = out.find("OPERATOR(pg_catalog.") {
        let rest = &out[start + "OPERATOR(pg_catalog.".len()..];
        let end = rest.find(')')?;
        let op = rest[..end].to_string();
        // Only operator symbols; anything else is left for the parser to report.
        if op.is_empty() || !op.chars().all(|c| "=<>!~*+-/%^&|#@".contains(c)) {
            return None;
        }
        out.replace_range(start..start + "OPERATOR(pg_catalog.".len() + end + 1, &op);
    }
    Some(out)
}

struct Rewriter<'a> {
    rules: &'a [&'a dyn Rule],
    cx: Context,
    /// Names of the rules that changed something.
    applied: Vec<&'static str>,
}

impl VisitorMut for Rewriter<'_> {
    type Break = ();

    fn post_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        for rule in self.rules {
            if rule.query(query, &self.cx) {
                self.applied.push(rule.name());
            }
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Some(rule) = self.rules.iter().find(|rule| rule.expr(expr, &self.cx)) {
            self.applied.push(rule.name());
        }
        ControlFlow::Continue(())
    }
}

fn parse_expr(sql: &str) -> Option<Expr> {
    Parser::new(&PostgreSqlDialect {}).try_with_sql(sql).ok()?.parse_expr().ok()
}

fn is_regclass(ty: &DataType) -> bool {
    match ty {
        DataType::Regclass => true,
        other => is_custom(other, "regclass"),
    }
}

fn is_custom(ty: &DataType, name: &str) -> bool {
    matches!(ty, DataType::Custom(n, _) if n.to_string().to_ascii_lowercase().trim_start_matches("pg_catalog.") == name)
}

fn is_text(ty: &DataType) -> bool {
    matches!(ty, DataType::Text | DataType::Varchar(_) | DataType::String(_)) || is_custom(ty, "text") || is_custom(ty, "name")
}

/// A correlated scalar subquery DataFusion would refuse, as an expression it
/// plans: its one plain output wrapped in max(), and conditions on the outer
/// row alone (`WHERE outer.flag AND …`, which DataFusion cannot pull up past an
/// aggregate) moved outside as `hb_when(condition, (SELECT max(…) …))`.
///
/// DataFusion cannot aggregate an expression over the outer row's columns
/// either, nor join a table function to the outer row; in a catalog query such
/// a subquery (SQLAlchemy's identity options of a column, psql's publication
/// columns: nothing here has any) becomes NULL, as datafusion-pg-catalog
/// does with correlated subqueries it cannot plan.
fn aggregated(query: &Query, catalog: bool) -> Option<String> {
    if query.limit_clause.is_some() || query.fetch.is_some() || query.with.is_some() {
        return None;
    }
    let SetExpr::Select(select) = query.body.as_ref() else { return None };
    let [item] = select.projection.as_slice() else { return None };
    let (expr, alias) = match item {
        SelectItem::UnnamedExpr(e) => (e, None),
        SelectItem::ExprWithAlias { expr, alias } => (expr, Some(alias)),
        _ => return None,
    };
    let locals = Locals::of(select);
    // A set-returning function over the outer row (`generate_series(0,
    // array_upper(outer.list, 1))`, psql's publication columns) is a lateral
    // join DataFusion lacks.
    let lateral = select.from.iter().any(|f| {
        std::iter::once(&f.relation)
            .chain(f.joins.iter().map(|j| &j.relation))
            .any(|t| matches!(t, TableFactor::Table { args: Some(_), .. } | TableFactor::Function { .. }))
    });
    if lateral && locals.reads_outside(select.as_ref()) {
        return catalog.then(|| null_keeping_parameters(query));
    }
    let grouped = !matches!(&select.group_by, datafusion::sql::sqlparser::ast::GroupByExpr::Expressions(e, _) if e.is_empty());
    if grouped
        || select.having.is_some()
        || select.distinct.is_some()
        || is_aggregate(expr)
        || !locals.reads_outside(select.as_ref())
    {
        return None;
    }
    if locals.reads_outside(expr) {
        return catalog.then(|| null_keeping_parameters(query));
    }
    let mut rewritten = query.clone();
    let SetExpr::Select(select) = rewritten.body.as_mut() else { return None };
    let wrapped = parse_expr(&format!("max({expr})"))?;
    select.projection = vec![match alias {
        Some(alias) => SelectItem::ExprWithAlias { expr: wrapped, alias: alias.clone() },
        None => SelectItem::UnnamedExpr(wrapped),
    }];
    let (outer, inner): (Vec<Expr>, Vec<Expr>) =
        select.selection.take().map(conjuncts).unwrap_or_default().into_iter().partition(|c| locals.outer_only(c));
    select.selection =
        inner.into_iter().reduce(|a, b| Expr::BinaryOp { left: Box::new(a), op: BinaryOperator::And, right: Box::new(b) });
    if outer.is_empty() {
        return Some(format!("({rewritten})"));
    }
    let condition = outer.iter().map(|c| format!("({c})")).collect::<Vec<_>>().join(" AND ");
    Some(format!("{}({condition}, ({rewritten}))", helpers::WHEN))
}

/// NULL, still naming the parameters `query` used: datafusion-postgres binds
/// parameters by their order among those the plan names, so one must not
/// disappear from the statement.
fn null_keeping_parameters(query: &Query) -> String {
    let mut parameters = Vec::new();
    let _ = datafusion::sql::sqlparser::ast::visit_expressions(query, |e| {
        match e {
            Expr::Cast { expr, .. } if matches!(expr.as_ref(), Expr::Value(v) if matches!(v.value, Value::Placeholder(_))) => {
                parameters.push(e.to_string())
            }
            Expr::Value(v)
                if matches!(v.value, Value::Placeholder(_)) && !parameters.iter().any(|p| p.contains(&v.to_string())) =>
            {
                parameters.push(v.to_string())
            }
            _ => {}
        }
        ControlFlow::<()>::Continue(())
    });
    if parameters.is_empty() { "NULL".to_string() } else { format!("{}({})", helpers::NULL, parameters.join(", ")) }
}

fn conjuncts(expr: Expr) -> Vec<Expr> {
    match expr {
        Expr::BinaryOp { left, op: BinaryOperator::And, right } => {
            let mut all = conjuncts(*left);
            all.extend(conjuncts(*right));
            all
        }
        Expr::Nested(inner) if matches!(inner.as_ref(), Expr::BinaryOp { op: BinaryOperator::And, .. }) => conjuncts(*inner),
        other => vec![other],
    }
}

/// The system catalogs whose every column but `oid` starts with one prefix
/// (`pg_proc.pronamespace`, `pg_namespace.nspname`): a catalog query's
/// unqualified column names the catalog it belongs to.
const CATALOG_PREFIXES: &[(&str, &str)] = &[
    ("pg_aggregate", "agg"),
    ("pg_am", "am"),
    ("pg_attrdef", "ad"),
    ("pg_attribute", "att"),
    ("pg_authid", "rol"),
    ("pg_class", "rel"),
    ("pg_collation", "coll"),
    ("pg_constraint", "con"),
    ("pg_database", "dat"),
    ("pg_enum", "enum"),
    ("pg_extension", "ext"),
    ("pg_index", "ind"),
    ("pg_inherits", "inh"),
    ("pg_language", "lan"),
    ("pg_namespace", "nsp"),
    ("pg_opclass", "opc"),
    ("pg_operator", "opr"),
    ("pg_proc", "pro"),
    ("pg_range", "rng"),
    ("pg_roles", "rol"),
    ("pg_tablespace", "spc"),
    ("pg_trigger", "tg"),
    ("pg_type", "typ"),
];

/// The relations a select reads, by name and alias, and when it reads only
/// catalogs of [`CATALOG_PREFIXES`], their column prefixes.
struct Locals {
    names: HashSet<String>,
    prefixes: Option<Vec<&'static str>>,
}

impl Locals {
    fn of(select: &datafusion::sql::sqlparser::ast::Select) -> Self {
        let mut local = HashSet::new();
        let mut prefixes = Some(Vec::new());
        for from in &select.from {
            for factor in std::iter::once(&from.relation).chain(from.joins.iter().map(|j| &j.relation)) {
                let TableFactor::Table { name, alias, .. } = factor else {
                    prefixes = None;
                    continue;
                };
                let table = last_part(name);
                let prefix = CATALOG_PREFIXES.iter().find(|(catalog, _)| *catalog == table).map(|(_, p)| *p);
                prefixes = prefixes.zip(prefix).map(|(mut all, p)| {
                    all.push(p);
                    all
                });
                // An aliased table is known by its alias only, as in Postgres:
                // `pg_type.typelem` inside `FROM pg_type te` is the outer row's.
                match alias {
                    Some(alias) => local.insert(alias.name.value.to_ascii_lowercase()),
                    None => local.insert(table),
                };
            }
        }
        Locals { names: local, prefixes: prefixes.filter(|p| !p.is_empty()) }
    }

    /// Whether an unqualified column of a catalog-only select belongs to
    /// another catalog than the ones it reads (`pronamespace` in `SELECT
    /// nspname FROM pg_namespace WHERE oid = pronamespace`): the enclosing
    /// query's.
    fn is_outer_column(&self, column: &datafusion::sql::sqlparser::ast::Ident) -> bool {
        let Some(local) = &self.prefixes else { return false };
        let name = column.value.to_ascii_lowercase();
        let belongs = |prefix: &str| name.starts_with(prefix) && name.len() > prefix.len();
        name != "oid" && !local.iter().any(|p| belongs(p)) && CATALOG_PREFIXES.iter().any(|(_, p)| belongs(p))
    }

    /// Whether `outer_table.column` names a relation this select does not read.
    fn is_outer(&self, parts: &[datafusion::sql::sqlparser::ast::Ident]) -> bool {
        parts.len() >= 2 && !self.names.contains(&parts[parts.len() - 2].value.to_ascii_lowercase())
    }

    /// Whether `node` (a select, an expression) reads a column of the
    /// enclosing query.
    fn reads_outside(&self, node: &impl datafusion::sql::sqlparser::ast::Visit) -> bool {
        let mut outer = false;
        let _ = datafusion::sql::sqlparser::ast::visit_expressions(node, |e| {
            outer |= match e {
                Expr::CompoundIdentifier(parts) => self.is_outer(parts),
                Expr::Identifier(column) => self.is_outer_column(column),
                _ => false,
            };
            ControlFlow::<()>::Continue(())
        });
        outer
    }

    /// Whether `expr` reads only the enclosing query's columns (and constants).
    fn outer_only(&self, expr: &Expr) -> bool {
        let (mut outer, mut other) = (false, false);
        let _ = datafusion::sql::sqlparser::ast::visit_expressions(expr, |e| {
            match e {
                Expr::CompoundIdentifier(parts) if self.is_outer(parts) => outer = true,
                Expr::Identifier(column) if self.is_outer_column(column) => outer = true,
                Expr::CompoundIdentifier(_)
                | Expr::Identifier(_)
                | Expr::Subquery(_)
                | Expr::Exists { .. }
                | Expr::InSubquery { .. } => other = true,
                _ => {}
            }
            ControlFlow::<()>::Continue(())
        });
        outer && !other
    }
}

/// Give repeated unnamed outputs (`SELECT pubname, NULL, NULL`, psql's
/// publication listing) distinct names: Postgres allows the repeat, DataFusion
/// does not. Returns whether anything was renamed.
fn name_duplicates(body: &mut SetExpr) -> bool {
    match body {
        SetExpr::SetOperation { left, right, .. } => name_duplicates(left) | name_duplicates(right),
        SetExpr::Select(select) => {
            let mut seen = HashSet::new();
            let mut renamed = false;
            for (i, item) in select.projection.iter_mut().enumerate() {
                if let SelectItem::UnnamedExpr(expr) = item {
                    if !seen.insert(expr.to_string()) {
                        let alias = datafusion::sql::sqlparser::ast::Ident::with_quote('"', format!("?column?{i}"));
                        *item = SelectItem::ExprWithAlias { expr: expr.clone(), alias };
                        renamed = true;
                    }
                }
            }
            renamed
        }
        _ => false,
    }
}

fn has_subquery(expr: &Expr) -> bool {
    let mut found = false;
    let _ = datafusion::sql::sqlparser::ast::visit_expressions(expr, |e| {
        found |= matches!(e, Expr::Subquery(_));
        ControlFlow::<()>::Continue(())
    });
    found
}

fn is_aggregate(expr: &Expr) -> bool {
    const AGGREGATES: &[&str] = &["count", "max", "min", "sum", "avg", "array_agg", "string_agg", "bool_and", "bool_or", "every"];
    matches!(expr, Expr::Function(f) if AGGREGATES.contains(&last_part(&f.name).as_str()))
}

fn last_part(name: &ObjectName) -> String {
    name.0.last().map(|p| p.to_string().trim_matches('"').to_ascii_lowercase()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn correlated_scalar_subqueries_are_aggregated() {
        let sql = "SELECT a.attname, (SELECT pg_get_expr(d.adbin, d.adrelid) FROM pg_catalog.pg_attrdef d \
                   WHERE d.adrelid = a.attrelid) AS dflt FROM pg_catalog.pg_attribute a";
        let out = rewrite(sql).expect("rewritten");
        assert!(out.contains("max(pg_get_expr(d.adbin, d.adrelid))"), "{out}");
        let out =
            rewrite(&sql.replace("(SELECT", "CASE WHEN a.atthasdef THEN (SELECT").replace(" AS dflt", " ELSE NULL END AS dflt"))
                .unwrap();
        assert!(out.contains("hb_when(a.atthasdef, (SELECT max("), "{out}");
        // A condition on the outer row alone moves out of the subquery.
        let out = rewrite(&sql.replace("WHERE d.adrelid", "WHERE a.atthasdef AND d.adrelid")).unwrap();
        assert!(out.contains("hb_when((a.atthasdef), (SELECT max(pg_get_expr(d.adbin, d.adrelid)) FROM"), "{out}");
        assert!(out.contains("WHERE d.adrelid = a.attrelid)"), "{out}");
        // Uncorrelated, or already aggregated: not aggregated again, only kept
        // from datafusion-pg-catalog's NULL (rules::KeepDataSubqueries).
        assert_eq!(
            rewrite("SELECT (SELECT max(x) FROM t WHERE t.y = s.y) FROM s").as_deref(),
            Some("SELECT ((SELECT max(x) FROM t WHERE t.y = s.y)) FROM s")
        );
        assert_eq!(
            rewrite("SELECT (SELECT x FROM t WHERE t.y = 1) FROM s").as_deref(),
            Some("SELECT ((SELECT x FROM t WHERE t.y = 1)) FROM s")
        );
        assert_eq!(rewrite("SELECT 1"), None);
        // Correlated by an unqualified column of another catalog (sqlsmith's
        // routine listing): aggregated, and kept from datafusion-pg-catalog's LIMIT 1.
        let out = rewrite("SELECT (SELECT nspname FROM pg_namespace WHERE oid = pronamespace), oid FROM pg_proc").unwrap();
        assert_eq!(out, "SELECT ((SELECT max(nspname) FROM pg_namespace WHERE oid = pronamespace)), oid FROM pg_proc");
        // A column of the catalog the subquery reads is its own.
        assert_eq!(rewrite("SELECT (SELECT nspname FROM pg_namespace WHERE nspowner = 10) FROM pg_proc"), None);
    }

    #[test]
    fn system_catalog_regclass_casts_become_oids() {
        let out = rewrite("SELECT 1 FROM pg_description d WHERE d.classoid = 'pg_class'::regclass").unwrap();
        assert!(out.ends_with("d.classoid = 1259"), "{out}");
        let out = rewrite("SELECT 1 FROM pg_description d WHERE d.classoid = CAST($1 AS REGCLASS)").unwrap();
        assert!(out.contains("hb_regclass(CAST($1 AS TEXT))"), "{out}");
        // User tables keep datafusion-postgres' own lookup.
        assert_eq!(rewrite("SELECT 'note'::regclass"), None);
    }

    #[test]
    fn repeated_unnamed_outputs_get_names() {
        let out = rewrite("SELECT pubname, NULL, NULL FROM pg_catalog.pg_publication").unwrap();
        assert_eq!(out, "SELECT pubname, NULL, NULL AS \"?column?2\" FROM pg_catalog.pg_publication");
    }

    #[test]
    fn quoted_oids_become_numbers() {
        let out =
            rewrite("SELECT 1 WHERE pg_catalog.pg_relation_is_publishable('16387') AND x = '16387' AND y IS NULL AND z IS NULL")
                .unwrap();
        assert!(out.contains("pg_relation_is_publishable(CAST(16387 AS INTEGER)) AND x = '16387'"), "{out}");
    }

    #[test]
    fn regtype_text_is_the_type_name() {
        let out = rewrite("SELECT att.atttypid::regtype::text FROM pg_catalog.pg_attribute att").unwrap();
        assert!(out.contains("pg_catalog.format_type(att.atttypid, NULL)"), "{out}");
    }

    #[test]
    fn qualified_operators_are_written_bare() {
        let sql = "SELECT c.oid FROM pg_catalog.pg_class c WHERE c.relkind OPERATOR(pg_catalog.=) ANY (array['r', 'v']) \
                   AND c.relname OPERATOR(pg_catalog.~) '^(acct)$' COLLATE pg_catalog.default";
        assert_eq!(
            plain_operators(sql).as_deref(),
            Some("SELECT c.oid FROM pg_catalog.pg_class c WHERE c.relkind = ANY (array['r', 'v']) AND c.relname ~ '^(acct)$'")
        );
        assert_eq!(plain_operators("SELECT 1"), None);
    }

    #[test]
    fn array_subqueries_of_catalog_queries_are_empty() {
        let sql = "SELECT pg_catalog.array_to_string(c.reloptions || array(select 'toast.' || x from pg_catalog.unnest(tc.reloptions) x), ', ') \
                   FROM pg_catalog.pg_class c LEFT JOIN pg_catalog.pg_class tc ON (c.reltoastrelid = tc.oid)";
        let out = rewrite(sql).expect("rewritten");
        assert!(out.contains("c.reloptions || CAST(NULL AS TEXT[])"), "{out}");
    }
}
