//! What the Flight SQL catalog calls answer: one catalog (the session's), one
//! schema (`public`), every entity and view with the columns `SELECT *` gives.

use std::sync::{Arc, OnceLock};

use arrow_flight::sql::SqlInfo;
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use heavenbase::catalog::system::{SYS_CATALOG, SYS_METASCHEMA, is_system};
use heavenbase::{Result, Workspace};

pub(crate) const SCHEMA: &str = "public";

pub(crate) fn catalog_name(ws: &Workspace) -> String {
    ws.session().state().config().options().catalog.default_catalog.clone()
}

/// Every table and view: name, Flight table type, the schema `SELECT *` has.
pub(crate) async fn tables(ws: &Workspace) -> Result<Vec<(String, &'static str, Schema)>> {
    let mut out = Vec::new();
    let views: Vec<String> = ws.views().into_iter().map(|(name, _)| name).collect();
    let entities = ws.entities().into_iter().chain([SYS_CATALOG.to_string(), SYS_METASCHEMA.to_string()]);
    // SQL names entities with `-` spelled `_`.
    let tables = entities.map(|e| (e.replace('-', "_"), if is_system(&e) { "SYSTEM TABLE" } else { "TABLE" }));
    for (name, kind) in tables.chain(views.into_iter().map(|v| (v, "VIEW"))) {
        let quoted = name.replace('"', "\"\"");
        let schema = match ws.plan_read(&format!("SELECT * FROM \"{quoted}\" LIMIT 0")).await? {
            Some(plan) => plan.schema().as_arrow().clone(),
            None => Schema::empty(),
        };
        out.push((name, kind, schema));
    }
    Ok(out)
}

pub(crate) fn table_types() -> RecordBatch {
    let schema = Schema::new(vec![Field::new("table_type", DataType::Utf8, false)]);
    RecordBatch::try_new(Arc::new(schema), vec![Arc::new(StringArray::from(vec!["SYSTEM TABLE", "TABLE", "VIEW"]))])
        .expect("one text column")
}

pub(crate) fn sql_info() -> &'static SqlInfoData {
    static INFO: OnceLock<SqlInfoData> = OnceLock::new();
    INFO.get_or_init(|| {
        let mut b = SqlInfoDataBuilder::new();
        b.append(SqlInfo::FlightSqlServerName, "HeavenBase");
        b.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
        b.append(SqlInfo::FlightSqlServerArrowVersion, "1.3");
        b.append(SqlInfo::FlightSqlServerReadOnly, false);
        b.append(SqlInfo::FlightSqlServerSql, true);
        b.append(SqlInfo::FlightSqlServerSubstrait, false);
        b.append(SqlInfo::FlightSqlServerTransaction, 0i32);
        b.append(SqlInfo::FlightSqlServerCancel, false);
        b.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
        b.build().expect("static SQL info")
    })
}
