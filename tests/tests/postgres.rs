//! The Postgres backend against the real Postgres of `HEAVENBASE_TEST_PG`: the
//! query suite on two more placements, federation seen in EXPLAIN, every logical
//! type round-tripped, and a server that goes away mid-session.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use heavenbase::{Construction, EntityDef, FieldDef, LogicalType as T, Workspace};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};

use crate::common::{TestHome, cells, drop_pg_schemas, pg_url, rows};
use crate::sql::{cases, load};

async fn explain(ws: &Workspace, sql: &str) -> String {
    let batches = ws.sql(&format!("EXPLAIN {sql}")).await.unwrap();
    cells(&batches).into_iter().map(|r| r.join(" | ")).collect::<Vec<_>>().join("\n")
}

#[tokio::test]
async fn the_query_suite_agrees_on_postgres_placements() {
    if pg_url().is_none() {
        return;
    }
    let h = TestHome::new();
    let cases = cases();
    for placement in ["postgres", "postgres+sqlite"] {
        let ws = load(&h, placement).await;
        for (sql, want) in &cases {
            let got = ws.sql(sql).await.unwrap_or_else(|e| panic!("[{placement}] {sql}: {e}"));
            assert_eq!(&cells(&got), want, "[{placement}] {sql}");
        }
        assert!(ws.audit().await.unwrap().ok(), "[{placement}] audit");
    }
    drop_pg_schemas(&[h.pg_schema("postgres"), h.pg_schema("postgres+sqlite")]).await;
}

#[tokio::test]
async fn federated_subplans_run_in_postgres_as_one_statement() {
    if pg_url().is_none() {
        return;
    }
    let h = TestHome::new();
    let ws = load(&h, "postgres").await;

    let sql = "SELECT active, count(*) AS n, sum(qty) AS s FROM product GROUP BY active ORDER BY active";
    let plan = explain(&ws, sql).await;
    assert!(plan.contains("PostgresQueryExec: backend=main sql=[SELECT"), "{plan}");
    assert!(plan.contains("GROUP BY") && plan.contains("count(1)") && plan.contains("CAST(sum"), "{plan}");
    assert!(!plan.contains("StitchExec") && !plan.contains("BackendScanExec") && !plan.contains("AggregateExec"), "{plan}");
    assert_eq!(plan.matches("PostgresQueryExec").count(), 1, "one statement: {plan}");
    assert!(plan.contains("TableScan: postgres_main"), "{plan}");
    let got = ws.sql(sql).await.unwrap();
    assert_eq!(cells(&got), rows(&[&["false", "1", "2"], &["true", "2", "4"], &["NULL", "1", "NULL"]]));

    let sql = "SELECT name, price FROM product WHERE price IS NOT NULL ORDER BY price DESC LIMIT 2";
    let plan = explain(&ws, sql).await;
    assert!(plan.contains("PostgresQueryExec") && plan.contains("ORDER BY") && plan.contains("LIMIT 2"), "{plan}");
    assert!(!plan.contains("SortExec") && !plan.contains("StitchExec"), "{plan}");
    assert_eq!(cells(&ws.sql(sql).await.unwrap()), rows(&[&["delta", "40.0"], &["beta", "20.0"]]));

    let sql = "SELECT p.name, count(*) AS n FROM review r JOIN product p ON r.product_id = p.object_id \
               GROUP BY p.name ORDER BY p.name";
    let plan = explain(&ws, sql).await;
    assert!(plan.contains("PostgresQueryExec") && plan.contains("JOIN"), "{plan}");
    assert!(!plan.contains("HashJoinExec") && !plan.contains("StitchExec"), "{plan}");
    assert_eq!(cells(&ws.sql(sql).await.unwrap()), rows(&[&["alpha", "2"], &["beta", "1"]]));

    // Forms whose Postgres meaning differs stay with DataFusion, over a pushed scan.
    let plan = explain(&ws, "SELECT name FROM product WHERE lower(title) = 'beta chair'").await;
    assert!(!plan.contains("PostgresQueryExec") && plan.contains("BackendScanExec"), "{plan}");
    // A filtered, limited scan is one statement too.
    let plan = explain(&ws, "SELECT name, title FROM product WHERE qty = 2 LIMIT 1").await;
    assert!(plan.contains("PostgresQueryExec") && plan.contains("LIMIT 1") && plan.contains("\"qty\" = 2"), "{plan}");

    // Results equal DataFusion's own over the same rows placed in SQLite.
    let lite = load(&h, "sqlite").await;
    for sql in [
        "SELECT count(*), sum(qty), avg(qty), min(price), max(title) FROM product",
        "SELECT qty % 2 AS odd, count(*) FROM product GROUP BY qty % 2 ORDER BY odd NULLS FIRST",
        "SELECT name, qty * 2 + 1, price / 4 FROM product ORDER BY name",
        "SELECT name FROM product WHERE title LIKE '%a%' AND qty BETWEEN 1 AND 2 ORDER BY name DESC",
        "SELECT p.name, r.stars FROM product p LEFT JOIN review r ON r.product_id = p.object_id ORDER BY p.name, r.stars",
        "SELECT title FROM product ORDER BY title",
        // An aggregate with no projection above it: read in the plan's column order.
        "SELECT active, avg(price), count(price) FROM product GROUP BY active ORDER BY active NULLS FIRST",
        "SELECT p.name, count(r.stars) FROM product p LEFT JOIN review r ON r.product_id = p.object_id GROUP BY p.name \
         ORDER BY p.name",
    ] {
        assert_eq!(cells(&ws.sql(sql).await.unwrap()), cells(&lite.sql(sql).await.unwrap()), "{sql}");
    }
    drop_pg_schemas(&[h.pg_schema("postgres")]).await;
}

