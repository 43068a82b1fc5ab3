//! pg_dump against a served workspace: `--schema-only` restores into a fresh
//! Postgres database with the same tables and columns, and `--data-only -t`
//! restores the rows. pg_dump reads the catalog with some sixty queries
//! (roles, namespaces, types, functions, tables, columns, indexes,
//! constraints, ACLs, dependencies), so this is also the test of pg_catalog's
//! coherence for tools.

use std::process::Command;

use heavenbase::{Construction, EntityDef, FieldDef, LogicalType as T};
use serde_json::json;

use crate::common::{TestHome, pg_url};
use crate::wire::{connect, start};

fn pg_dump(port: u16, db: &str, args: &[&str]) -> String {
    let out = Command::new("pg_dump")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres", "-d", db, "--no-owner", "--no-privileges"])
        .args(args)
        .output()
        .expect("pg_dump runs");
    assert!(out.status.success(), "pg_dump {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Run a dump's text in `db` of the real Postgres, stopping at the first error.
fn restore(url: &str, db: &str, script: &str) {
    use std::io::Write;
    let target = url.rsplit_once('/').map(|(base, _)| format!("{base}/{db}")).unwrap();
    let mut child = Command::new("psql")
        .args([&target, "-X", "-q", "-v", "ON_ERROR_STOP=1"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "restore failed: {}\n--- script ---\n{script}", String::from_utf8_lossy(&out.stderr));
}

async fn rows(c: &tokio_postgres::Client, sql: &str) -> Vec<Vec<Option<String>>> {
    c.simple_query(sql)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some((0..r.len()).map(|i| r.get(i).map(String::from)).collect()),
            _ => None,
        })
        .collect()
}

/// The columns of `tables` as pg_dump reads them: name, type as
/// `format_type` spells it, NOT NULL, in column order.
async fn columns(client: &tokio_postgres::Client, tables: &[&str]) -> Vec<Vec<Option<String>>> {
    let list = tables.iter().map(|t| format!("'{t}'")).collect::<Vec<_>>().join(", ");
    let sql = format!(
        "SELECT c.relname, a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull \
         FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid \
         WHERE c.relname IN ({list}) AND c.relkind = 'r' AND a.attnum > 0 ORDER BY c.relname, a.attnum"
    );
    let got = rows(client, &sql).await;
    assert!(!got.is_empty(), "no columns for {tables:?}");
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_dump_of_a_workspace_restores_into_postgres() {
    let Some(url) = pg_url() else { return };
    let h = TestHome::new();
    let ws = h.open("dumpsrc", Construction::preset("embedded")).await;
    // An entity of the Rust API (built-in object_id and name) and a table of SQL.
    ws.register(
        EntityDef::new("product")
            .field(FieldDef::new("title", T::short_text()))
            .field(FieldDef::new("price", T::Float).index())
            .field(FieldDef::new("qty", T::Integer))
            .field(FieldDef::new("active", T::Boolean))
            .field(FieldDef::new("day", T::Date)),
        false,
    )
    .await
    .unwrap();
    for (name, price, qty) in [("alpha", 10.5, 1), ("beta", 20.0, 2), ("it's", 0.25, 3)] {
        ws.upsert(
            "product",
            json!({"name": name, "title": format!("{name} title"), "price": price, "qty": qty,
                                    "active": qty % 2 == 1, "day": "2024-05-01"}),
        )
        .await
        .unwrap();
    }
    let port = start(ws.clone()).await;
    let client = connect(port, "dumpsrc").await;
    client
        .batch_execute(
            "CREATE TABLE acct (id integer PRIMARY KEY, email text UNIQUE, tier varchar(20) NOT NULL DEFAULT 'free',
                                since date, score double precision DEFAULT 0.5,
                                token uuid NOT NULL DEFAULT gen_random_uuid(), meta json, emb vector(3),
                                created timestamptz DEFAULT now(), labels text[] DEFAULT '{a,\"b c\"}');
             CREATE INDEX acct_tier ON acct (tier);
             INSERT INTO acct (id, email, tier, since, score, meta, emb) VALUES
               (1, 'a@x.org', 'free', '2024-01-02', 1.5, '{\"k\": [1, \"two\"]}', '[1, 0.5, -2]'),
               (2, 'b@x.org', 'pro', NULL, NULL, NULL, NULL)",
        )
        .await
        .unwrap();

    let schema = pg_dump(port, "dumpsrc", &["--schema-only"]);
    assert!(schema.contains("CREATE TABLE public.acct"), "{schema}");
    assert!(schema.contains("CREATE TABLE public.product"), "{schema}");
    // uuid and json columns keep their types; vectors are dumped as the
    // float4[] they are sent as (any Postgres restores them, pgvector or not).
    // Defaults, literal and computed, as Postgres prints them; varchar with
    // its length, text as text.
    assert!(schema.contains("token uuid DEFAULT gen_random_uuid() NOT NULL,"), "{schema}");
    assert!(schema.contains("tier character varying(20) DEFAULT 'free' NOT NULL,"), "{schema}");
    assert!(schema.contains("email text,"), "{schema}");
    assert!(schema.contains("score double precision DEFAULT 0.5,"), "{schema}");
    assert!(schema.contains("created timestamp with time zone DEFAULT now(),"), "{schema}");
    assert!(schema.contains(r#"labels text[] DEFAULT '{a,"b c"}'"#), "{schema}");
    assert!(schema.contains("meta json,") && schema.contains("emb real[]"), "{schema}");
    // Their storage is their type's: nothing for pg_dump to set.
    assert!(!schema.contains("SET STORAGE"), "{schema}");
    // The public schema keeps initdb's comment: nothing to restore about it.
    assert!(!schema.contains("COMMENT ON SCHEMA public"), "{schema}");

    let db = format!("hb_dump_{}", h.pg_schema("d").trim_start_matches("hbt_d_"));
    let (pg, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    pg.batch_execute(&format!("DROP DATABASE IF EXISTS {db}")).await.unwrap();
    pg.batch_execute(&format!("CREATE DATABASE {db}")).await.unwrap();
    restore(&url, &db, &schema);

    let target_url = url.rsplit_once('/').map(|(base, _)| format!("{base}/{db}")).unwrap();
    let (restored, connection) = tokio_postgres::connect(&target_url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let tables = ["acct", "product"];
    assert_eq!(columns(&restored, &tables).await, columns(&client, &tables).await);
    // The restored table has the defaults: a row given only its key gets them.
    restored.batch_execute("INSERT INTO acct (id) VALUES (99)").await.unwrap();
    let defaulted = rows(&restored, "SELECT tier, score, token IS NOT NULL, created IS NOT NULL, labels FROM acct").await;
    let want = ["free", "0.5", "t", "t", r#"{a,"b c"}"#].map(|v| Some(v.to_string())).to_vec();
    assert_eq!(defaulted, vec![want]);
    restored.batch_execute("DELETE FROM acct").await.unwrap();

    for table in tables {
        let data = pg_dump(port, "dumpsrc", &["--data-only", "-t", table]);
        restore(&url, &db, &data);
    }
    for sql in [
        "SELECT id, email, tier, since, score, token, meta::text, emb FROM acct ORDER BY id",
        "SELECT object_id, name, title, price, qty, active, day FROM product ORDER BY name",
    ] {
        let ours = rows(&client, sql).await;
        assert_eq!(ours.len(), if sql.contains("acct") { 2 } else { 3 }, "{sql}");
        assert_eq!(rows(&restored, sql).await, ours, "{sql}");
    }
    drop(restored);
    pg.batch_execute(&format!("DROP DATABASE IF EXISTS {db}")).await.unwrap();
}
