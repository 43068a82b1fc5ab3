//! wire-key: lookups by a declared integer primary key over the wire, beside
//! lookups by object_id in the same workspace and by the primary key of the
//! same table in Postgres, in the same run.
//!
//! pgbench, 16 clients, extended protocol, `SELECT * FROM … WHERE id = :id`
//! with keys drawn uniformly and Zipf-skewed (s = 1.07: a few hot rows, as
//! real traffic has). The workspace (`embedded`, a SQLite file) holds two
//! tables of the same rows: `book` keyed by `id bigint PRIMARY KEY` (made by
//! SQL, object_ids derived from the key) and `item` whose object_ids are
//! `0`…`n-1` and whose names are the same numbers as text. Goals: the key
//! lookup as fast as the object_id lookup (≥ 0.9×) and ≥ 0.5× Postgres; the
//! lookup by `name` (indexed by default) ≥ 0.5× Postgres with an index on
//! name (the same table there gains a `name` column and that index).

use std::time::Instant;

use heavenbase::{Construction, EntityDef, FieldDef, LogicalType as T, Workspace};
use serde_json::json;

use crate::home;
use crate::wire::{connect, copy_lines, pg_conninfo, pg_url, pgbench_script, serve_on_own_runtime};

pub async fn run(rows: usize) {
    println!("wire-key: pgbench -M extended -c 16, lookups by integer primary key and by name, {rows} rows");
    let (_dir, home) = home();
    let ws = Workspace::open_in(&home, "keys", Construction::preset("embedded")).await.unwrap();
    ws.sql("CREATE TABLE book (id bigint PRIMARY KEY, title varchar(80), price float)").await.unwrap();
    ws.register(
        EntityDef::new("item").field(FieldDef::new("title", T::short_text())).field(FieldDef::new("price", T::Float)),
        false,
    )
    .await
    .unwrap();
    let t = Instant::now();
    crate::load_rows(
        &ws,
        "book",
        rows,
        |i| json!({"id": i, "title": format!("Title number {i}"), "price": (i % 1000) as f64 * 0.5}),
    )
    .await;
    crate::load_rows(
        &ws,
        "item",
        rows,
        |i| json!({"object_id": i.to_string(), "name": i.to_string(), "title": format!("Title number {i}"), "price": (i % 1000) as f64 * 0.5}),
    )
    .await;
    println!("  loaded {rows} rows into each table in {:.1} s", t.elapsed().as_secs_f64());

    let pg = connect(&pg_url()).await;
    pg.batch_execute(
        "DROP SCHEMA IF EXISTS hb_key_bench CASCADE; CREATE SCHEMA hb_key_bench;
         CREATE TABLE hb_key_bench.book (id bigint PRIMARY KEY, name text, title text, price float8);",
    )
    .await
    .unwrap();
    copy_lines(&pg, "COPY hb_key_bench.book FROM STDIN", rows, |i| {
        format!("{i}\t{i}\tTitle number {i}\t{}\n", (i % 1000) as f64 * 0.5)
    })
    .await;
    pg.batch_execute("CREATE INDEX ON hb_key_bench.book (name); ANALYZE hb_key_bench.book").await.unwrap();

    let port = serve_on_own_runtime(ws);
    let wire = format!("host=127.0.0.1 port={port} user=postgres dbname=keys");
    let postgres = format!("{} options=-csearch_path=hb_key_bench", pg_conninfo());
    // The same key answers the same row on every side before anything is timed.
    let key = (rows / 2) as i64;
    let title = |c: tokio_postgres::Row| c.get::<_, String>(0);
    let expected = format!("Title number {key}");
    let (ours, theirs) = (connect(&wire).await, connect(&postgres).await);
    assert_eq!(title(ours.query_one("SELECT title FROM book WHERE id = $1", &[&key]).await.unwrap()), expected);
    assert_eq!(
        title(ours.query_one("SELECT title FROM item WHERE object_id = $1", &[&key.to_string()]).await.unwrap()),
        expected
    );
    assert_eq!(title(theirs.query_one("SELECT title FROM book WHERE id = $1", &[&key]).await.unwrap()), expected);
    let name = key.to_string();
    assert_eq!(title(ours.query_one("SELECT title FROM item WHERE name = $1", &[&name]).await.unwrap()), expected);
    assert_eq!(title(theirs.query_one("SELECT title FROM book WHERE name = $1", &[&name]).await.unwrap()), expected);
    let last = rows - 1;
    for (shape, draw) in [("uniform", format!("random(0, {last})")), ("zipfian", format!("random_zipfian(0, {last}, 1.07)"))] {
        let script = |table: &str, column: &str| format!("\\set id {draw}\nSELECT * FROM {table} WHERE {column} = :id;\n");
        let (w, p) = (wire.clone(), postgres.clone());
        let (key_script, id_script) = (script("book", "id"), script("item", "object_id"));
        let (name_script, pg_name_script) = (script("item", "name"), script("book", "name"));
        let (by_key, by_id, pg_key, by_name, pg_name) = tokio::task::spawn_blocking(move || {
            let by_key = pgbench_script(&w, &key_script);
            let by_id = pgbench_script(&w, &id_script);
            let pg_key = pgbench_script(&p, &key_script);
            let by_name = pgbench_script(&w, &name_script);
            let pg_name = pgbench_script(&p, &pg_name_script);
            (by_key, by_id, pg_key, by_name, pg_name)
        })
        .await
        .unwrap();
        println!(
            "  {shape}: HeavenBase by id (primary key) {by_key:.0}/s, by object_id {by_id:.0}/s, Postgres by id {pg_key:.0}/s"
        );
        println!(
            "  {shape}: key/object_id {:.2} (goal ≥ 0.9), key vs Postgres {:.2} (goal ≥ 0.5)",
            by_key / by_id,
            by_key / pg_key
        );
        println!(
            "  {shape}: by name {by_name:.0}/s vs Postgres by indexed name {pg_name:.0}/s: {:.2} (goal ≥ 0.5)",
            by_name / pg_name
        );
    }
}