#[tokio::test]
async fn every_logical_type_round_trips_through_postgres() {
    if pg_url().is_none() {
        return;
    }
    let h = TestHome::new();
    let ws = h.open("types", Construction::Backends(json!({"main": h.postgres("types").await}))).await;
    ws.register(
        EntityDef::new("thing")
            .field(FieldDef::new("ref", T::identifier()))
            .field(FieldDef::new("body", T::long_text()))
            .field(FieldDef::new("n", T::Integer).default(json!(7)))
            .field(FieldDef::new("x", T::Float))
            .field(FieldDef::new("ok", T::Boolean))
            .field(FieldDef::new("at", T::Timestamp))
            .field(FieldDef::new("took", T::Duration))
            .field(FieldDef::new("day", T::Date))
            .field(FieldDef::new("tags", T::array_of(T::short_text())))
            .field(FieldDef::new("nums", T::array_of(T::Integer)))
            .field(FieldDef::new("any", T::Array { item: None }))
            .field(FieldDef::new("doc", T::Json))
            .field(FieldDef::new("vec", T::Vector { dim: 3 }))
            .field(FieldDef::new("blob", T::Artifact))
            .field(FieldDef::new("code", T::short_text()).unique()),
        false,
    )
    .await
    .unwrap();
    let full = json!({
        "name": "one", "ref": "abc", "body": "Ünïcode 'quoted' \"text\"", "n": -5, "x": 2.5, "ok": true,
        "at": "2024-02-29T23:59:59.123Z", "took": 1500, "day": "1999-12-31", "tags": ["a", "b,c", "\"q\""],
        "nums": [1, -2, 3], "any": [1, "two", {"three": 3}], "doc": {"k": [1, 2], "s": "v"},
        "vec": [0.5, -1.25, 3.0], "blob": {"base64": "AAEC/w=="}, "code": "C1"
    });
    let id = ws.upsert("thing", full.clone()).await.unwrap();
    let got = ws.get("thing", &id).await.unwrap().unwrap();
    for (k, v) in full.as_object().unwrap() {
        assert_eq!(&got[k], v, "field {k}");
    }
    // A partial row takes the column default; NULLs stay NULL.
    let id2 = ws.upsert("thing", json!({"name": "two", "code": "C2"})).await.unwrap();
    let got = ws.get("thing", &id2).await.unwrap().unwrap();
    assert_eq!((got["n"].clone(), got["x"].clone(), got["vec"].clone()), (json!(7), json!(null), json!(null)));
    // A unique index refuses a second row with the same code, naming the backend.
    let err = ws.upsert("thing", json!({"name": "three", "code": "C1"})).await.unwrap_err().to_string();
    assert!(err.contains("unique") && err.contains("main"), "{err}");
    assert_eq!(ws.count("thing").await.unwrap(), 2);
    // Large batches take the COPY path: same values.
    let many: Vec<_> = (0..3000)
        .map(|i| {
            json!({"name": format!("m{i}"), "n": i, "x": i as f64 / 2.0, "tags": [format!("t{i}")], "day": "2024-01-02",
                        "vec": [i as f32, 0.0, 1.0], "code": format!("K{i}")})
            .as_object()
            .unwrap()
            .clone()
        })
        .collect();
    ws.upsert_many("thing", many).await.unwrap();
    let got = ws.sql("SELECT count(*), sum(n), max(x) FROM thing WHERE name LIKE 'm%'").await.unwrap();
    assert_eq!(cells(&got), rows(&[&["3000", "4498500", "1499.5"]]));
    let row = ws.get("thing", &heavenbase::catalog::derive_object_id("thing", "m2999")).await.unwrap().unwrap();
    assert_eq!(
        (row["tags"].clone(), row["vec"].clone(), row["day"].clone()),
        (json!(["t2999"]), json!([2999.0, 0.0, 1.0]), json!("2024-01-02"))
    );
    // Two more large batches on the same connection reuse its COPY stage: an
    // upsert replaces whole rows (omitted x reverts to NULL, n to the given
    // value), and new rows arrive intact.
    let partial: Vec<_> = (0..300).map(|i| json!({"name": format!("m{i}"), "n": -i}).as_object().unwrap().clone()).collect();
    ws.upsert_many("thing", partial).await.unwrap();
    let more: Vec<_> = (0..300)
        .map(|i| {
            json!({"name": format!("p{i}"), "n": i, "x": 1.5, "tags": [], "day": "2024-01-03",
                        "vec": [0.0, 0.0, 1.0], "code": format!("P{i}")})
            .as_object()
            .unwrap()
            .clone()
        })
        .collect();
    ws.upsert_many("thing", more).await.unwrap();
    let got = ws.sql("SELECT count(*), sum(n), max(x) FROM thing WHERE name LIKE 'm%' AND n <= 0").await.unwrap();
    assert_eq!(cells(&got), rows(&[&["300", "-44850", "NULL"]]));
    let got = ws.sql("SELECT count(*), sum(n), min(day) FROM thing WHERE name LIKE 'p%'").await.unwrap();
    assert_eq!(cells(&got), rows(&[&["300", "44850", "2024-01-03"]]));
    assert!(ws.audit().await.unwrap().ok());
    drop_pg_schemas(&[h.pg_schema("types")]).await;
}

