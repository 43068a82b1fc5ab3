//! The SQL side of the `uuid` type (catalog's `LogicalType::Uuid`, kept as
//! canonical text): `gen_random_uuid()`, and `CAST(x AS uuid)` / `x::uuid`,
//! which DataFusion does not plan (it has no uuid type). A cast becomes
//! `hb_uuid(x)`, which reads every form Postgres reads and gives the
//! canonical one, so `WHERE id = 'A0EEBC99-…'::uuid` finds the row stored as
//! `a0eebc99-…`; text that is no UUID fails the statement with 22P02, as in
//! Postgres.

use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::arrow::error::ArrowError;
use datafusion::common::{DataFusionError, Result as DfResult, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility, create_udf,
};
use datafusion::sql::sqlparser::ast::{
    self, DataType as SqlType, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentList, FunctionArguments, Ident,
    ObjectName, Statement, VisitMut, VisitorMut,
};

/// The function a cast to uuid becomes.
pub const CAST_FUNCTION: &str = "hb_uuid";

/// The Arrow field metadata key that says which logical type a computed
/// text column holds, and its value for a uuid: Arrow has no uuid type of
/// ours (values are canonical text), so the functions that make uuids mark
/// their result, and the mark follows the column through projections,
/// aliases and subqueries, and survives constant folding. Clients are then
/// told the column is a `uuid` (crate::lineage).
pub const LOGICAL_TYPE_METADATA: &str = "heavenbase.logical_type";
pub const UUID_METADATA_VALUE: &str = "uuid";

/// `gen_random_uuid()` (Postgres 13+) and `uuid_generate_v4()` (uuid-ossp):
/// DataFusion's `uuid()`, a random version 4 UUID per row, lower case.
pub fn gen_random_uuid() -> ScalarUDF {
    UuidValued::wrap(datafusion::functions::string::uuid().as_ref().clone().with_aliases(["gen_random_uuid", "uuid_generate_v4"]))
}

/// `hb_uuid(text)`: the canonical form of a UUID given in any form Postgres
/// reads; NULL stays NULL; anything else is an error naming the text.
pub fn uuid_cast() -> ScalarUDF {
    UuidValued::wrap(create_udf(
        CAST_FUNCTION,
        vec![DataType::Utf8],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(canonical_uuids),
    ))
}

/// A text function whose values are uuids: `inner`, with its result field
/// marked [`LOGICAL_TYPE_METADATA`] = uuid.
#[derive(Debug, PartialEq, Eq, Hash)]
struct UuidValued {
    inner: ScalarUDF,
}

impl UuidValued {
    fn wrap(inner: ScalarUDF) -> ScalarUDF {
        ScalarUDF::new_from_impl(UuidValued { inner })
    }
}

impl ScalarUDFImpl for UuidValued {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }
    fn signature(&self) -> &Signature {
        self.inner.signature()
    }
    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }
    fn coerce_types(&self, args: &[DataType]) -> DfResult<Vec<DataType>> {
        self.inner.coerce_types(args)
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> DfResult<FieldRef> {
        let nullable = args.arg_fields.iter().any(|f| f.is_nullable());
        let metadata = [(LOGICAL_TYPE_METADATA.to_string(), UUID_METADATA_VALUE.to_string())].into();
        Ok(Arc::new(Field::new(self.name(), DataType::Utf8, nullable).with_metadata(metadata)))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        self.inner.invoke_with_args(args)
    }
}

/// Whether a plan's output field holds uuids computed by a function above.
pub fn is_uuid_valued(field: &Field) -> bool {
    field.metadata().get(LOGICAL_TYPE_METADATA).is_some_and(|v| v == UUID_METADATA_VALUE)
}

fn canonical_uuids(args: &[ColumnarValue]) -> DfResult<ColumnarValue> {
    let one = canonical_or_error;
    match &args[0] {
        ColumnarValue::Scalar(s) => {
            let text = match s {
                ScalarValue::Utf8(v) | ScalarValue::LargeUtf8(v) | ScalarValue::Utf8View(v) => v.clone(),
                other => Some(other.to_string()),
            };
            Ok(ColumnarValue::Scalar(ScalarValue::Utf8(text.as_deref().map(one).transpose()?)))
        }
        ColumnarValue::Array(a) => {
            let text = datafusion::arrow::compute::cast(a, &DataType::Utf8)?;
            let text = text.as_string::<i32>();
            let mut out = StringBuilder::with_capacity(text.len(), text.len() * 36);
            for value in text.iter() {
                match value {
                    Some(v) => out.append_value(one(v)?),
                    None => out.append_null(),
                }
            }
            Ok(ColumnarValue::Array(Arc::new(out.finish()) as ArrayRef))
        }
    }
}

