//! Filters a SQL backend runs itself: a DataFusion `Expr` over a group's columns
//! rendered as a parameterised SQL predicate. Only forms whose SQL semantics equal
//! DataFusion's are rendered; anything else stays with DataFusion, after the scan.

use datafusion::logical_expr::{Between, BinaryExpr, Expr, Like, Operator};
use datafusion::scalar::ScalarValue;
use heavenbase_catalog::{LogicalType, OBJECT_ID};

use crate::backend::GroupSpec;

/// A bound parameter. Values are never spliced into SQL text.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlParam {
    Int(i64),
    Float(f64),
    Text(String),
    Bool(bool),
    /// Days since 1970-01-01.
    Date(i32),
    /// Milliseconds since the epoch, UTC.
    Timestamp(i64),
}

/// How a dialect spells things that differ between SQL engines.
pub trait SqlDialect {
    /// The placeholder of the `n`th parameter (1-based): `?` or `$n`.
    fn placeholder(&self, n: usize) -> String;
    /// Whether the engine's LIKE is case-sensitive as DataFusion's is.
    fn like_is_case_sensitive(&self) -> bool;
    /// Column storage of a date: SQLite keeps ISO text.
    fn date_param(&self, days: i32) -> SqlParam;
    fn bool_param(&self, b: bool) -> SqlParam {
        SqlParam::Int(b as i64)
    }
    /// A timestamp in epoch milliseconds (how SQLite stores it).
    fn timestamp_param(&self, ms: i64) -> SqlParam {
        SqlParam::Int(ms)
    }
}

pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

pub struct SqlPredicate {
    pub sql: String,
    pub params: Vec<SqlParam>,
}

/// A filter that would bind more parameters than this stays with DataFusion
/// (evaluated after the scan): SQLite allows 32,766 parameters a statement and
/// Postgres 65,535, and one statement carries several filters. A 100,000-item
/// IN list is then answered, not refused by the backend.
pub const MAX_FILTER_PARAMS: usize = 4_096;

/// Render `expr` as SQL over `group`, appending its parameters to `params` (their
/// placeholders are numbered after those already there). None when the expression
/// is not one this module renders exactly, or binds over [`MAX_FILTER_PARAMS`].
pub fn render(expr: &Expr, group: &GroupSpec, dialect: &dyn SqlDialect, params: &mut Vec<SqlParam>) -> Option<String> {
    let mut r = Renderer { group, dialect, params: Vec::new(), base: params.len() };
    let sql = r.expr(expr)?;
    if r.params.len() > MAX_FILTER_PARAMS {
        return None;
    }
    params.extend(r.params);
    Some(sql)
}

/// `SELECT object_id, <columns> FROM <table> [WHERE <filters> [AND <id list>]]
/// [LIMIT n]` for a scan: filters the dialect renders become bound parameters;
/// an id list (when the request has one) is bound as one more parameter after
/// them, in the form `id_list(its number)` gives. Returns the statement, the
/// filter parameters and whether the id list is to be bound.
pub fn build_select(
    table: &str,
    group: &GroupSpec,
    request: &crate::backend::ScanRequest,
    dialect: &dyn SqlDialect,
    id_list: impl Fn(usize) -> String,
) -> (String, Vec<SqlParam>, bool) {
    let mut cols = vec![quote_ident(OBJECT_ID)];
    cols.extend(request.columns.iter().filter(|c| group.column(c).is_some()).map(|c| quote_ident(c)));
    let mut sql = format!("SELECT {} FROM {table}", cols.join(", "));
    let mut params = Vec::new();
    let mut conds: Vec<String> = request.filters.iter().filter_map(|f| render(f, group, dialect, &mut params)).collect();
    let with_ids = request.ids.is_some();
    if with_ids {
        conds.push(id_list(params.len() + 1));
    }
    if !conds.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&all_of(conds));
    }
    if let Some(limit) = request.limit {
        sql.push_str(&format!(" LIMIT {limit}"));
    }
    (sql, params, with_ids)
}