/// A TCP relay in front of Postgres that the test can cut and restore.
struct Relay {
    port: u16,
    up: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn start(target: String, port: u16) -> Relay {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("bind relay");
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let flag = up.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else { return };
                let target = target.clone();
                let flag = flag.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(&target).await else { return };
                    let copy = tokio::io::copy_bidirectional(&mut inbound, &mut outbound);
                    tokio::pin!(copy);
                    loop {
                        tokio::select! {
                            _ = &mut copy => return,
                            _ = tokio::time::sleep(std::time::Duration::from_millis(20)) => {
                                if !flag.load(Ordering::Relaxed) { return; }
                            }
                        }
                    }
                });
            }
        });
        Relay { port, up, task }
    }

    /// Close the listener and every relayed connection.
    async fn stop(self) -> u16 {
        self.up.store(false, Ordering::Relaxed);
        self.task.abort();
        let _ = self.task.await;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        self.port
    }
}

#[tokio::test]
async fn a_postgres_that_goes_away_fails_only_its_queries_and_the_pool_recovers() {
    let Some(url) = pg_url() else { return };
    let target: tokio_postgres::Config = url.parse().unwrap();
    let host = match &target.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(h) => h.clone(),
        #[allow(unreachable_patterns)]
        _ => "127.0.0.1".into(),
    };
    let pg_port = target.get_ports().first().copied().unwrap_or(5432);
    let relay = Relay::start(format!("{host}:{pg_port}"), 0).await;
    let h = TestHome::new();
    let schema = h.pg_schema("down");
    h.postgres("down").await;
    let user = target.get_user().unwrap_or("postgres");
    let db = target.get_dbname().unwrap_or("postgres");
    let backends = json!({
        "main": {"type": "sqlite", "database": ":memory:"},
        "pg": {"type": "postgres", "host": "127.0.0.1", "port": relay.port, "username": user, "database": db,
               "schema": schema, "params": {"sslmode": "disable", "connect_timeout": "2"}},
    });
    let ws = h.open("down", Construction::Backends(backends)).await;
    ws.register(EntityDef::new("local").field(FieldDef::new("v", T::Integer)), false).await.unwrap();
    ws.register(EntityDef::new("remote").field(FieldDef::new("v", T::Integer).store("pg")), false).await.unwrap();
    ws.upsert("local", json!({"name": "a", "v": 1})).await.unwrap();
    ws.upsert("remote", json!({"name": "b", "v": 2})).await.unwrap();
    assert_eq!(cells(&ws.sql("SELECT v FROM remote").await.unwrap()), rows(&[&["2"]]));

    let port = relay.stop().await;
    let err = ws.sql("SELECT v FROM remote").await.unwrap_err().to_string();
    assert!(err.contains("backend 'pg' (postgres)"), "{err}");
    assert!(err.contains(&format!("cannot connect to {user}@127.0.0.1:{port}/{db}")) || err.contains("closed"), "{err}");
    assert!(!err.contains("password"), "{err}");
    // Other entities keep answering.
    assert_eq!(cells(&ws.sql("SELECT v FROM local").await.unwrap()), rows(&[&["1"]]));
    let err = ws.upsert("remote", json!({"name": "c", "v": 3})).await.unwrap_err().to_string();
    assert!(err.contains("backend 'pg'"), "{err}");

    // Back up on the same port: the next statement reconnects. The failed write
    // reached the SQLite group (name) but not the Postgres one: audit reports the
    // partial object, and writing it again completes it.
    let relay = Relay::start(format!("{host}:{pg_port}"), port).await;
    assert_eq!(cells(&ws.sql("SELECT name, v FROM remote ORDER BY name").await.unwrap()), rows(&[&["b", "2"], &["c", "NULL"]]));
    let audit = ws.audit().await.unwrap();
    assert!(!audit.ok() && audit.partial.len() == 1, "{audit:?}");
    ws.upsert("remote", json!({"name": "c", "v": 3})).await.unwrap();
    assert_eq!(cells(&ws.sql("SELECT v FROM remote ORDER BY v").await.unwrap()), rows(&[&["2"], &["3"]]));
    assert!(ws.audit().await.unwrap().ok());
    relay.stop().await;
    drop_pg_schemas(&[schema]).await;
}

