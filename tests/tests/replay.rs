//! What BI tools and drivers send on connect and when they browse a database
//! (ANCHORS.md §7), one test per client. Clients that run here are driven for
//! real (psql, pgcli, SQLAlchemy, pgJDBC: see wire.rs and tests/clients);
//! for the rest (Grafana, Metabase, DBeaver) their introspection statements
//! are replayed over both protocols, in the order the client sends them, and
//! the answers are checked for what the client shows its user.

use heavenbase::{EntityDef, FieldDef, LogicalType as T, Workspace};
use serde_json::json;
use tokio_postgres::SimpleQueryMessage;

use crate::common::TestHome;
use crate::sql::load;
use crate::wire::{clients_dir, connect, run_client, start};

/// The fixture of wire.rs plus an entity whose fields carry descriptions.
pub(crate) async fn described(h: &TestHome) -> Workspace {
    let ws = load(h, "sqlite").await;
    let note = EntityDef::new("note")
        .desc("Notes taken in meetings")
        .field(FieldDef::new("body", T::long_text()).desc("What was said"))
        .field(FieldDef::new("stars", T::Integer));
    ws.register(note, false).await.unwrap();
    ws.upsert("note", json!({"name": "kickoff", "body": "we start", "stars": 3})).await.unwrap();
    ws
}

type Rows = Vec<Vec<Option<String>>>;

/// Run `sql` over the simple protocol and as a prepared statement over the
/// extended one; both must succeed with the same rows. Returns the rows as text.
async fn replay(client: &tokio_postgres::Client, sql: &str) -> Rows {
    let simple: Rows = client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("simple protocol: {sql}\n{e:?}"))
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some((0..r.len()).map(|i| r.get(i).map(String::from)).collect()),
            _ => None,
        })
        .collect();
    let trimmed = sql.trim_start().to_ascii_lowercase();
    if !(trimmed.starts_with("set ") || trimmed.starts_with("show ")) {
        let extended = client.query(sql, &[]).await.unwrap_or_else(|e| panic!("extended protocol: {sql}\n{e:?}"));
        assert_eq!(extended.len(), simple.len(), "both protocols return the same rows: {sql}");
    }
    simple
}

fn column(rows: &Rows, i: usize) -> Vec<String> {
    rows.iter().map(|r| r[i].clone().unwrap_or_default()).collect()
}