/// Conditions joined by AND. Many of them (one per term of a long chain that
/// DataFusion split) are joined as a balanced, parenthesised tree: SQLite
/// refuses an expression more than 1,000 levels deep, and a flat `a AND b AND …`
/// is one level per term to it.
fn all_of(mut conds: Vec<String>) -> String {
    const FLAT_MAX: usize = 64;
    if conds.len() <= FLAT_MAX {
        return conds.join(" AND ");
    }
    while conds.len() > 1 {
        conds = conds
            .chunks(2)
            .map(|pair| if pair.len() == 2 { format!("({} AND {})", pair[0], pair[1]) } else { pair[0].clone() })
            .collect();
    }
    conds.pop().unwrap_or_default()
}

/// A statement as messages show it: long ones cut at 300 characters.
pub fn shorten(sql: &str) -> String {
    if sql.chars().count() > 300 { format!("{}…", sql.chars().take(300).collect::<String>()) } else { sql.to_string() }
}

pub fn can_render(expr: &Expr, group: &GroupSpec, dialect: &dyn SqlDialect) -> bool {
    render(expr, group, dialect, &mut Vec::new()).is_some()
}

struct Renderer<'a> {
    group: &'a GroupSpec,
    dialect: &'a dyn SqlDialect,
    params: Vec<SqlParam>,
    base: usize,
}