#[tokio::test]
async fn postgres_errors_name_backend_statement_and_sqlstate() {
    let Some(url) = pg_url() else { return };
    let h = TestHome::new();
    let ws = h.open("errs", Construction::Backends(json!({"main": h.postgres("errs").await}))).await;
    ws.register(EntityDef::new("item").field(FieldDef::new("v", T::Integer)), false).await.unwrap();
    ws.upsert("item", json!({"name": "a", "v": 1})).await.unwrap();
    // Someone changes the table behind the workspace's back: the error says
    // which backend, which statement, and what Postgres said.
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    client.batch_execute(&format!("ALTER TABLE {}.item DROP COLUMN v", h.pg_schema("errs"))).await.unwrap();
    let err = ws.sql("SELECT v FROM item WHERE v > 0").await.unwrap_err().to_string();
    assert!(err.contains("backend 'main' (postgres)") && err.contains("SQLSTATE 42703"), "{err}");
    assert!(err.contains("statement: SELECT"), "{err}");
    // The workspace still answers what it can.
    assert_eq!(cells(&ws.sql("SELECT name FROM item").await.unwrap()), rows(&[&["a"]]));
    drop_pg_schemas(&[h.pg_schema("errs")]).await;
}

/// ALTER TABLE on a Postgres backend: columns dropped and renamed in place
/// (with their indexes), added with their defaults, kept for a new process.
#[tokio::test]
async fn alter_table_in_postgres_lasts() {
    if pg_url().is_none() {
        return;
    }
    let h = TestHome::new();
    let backends = json!({"main": h.postgres("alter").await});
    {
        let ws = h.open("alter", Construction::Backends(backends)).await;
        crate::sql::alter_table_scenario(&ws, None).await;
    }
    crate::sql::altered_table_is_kept(&Workspace::load_in(&h.home, "alter").await.unwrap()).await;
    drop_pg_schemas(&[h.pg_schema("alter")]).await;
}