/// Every `CAST(x AS uuid)` / `x::uuid` in a statement that reads or writes
/// rows, as `hb_uuid(x)`; whether anything changed. Definitions are left
/// alone: a column's `DEFAULT '…'::uuid` is a literal the definition reads
/// itself.
pub fn casts_to_functions(statement: &mut Statement) -> bool {
    if matches!(statement, Statement::CreateTable(_) | Statement::AlterTable { .. }) {
        return false;
    }
    let mut casts = UuidCasts { changed: false };
    let _ = statement.visit(&mut casts);
    casts.changed
}

/// Whether `sql` may cast to uuid (a cheap check before walking the tree).
pub fn may_cast_to_uuid(sql: &str) -> bool {
    sql.as_bytes().windows(4).any(|w| w.eq_ignore_ascii_case(b"uuid"))
}

struct UuidCasts {
    changed: bool,
}

impl VisitorMut for UuidCasts {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Expr::Cast { data_type, expr: inner, .. } = expr
            && is_uuid(data_type)
        {
            let mut argument = std::mem::replace(inner.as_mut(), Expr::value(ast::Value::Null));
            if matches!(&argument, Expr::Value(v) if matches!(v.value, ast::Value::Placeholder(_))) {
                // `$1::uuid`: the parameter is text (typed so, the decoder
                // reads an untyped `'{a0ee…}'` as text, not as an array).
                argument = Expr::Cast {
                    kind: ast::CastKind::DoubleColon,
                    expr: Box::new(argument),
                    data_type: SqlType::Text,
                    array: false,
                    format: None,
                };
            }
            *expr = Expr::Function(Function {
                name: ObjectName::from(vec![Ident::new(CAST_FUNCTION)]),
                uses_odbc_syntax: false,
                parameters: FunctionArguments::None,
                args: FunctionArguments::List(FunctionArgumentList {
                    duplicate_treatment: None,
                    args: vec![FunctionArg::Unnamed(FunctionArgExpr::Expr(argument))],
                    clauses: vec![],
                }),
                filter: None,
                null_treatment: None,
                over: None,
                within_group: vec![],
            });
            self.changed = true;
        }
        ControlFlow::Continue(())
    }
}

fn is_uuid(ty: &SqlType) -> bool {
    match ty {
        SqlType::Uuid => true,
        SqlType::Custom(name, _) => name.to_string().to_ascii_lowercase().trim_start_matches("pg_catalog.") == "uuid",
        _ => false,
    }
}

/// Text compared with a uuid column is read as a uuid, as Postgres reads an
/// untyped literal as the type of the column it meets: `WHERE id =
/// 'A0EEBC99-…'` (or `IN ('{a0eebc99…}', …)`) finds the row stored as
/// `a0eebc99-…`, and text that is no UUID fails with 22P02 instead of
/// matching nothing. An analyzer rule, after type coercion: a comparison of
/// a column with a text literal in a filter whose column is a Uuid field of
/// an entity table scanned below it (directly or under the table's alias).
/// A parameter (`$1`) is left to the wire, which reads one typed uuid the
/// same way; text from elsewhere (another column, a function) compares as
/// text.
#[derive(Debug, Default)]
pub struct UuidLiterals;

pub const UUID_LITERALS_RULE: &str = "uuid_literals";

impl datafusion::optimizer::AnalyzerRule for UuidLiterals {
    fn name(&self) -> &str {
        UUID_LITERALS_RULE
    }

    fn analyze(
        &self,
        plan: datafusion::logical_expr::LogicalPlan,
        _: &datafusion::config::ConfigOptions,
    ) -> DfResult<datafusion::logical_expr::LogicalPlan> {
        use datafusion::common::tree_node::{Transformed, TreeNode};
        use datafusion::logical_expr::LogicalPlan;
        plan.transform_up_with_subqueries(|node| {
            let LogicalPlan::Filter(filter) = &node else { return Ok(Transformed::no(node)) };
            let columns = uuid_columns(&filter.input);
            if columns.is_empty() {
                return Ok(Transformed::no(node));
            }
            node.map_expressions(|e| e.transform_up(|e| canonical_literals(e, &columns)))
        })
        .map(|t| t.data)
    }
}

/// The (table or alias, field) pairs of the Uuid fields of the entities
/// `plan` reads (crate::lineage).
fn uuid_columns(plan: &datafusion::logical_expr::LogicalPlan) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for (name, rt) in crate::lineage::entities_by_qualifier(plan) {
        for field in rt.def.fields.iter().filter(|f| f.ty == heavenbase_catalog::LogicalType::Uuid) {
            found.push((name.clone(), field.name.clone()));
        }
    }
    found
}