async fn server(h: &TestHome) -> (Workspace, u16, tokio_postgres::Client) {
    let ws = described(h).await;
    let port = start(ws.clone()).await;
    let client = connect(port, "sqlite").await;
    (ws, port, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grafana_table_and_column_pickers() {
    let h = TestHome::new();
    let (_ws, _port, client) = server(&h).await;
    // The health check of older Grafana versions.
    let rows = replay(&client, "SELECT current_setting('server_version_num')::int/100").await;
    assert_eq!(rows[0][0].as_deref(), Some("1500"));
    // Table picker: tables on the search path unqualified, others qualified.
    let search_path = "SELECT CASE WHEN trim(s[i]) = '\"$user\"' THEN user ELSE trim(s[i]) END \
        FROM generate_series(array_lower(string_to_array(current_setting('search_path'),','),1), \
                             array_upper(string_to_array(current_setting('search_path'),','),1)) as i, \
             string_to_array(current_setting('search_path'),',') s";
    let tables = format!(
        "SELECT CASE WHEN quote_ident(table_schema) IN ({search_path}) THEN quote_ident(table_name) \
                ELSE quote_ident(table_schema) || '.' || quote_ident(table_name) END AS \"table\" \
         FROM information_schema.tables \
         WHERE quote_ident(table_schema) NOT IN ('information_schema', 'pg_catalog', '_timescaledb_cache', \
               '_timescaledb_catalog', '_timescaledb_internal', '_timescaledb_config', 'timescaledb_information', \
               'timescaledb_experimental') \
         ORDER BY CASE WHEN quote_ident(table_schema) IN ({search_path}) THEN 0 ELSE 1 END, 1"
    );
    let tables = column(&replay(&client, &tables).await, 0);
    // datafusion-pg-catalog swaps the search-path subquery for an empty list
    // (before our current_setting() could answer it), so every table comes
    // back schema-qualified; Grafana shows and queries them that way.
    for t in ["public.note", "public.product", "public.review", "public.sys_catalog"] {
        assert!(tables.contains(&t.to_string()), "{t} in {tables:?}");
    }
    // Column picker for the table the user chose.
    let columns = format!(
        "SELECT quote_ident(column_name) AS \"column\", data_type AS \"type\" FROM information_schema.columns \
         WHERE CASE WHEN array_length(parse_ident('public.product'),1) = 2 \
           THEN quote_ident(table_schema) = (parse_ident('public.product'))[1] \
             AND quote_ident(table_name) = (parse_ident('public.product'))[2] \
           ELSE quote_ident(table_name) = 'public.product' AND quote_ident(table_schema) IN ({search_path}) END"
    );
    let columns = column(&replay(&client, &columns).await, 0);
    assert_eq!(columns.len(), 10, "{columns:?}");
    assert!(columns.contains(&"price".to_string()) && columns.contains(&"object_id".to_string()), "{columns:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metabase_sync() {
    let h = TestHome::new();
    let (_ws, _port, client) = server(&h).await;
    for set in [
        "SET extra_float_digits = 2",
        "SET application_name = 'Metabase v0.55.1 [f8f63fdf-d8f8-4573-86ea-4fe4a9548041]'",
        "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ UNCOMMITTED",
    ] {
        replay(&client, set).await;
    }
    let level = replay(&client, "SHOW TRANSACTION ISOLATION LEVEL").await;
    assert_eq!(level.len(), 1);
    // Schemas (pgJDBC's getSchemas, as Metabase calls it).
    let schemas = replay(
        &client,
        "SELECT nspname AS \"TABLE_SCHEM\", current_database() AS \"TABLE_CATALOG\" FROM pg_catalog.pg_namespace \
         WHERE nspname <> 'pg_toast' AND (nspname !~ '^pg_temp_' OR nspname = (pg_catalog.current_schemas(true))[1]) \
         AND (nspname !~ '^pg_toast_temp_' OR nspname = replace((pg_catalog.current_schemas(true))[1], 'pg_temp_', 'pg_toast_temp_')) \
         ORDER BY \"TABLE_SCHEM\"",
    )
    .await;
    assert!(schemas.iter().any(|r| r[0].as_deref() == Some("public") && r[1].as_deref() == Some("sqlite")), "{schemas:?}");
    // Which tables the user may read.
    let privileges = replay(
        &client,
        "with table_privileges as ( select NULL as role, t.schemaname as schema, t.objectname as table, \
           pg_catalog.has_any_column_privilege(current_user, '\"' || replace(t.schemaname, '\"', '\"\"') || '\"' || '.' || '\"' || replace(t.objectname, '\"', '\"\"') || '\"', 'update') as update, \
           pg_catalog.has_any_column_privilege(current_user, '\"' || replace(t.schemaname, '\"', '\"\"') || '\"' || '.' || '\"' || replace(t.objectname, '\"', '\"\"') || '\"', 'select') as select, \
           pg_catalog.has_any_column_privilege(current_user, '\"' || replace(t.schemaname, '\"', '\"\"') || '\"' || '.' || '\"' || replace(t.objectname, '\"', '\"\"') || '\"', 'insert') as insert, \
           pg_catalog.has_table_privilege(current_user, '\"' || replace(t.schemaname, '\"', '\"\"') || '\"' || '.' || '\"' || replace(t.objectname, '\"', '\"\"') || '\"', 'delete') as delete \
         from ( select schemaname, tablename as objectname from pg_catalog.pg_tables \
                union select schemaname, viewname as objectname from pg_catalog.pg_views \
                union select schemaname, matviewname as objectname from pg_catalog.pg_matviews ) t \
         where t.schemaname !~ '^pg_' and t.schemaname <> 'information_schema' \
           and pg_catalog.has_schema_privilege(current_user, t.schemaname, 'usage') ) \
         select t.* from table_privileges t",
    )
    .await;
    let note = privileges.iter().find(|r| r[2].as_deref() == Some("note")).unwrap_or_else(|| panic!("{privileges:?}"));
    assert_eq!(note[4].as_deref(), Some("t"), "note is readable: {note:?}");
    // The table list, with descriptions and row estimates.
    let tables = replay(
        &client,
        "SELECT \"n\".\"nspname\" AS \"schema\", \"c\".\"relname\" AS \"name\", CASE \"c\".\"relkind\" WHEN 'r' THEN 'TABLE' \
           WHEN 'p' THEN 'PARTITIONED TABLE' WHEN 'v' THEN 'VIEW' WHEN 'f' THEN 'FOREIGN TABLE' WHEN 'm' THEN 'MATERIALIZED VIEW' \
           ELSE NULL END AS \"type\", \"d\".\"description\" AS \"description\", \"stat\".\"n_live_tup\" AS \"estimated_row_count\" \
         FROM \"pg_catalog\".\"pg_class\" AS \"c\" INNER JOIN \"pg_catalog\".\"pg_namespace\" AS \"n\" ON \"c\".\"relnamespace\" = \"n\".\"oid\" \
         LEFT JOIN \"pg_catalog\".\"pg_description\" AS \"d\" ON (\"c\".\"oid\" = \"d\".\"objoid\") AND (\"d\".\"objsubid\" = '0') \
           AND (\"d\".\"classoid\" = 'pg_class'::regclass) \
         LEFT JOIN \"pg_stat_user_tables\" AS \"stat\" ON (\"n\".\"nspname\" = \"stat\".\"schemaname\") AND (\"c\".\"relname\" = \"stat\".\"relname\") \
         WHERE (\"c\".\"relnamespace\" = \"n\".\"oid\") AND (\"n\".\"nspname\" !~ '^pg_') AND (\"n\".\"nspname\" <> 'information_schema') \
           AND c.relkind in ('r', 'p', 'v', 'f', 'm') AND (\"n\".\"nspname\" IN ('public')) \
         ORDER BY \"type\" ASC, \"schema\" ASC, \"name\" ASC",
    )
    .await;
    let by_name =
        |n: &str| tables.iter().find(|r| r[1].as_deref() == Some(n)).cloned().unwrap_or_else(|| panic!("{n} in {tables:?}"));
    assert_eq!(by_name("note")[2].as_deref(), Some("TABLE"));
    assert_eq!(by_name("note")[3].as_deref(), Some("Notes taken in meetings"));
    assert_eq!(by_name("product")[3], None, "product has no description");
    for set in [
        "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED",
        "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ UNCOMMITTED",
    ] {
        replay(&client, set).await;
    }
    assert_eq!(replay(&client, "show timezone").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dbeaver_navigator() {
    let h = TestHome::new();
    let (_ws, _port, client) = server(&h).await;
    for set in ["SET extra_float_digits = 3", "SET application_name = 'DBeaver 25.1.5 - Main <postgres>'"] {
        replay(&client, set).await;
    }
    let who = replay(&client, "SELECT current_schema(),session_user").await;
    assert_eq!(who[0][0].as_deref(), Some("public"));
    let namespaces = replay(
        &client,
        "SELECT n.oid,n.*,d.description FROM pg_catalog.pg_namespace n LEFT OUTER JOIN pg_catalog.pg_description d \
         ON d.objoid=n.oid AND d.objsubid=0 AND d.classoid='pg_namespace'::regclass ORDER BY nspname",
    )
    .await;
    let public = namespaces.iter().find(|r| r[2].as_deref() == Some("public")).unwrap_or_else(|| panic!("{namespaces:?}"));
    let public_oid = public[0].clone().unwrap();
    for probe in [
        "SHOW search_path",
        "SELECT db.oid,db.* FROM pg_catalog.pg_database db WHERE datname='sqlite'",
        "SELECT * FROM pg_catalog.pg_settings where name='standard_conforming_strings'",
        "SELECT version()",
        "SELECT * FROM pg_catalog.pg_enum WHERE 1<>1 LIMIT 1",
        "SELECT reltype FROM pg_catalog.pg_class WHERE 1<>1 LIMIT 1",
    ] {
        replay(&client, probe).await;
    }
    let keywords = replay(
        &client,
        "SELECT string_agg(word, ',') from pg_catalog.pg_get_keywords() where word <> ALL ('{a,abs,absolute}'::text[])",
    )
    .await;
    assert!(keywords[0][0].as_deref().unwrap_or("").contains("select"));
    let types = replay(
        &client,
        "SELECT t.oid,t.*,c.relkind,format_type(nullif(t.typbasetype, 0), t.typtypmod) as base_type_name, d.description \
         FROM pg_catalog.pg_type t LEFT OUTER JOIN pg_catalog.pg_type et ON et.oid=t.typelem \
         LEFT OUTER JOIN pg_catalog.pg_class c ON c.oid=t.typrelid LEFT OUTER JOIN pg_catalog.pg_description d ON t.oid=d.objoid \
         WHERE t.typname IS NOT NULL AND (c.relkind IS NULL OR c.relkind = 'c') AND (et.typcategory IS NULL OR et.typcategory <> 'C')",
    )
    .await;
    assert!(types.len() > 50, "{} types", types.len());
    // The tables of the schema the user opened, with descriptions.
    let tables = replay(
        &client,
        &format!(
            "SELECT c.oid,c.*,d.description,pg_catalog.pg_get_expr(c.relpartbound, c.oid) as partition_expr, \
               pg_catalog.pg_get_partkeydef(c.oid) as partition_key \
             FROM pg_catalog.pg_class c LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid=c.oid AND d.objsubid=0 \
               AND d.classoid='pg_class'::regclass \
             WHERE c.relnamespace={public_oid} AND c.relkind not in ('i','I','c')"
        ),
    )
    .await;
    let note = tables.iter().find(|r| r[2].as_deref() == Some("note")).unwrap_or_else(|| panic!("note in {tables:?}"));
    assert!(note.contains(&Some("Notes taken in meetings".to_string())), "{note:?}");
    let note_oid = note[0].clone().unwrap();
    replay(
        &client,
        &format!(
            "select c.oid,pg_catalog.pg_total_relation_size(c.oid) as total_rel_size,pg_catalog.pg_relation_size(c.oid) as rel_size \
             FROM pg_class c WHERE c.relnamespace={public_oid}"
        ),
    )
    .await;
    // Columns of the table the user opened, with their descriptions.
    let columns = replay(
        &client,
        &format!(
            "SELECT c.relname,a.*,pg_catalog.pg_get_expr(ad.adbin, ad.adrelid, true) as def_value,dsc.description \
             FROM pg_catalog.pg_attribute a INNER JOIN pg_catalog.pg_class c ON (a.attrelid=c.oid) \
             LEFT OUTER JOIN pg_catalog.pg_attrdef ad ON (a.attrelid=ad.adrelid AND a.attnum = ad.adnum) \
             LEFT OUTER JOIN pg_catalog.pg_description dsc ON (c.oid=dsc.objoid AND a.attnum = dsc.objsubid) \
             WHERE NOT a.attisdropped AND c.relkind not in ('i','I','c') AND c.oid={note_oid} ORDER BY a.attnum"
        ),
    )
    .await;
    let names = column(&columns, 2);
    assert_eq!(names, ["object_id", "name", "body", "stars"]);
    let body = &columns[2];
    assert_eq!(body.last().unwrap().as_deref(), Some("What was said"));
    assert_eq!(columns[3].last().unwrap(), &None);
    for listing in [
        format!(
            "SELECT i.*,i.indkey as keys,c.relname,c.relnamespace,c.relam,c.reltablespace,tc.relname as tabrelname,dsc.description, \
               pg_catalog.pg_get_expr(i.indpred, i.indrelid) as pred_expr,pg_catalog.pg_get_expr(i.indexprs, i.indrelid, true) as expr, \
               pg_catalog.pg_relation_size(i.indexrelid) as index_rel_size,pg_catalog.pg_stat_get_numscans(i.indexrelid) as index_num_scans \
             FROM pg_catalog.pg_index i INNER JOIN pg_catalog.pg_class c ON c.oid=i.indexrelid \
             INNER JOIN pg_catalog.pg_class tc ON tc.oid=i.indrelid LEFT OUTER JOIN pg_catalog.pg_description dsc ON i.indexrelid=dsc.objoid \
             WHERE i.indrelid={note_oid} ORDER BY tabrelname, c.relname"
        ),
        format!(
            "SELECT c.oid,c.*,t.relname as tabrelname,rt.relnamespace as refnamespace,d.description, \
               case when c.contype='c' then \"substring\"(pg_get_constraintdef(c.oid), 7) else null end consrc_copy \
             FROM pg_catalog.pg_constraint c INNER JOIN pg_catalog.pg_class t ON t.oid=c.conrelid \
             LEFT OUTER JOIN pg_catalog.pg_class rt ON rt.oid=c.confrelid \
             LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid=c.oid AND d.objsubid=0 AND d.classoid='pg_constraint'::regclass \
             WHERE c.conrelid={note_oid} ORDER BY c.oid"
        ),
    ] {
        replay(&client, &listing).await;
    }
    // Opening the table's data tab.
    let data = replay(&client, "SELECT * FROM public.note LIMIT 200").await;
    assert_eq!(data.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_describes_entities() {
    let h = TestHome::new();
    let (_ws, port, _client) = server(&h).await;
    let conninfo = format!("host=127.0.0.1 port={port} user=postgres dbname=sqlite");
    let psql = |cmd: &str| {
        let (conninfo, cmd) = (conninfo.clone(), cmd.to_string());
        async move {
            let args = ["-X", "-A", "-c", cmd.as_str(), conninfo.as_str()];
            let out = run_client("psql", &args.map(String::from), &["--version"]).await;
            out.unwrap_or_default()
        }
    };
    let d = psql("\\d note").await;
    assert!(d.contains("Table \"public.note\""), "{d}");
    assert!(d.contains("body|text") && d.contains("stars|bigint"), "{d}");
    let d = psql("\\d+ note").await;
    assert!(d.contains("What was said"), "\\d+ shows field descriptions: {d}");
    let dt = psql("\\dt+ note").await;
    assert!(dt.contains("Notes taken in meetings"), "\\dt+ shows the entity description: {dt}");
    let l = psql("\\l").await;
    assert!(l.contains("sqlite|"), "{l}");
    let dn = psql("\\dn").await;
    assert!(dn.contains("public|"), "{dn}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgcli_completion_metadata() {
    let h = TestHome::new();
    let (_ws, port, _client) = server(&h).await;
    let script = clients_dir().join("pgcli_client.py").display().to_string();
    let args = [script, port.to_string(), "sqlite".into()];
    if let Some(out) = run_client("python3", &args, &["-c", "import pgcli.pgexecute"]).await {
        assert_eq!(out.trim(), "ok");
    }
}