/// Transaction blocks with the rows in Postgres: ROLLBACK leaves them, COMMIT
/// writes the block's latest rows and deletions, reads inside see the block;
/// and 16 clients × 200 increments of one row end at exactly 3,200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_over_postgres() {
    if pg_url().is_none() {
        return;
    }
    let h = TestHome::new();
    let backends = json!({"main": h.postgres("txpg").await});
    let ws = h.open("txpg", Construction::Backends(backends)).await;
    ws.sql("CREATE TABLE acct (id integer PRIMARY KEY, balance integer)").await.unwrap();
    ws.sql("INSERT INTO acct VALUES (1, 100), (2, 100)").await.unwrap();
    let balances = |ws: Workspace| async move { cells(&ws.sql("SELECT id, balance FROM acct ORDER BY id").await.unwrap()) };
    let tx = ws.begin().unwrap();
    tx.sql("UPDATE acct SET balance = balance - 30 WHERE id = 1").await.unwrap();
    tx.sql("UPDATE acct SET balance = balance + 30 WHERE id = 2").await.unwrap();
    tx.sql("DELETE FROM acct WHERE balance > 120").await.unwrap();
    assert_eq!(balances(tx.workspace().clone()).await, rows(&[&["1", "70"]]));
    tx.rollback();
    assert_eq!(balances(ws.clone()).await, rows(&[&["1", "100"], &["2", "100"]]));
    let tx = ws.begin().unwrap();
    tx.sql("UPDATE acct SET balance = balance - 30 WHERE id = 1").await.unwrap();
    tx.sql("INSERT INTO acct VALUES (3, 5)").await.unwrap();
    tx.sql("DELETE FROM acct WHERE id = 2").await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(balances(ws.clone()).await, rows(&[&["1", "70"], &["3", "5"]]));
    assert!(ws.audit().await.unwrap().ok(), "cards follow the committed rows");
    crate::wire::increments_add_up(ws, "txpg", 16, 200).await;
    drop_pg_schemas(&[h.pg_schema("txpg")]).await;
}

/// The new SQL-table statements with the rows in a real Postgres:
/// CREATE TABLE … AS, DEFAULT now(), CREATE/DROP INDEX (the index appears in
/// and leaves Postgres' own pg_indexes, and a dropped unique index stops
/// refusing duplicates there), UPDATE … FROM and DELETE … USING.
#[tokio::test]
async fn sql_table_statements_over_postgres() {
    let Some(url) = pg_url() else { return };
    let h = TestHome::new();
    let schema = h.pg_schema("sqlt");
    let backends = json!({"main": h.postgres("sqlt").await});
    let ws = h.open("sqlt", Construction::Backends(backends)).await;
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let index_count = |name: &'static str| {
        let (client, schema) = (&client, schema.clone());
        async move {
            let row = client
                .query_one("SELECT count(*) FROM pg_indexes WHERE schemaname = $1 AND indexname = $2", &[&schema, &name])
                .await
                .unwrap();
            row.get::<_, i64>(0)
        }
    };
    ws.sql("CREATE TABLE src (id integer PRIMARY KEY, a integer, at timestamptz DEFAULT now())").await.unwrap();
    ws.sql("INSERT INTO src (id, a) VALUES (1, 10), (2, 20), (3, 30)").await.unwrap();
    assert_eq!(cells(&ws.sql("SELECT count(*) FROM src WHERE at IS NOT NULL").await.unwrap()), rows(&[&["3"]]));
    let made = ws.sql("CREATE TABLE dst AS SELECT id, a * 2 AS b FROM src WHERE a > 10").await.unwrap();
    assert_eq!(cells(&made), rows(&[&["2"]]));
    assert_eq!(cells(&ws.sql("SELECT id, b FROM dst ORDER BY id").await.unwrap()), rows(&[&["2", "40"], &["3", "60"]]));

    ws.sql("CREATE UNIQUE INDEX src_a ON src (a)").await.unwrap();
    assert_eq!(index_count("ix_src_a").await, 1, "Postgres holds the index");
    assert_eq!(ws.sql("INSERT INTO src (id, a) VALUES (4, 10)").await.unwrap_err().sqlstate(), "23505");
    ws.sql("DROP INDEX src_a").await.unwrap();
    assert_eq!(index_count("ix_src_a").await, 0, "the index left Postgres");
    ws.sql("INSERT INTO src (id, a) VALUES (4, 10)").await.unwrap();

    let n = ws.sql("UPDATE dst SET b = src.a FROM src WHERE dst.id = src.id AND src.a >= 20").await.unwrap();
    assert_eq!(cells(&n), rows(&[&["2"]]));
    let n = ws.sql("DELETE FROM src USING dst WHERE src.id = dst.id AND dst.b = 30").await.unwrap();
    assert_eq!(cells(&n), rows(&[&["1"]]));
    assert_eq!(cells(&ws.sql("SELECT id FROM src ORDER BY id").await.unwrap()), rows(&[&["1"], &["2"], &["4"]]));
    assert!(ws.audit().await.unwrap().ok());
    drop_pg_schemas(&[schema]).await;
}