/// `e` with the text literals it compares with a uuid column canonical.
fn canonical_literals(
    e: datafusion::logical_expr::Expr,
    columns: &[(String, String)],
) -> DfResult<datafusion::common::tree_node::Transformed<datafusion::logical_expr::Expr>> {
    use datafusion::common::tree_node::Transformed;
    use datafusion::logical_expr::expr::{BinaryExpr, InList};
    use datafusion::logical_expr::{Expr as DfExpr, Operator};
    let is_uuid = |e: &DfExpr| match e {
        DfExpr::Column(c) => {
            columns.iter().any(|(table, field)| *field == c.name && c.relation.as_ref().is_none_or(|r| r.table() == table))
        }
        _ => false,
    };
    let canonical = |e: DfExpr| -> DfResult<DfExpr> {
        match e {
            DfExpr::Literal(ScalarValue::Utf8(Some(text)), meta) => {
                Ok(DfExpr::Literal(ScalarValue::Utf8(Some(canonical_or_error(&text)?)), meta))
            }
            DfExpr::Literal(ScalarValue::Utf8View(Some(text)), meta) => {
                Ok(DfExpr::Literal(ScalarValue::Utf8View(Some(canonical_or_error(&text)?)), meta))
            }
            other => Ok(other),
        }
    };
    let text_literal = |e: &DfExpr| matches!(e, DfExpr::Literal(ScalarValue::Utf8(Some(t)) | ScalarValue::Utf8View(Some(t)), _) if !heavenbase_catalog::types::is_canonical_uuid(t));
    Ok(match e {
        DfExpr::BinaryExpr(BinaryExpr { left, op, right })
            if matches!(op, Operator::Eq | Operator::NotEq | Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq)
                && ((is_uuid(&left) && text_literal(&right)) || (is_uuid(&right) && text_literal(&left))) =>
        {
            let (left, right) = (canonical(*left)?, canonical(*right)?);
            Transformed::yes(DfExpr::BinaryExpr(BinaryExpr::new(Box::new(left), op, Box::new(right))))
        }
        DfExpr::InList(InList { expr, list, negated }) if is_uuid(&expr) && list.iter().any(text_literal) => {
            let list = list.into_iter().map(canonical).collect::<DfResult<Vec<_>>>()?;
            Transformed::yes(DfExpr::InList(InList { expr, list, negated }))
        }
        other => Transformed::no(other),
    })
}

/// The canonical form of a UUID given as text; a cast error (22P02, as
/// Postgres answers) naming the text when it is none.
fn canonical_or_error(text: &str) -> DfResult<String> {
    if heavenbase_catalog::types::is_canonical_uuid(text) {
        return Ok(text.to_string());
    }
    heavenbase_catalog::types::canonical_uuid(text).ok_or_else(|| {
        let message = format!(
            "invalid input syntax for type uuid: {}",
            heavenbase_catalog::types::describe_value(&serde_json::Value::String(text.to_string()))
        );
        DataFusionError::ArrowError(Box::new(ArrowError::CastError(message)), None)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn rewritten(sql: &str) -> String {
        let mut statement = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap().remove(0);
        casts_to_functions(&mut statement);
        statement.to_string()
    }

    #[test]
    fn casts_to_uuid_become_the_canonicalizing_function() {
        assert_eq!(
            rewritten("SELECT 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'::uuid"),
            "SELECT hb_uuid('A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11')"
        );
        assert_eq!(rewritten("SELECT * FROM t WHERE id = CAST($1 AS uuid)"), "SELECT * FROM t WHERE id = hb_uuid($1::TEXT)");
        assert_eq!(rewritten("SELECT x::text FROM t"), "SELECT x::TEXT FROM t");
        // A definition keeps its cast literal.
        assert!(rewritten("CREATE TABLE t (id uuid DEFAULT 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid)").contains("::UUID"));
    }

    #[test]
    fn the_cast_reads_postgres_forms_and_refuses_others() {
        let out = canonical_uuids(&[ColumnarValue::Array(Arc::new(datafusion::arrow::array::StringArray::from(vec![
            Some("{A0EEBC99-9C0B4EF8-BB6D6BB9-BD380A11}"),
            Some("a0eebc999c0b4ef8bb6d6bb9bd380a11"),
            None,
        ])))])
        .unwrap();
        let ColumnarValue::Array(a) = out else { panic!("an array") };
        let a = a.as_string::<i32>();
        assert_eq!(a.value(0), "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
        assert_eq!(a.value(1), "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
        assert!(a.is_null(2));
        let bad = canonical_uuids(&[ColumnarValue::Scalar(ScalarValue::Utf8(Some("a0ee-bc99".into())))]).unwrap_err();
        assert!(bad.to_string().contains("invalid input syntax for type uuid: 'a0ee-bc99'"), "{bad}");
    }
}