impl Renderer<'_> {
    fn push(&mut self, p: SqlParam) -> String {
        self.params.push(p);
        self.dialect.placeholder(self.base + self.params.len())
    }

    /// The logical type of a bare column of this group.
    fn column(&self, e: &Expr) -> Option<(String, LogicalType)> {
        let Expr::Column(c) = e else { return None };
        if c.name == OBJECT_ID {
            return Some((quote_ident(OBJECT_ID), LogicalType::identifier()));
        }
        let spec = self.group.column(&c.name)?;
        Some((quote_ident(&c.name), spec.ty.clone()))
    }

    /// A literal as a parameter of the column's storage type.
    fn literal(&mut self, e: &Expr, ty: &LogicalType) -> Option<String> {
        let Expr::Literal(v, _) = e else { return None };
        let param = match (ty, v) {
            (_, v) if v.is_null() => return None,
            (t, ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)))
                if t.arrow_type() == datafusion::arrow::datatypes::DataType::Utf8 =>
            {
                SqlParam::Text(s.clone())
            }
            (LogicalType::Integer | LogicalType::Duration | LogicalType::Categorical { .. }, v) => SqlParam::Int(int_of(v)?),
            (LogicalType::Float, v) => match v {
                ScalarValue::Float64(Some(f)) => SqlParam::Float(*f),
                ScalarValue::Float32(Some(f)) => SqlParam::Float(*f as f64),
                v => SqlParam::Int(int_of(v)?),
            },
            (LogicalType::Boolean, ScalarValue::Boolean(Some(b))) => self.dialect.bool_param(*b),
            (LogicalType::Timestamp, ScalarValue::TimestampMillisecond(Some(ms), _)) => self.dialect.timestamp_param(*ms),
            (LogicalType::Timestamp, ScalarValue::TimestampSecond(Some(s), _)) => {
                self.dialect.timestamp_param(s.checked_mul(1000)?)
            }
            (LogicalType::Timestamp, ScalarValue::TimestampMicrosecond(Some(us), _)) if us % 1000 == 0 => {
                self.dialect.timestamp_param(us / 1000)
            }
            (LogicalType::Timestamp, ScalarValue::TimestampNanosecond(Some(ns), _)) if ns % 1_000_000 == 0 => {
                self.dialect.timestamp_param(ns / 1_000_000)
            }
            (LogicalType::Date, ScalarValue::Date32(Some(d))) => self.dialect.date_param(*d),
            _ => return None,
        };
        Some(self.push(param))
    }

    fn comparable(ty: &LogicalType) -> bool {
        !matches!(ty, LogicalType::Array { .. } | LogicalType::Vector { .. } | LogicalType::Artifact | LogicalType::Json)
    }

    fn expr(&mut self, e: &Expr) -> Option<String> {
        match e {
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
                Operator::And | Operator::Or => {
                    let l = self.expr(left)?;
                    let r = self.expr(right)?;
                    Some(format!("({l} {} {r})", if *op == Operator::And { "AND" } else { "OR" }))
                }
                Operator::Eq | Operator::NotEq | Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq => {
                    let (col, lit, op) = match (self.column(left), self.column(right)) {
                        (Some(c), None) => (c, right.as_ref(), *op),
                        (None, Some(c)) => (c, left.as_ref(), op.swap()?),
                        _ => return None,
                    };
                    if !Self::comparable(&col.1) {
                        return None;
                    }
                    let p = self.literal(lit, &col.1)?;
                    let sql_op = match op {
                        Operator::Eq => "=",
                        Operator::NotEq => "<>",
                        Operator::Lt => "<",
                        Operator::LtEq => "<=",
                        Operator::Gt => ">",
                        _ => ">=",
                    };
                    Some(format!("{} {sql_op} {p}", col.0))
                }
                _ => None,
            },
            Expr::Not(inner) => Some(format!("(NOT {})", self.expr(inner)?)),
            Expr::IsNull(inner) => Some(format!("{} IS NULL", self.column(inner)?.0)),
            Expr::IsNotNull(inner) => Some(format!("{} IS NOT NULL", self.column(inner)?.0)),
            Expr::InList(list) => {
                let (col, ty) = self.column(&list.expr)?;
                if !Self::comparable(&ty) || list.list.is_empty() {
                    return None;
                }
                let mut items = Vec::with_capacity(list.list.len());
                for item in &list.list {
                    items.push(self.literal(item, &ty)?);
                }
                Some(format!("{col} {}IN ({})", if list.negated { "NOT " } else { "" }, items.join(", ")))
            }
            Expr::Between(Between { expr, negated, low, high }) => {
                let (col, ty) = self.column(expr)?;
                if !Self::comparable(&ty) {
                    return None;
                }
                let lo = self.literal(low, &ty)?;
                let hi = self.literal(high, &ty)?;
                Some(format!("{col} {}BETWEEN {lo} AND {hi}", if *negated { "NOT " } else { "" }))
            }
            Expr::Like(Like { negated, expr, pattern, escape_char, case_insensitive }) => {
                let (col, ty) = self.column(expr)?;
                if !ty.is_text() || *case_insensitive || !self.dialect.like_is_case_sensitive() {
                    return None;
                }
                let Expr::Literal(ScalarValue::Utf8(Some(p)) | ScalarValue::Utf8View(Some(p)), _) = pattern.as_ref() else {
                    return None;
                };
                // Escapes differ between engines' defaults; leave such patterns to DataFusion.
                if escape_char.is_some() || p.contains('\\') {
                    return None;
                }
                let ph = self.push(SqlParam::Text(p.clone()));
                Some(format!("{col} {}LIKE {ph}", if *negated { "NOT " } else { "" }))
            }
            Expr::Column(_) => {
                let (col, ty) = self.column(e)?;
                if ty != LogicalType::Boolean {
                    return None;
                }
                let t = self.push(self.dialect.bool_param(true));
                Some(format!("{col} = {t}"))
            }
            _ => None,
        }
    }
}

fn int_of(v: &ScalarValue) -> Option<i64> {
    Some(match v {
        ScalarValue::Int64(Some(i)) => *i,
        ScalarValue::Int32(Some(i)) => *i as i64,
        ScalarValue::Int16(Some(i)) => *i as i64,
        ScalarValue::Int8(Some(i)) => *i as i64,
        ScalarValue::UInt32(Some(i)) => *i as i64,
        ScalarValue::UInt16(Some(i)) => *i as i64,
        ScalarValue::UInt8(Some(i)) => *i as i64,
        ScalarValue::UInt64(Some(i)) => i64::try_from(*i).ok()?,
        _ => return None,
    })
}
