//! SQL over stitched entity tables: the same data placed three ways must give the
//! same, expected, answers.

use heavenbase::{Construction, EntityDef, FieldDef, LogicalType as T, Workspace};
use serde_json::json;

use crate::common::{TestHome, cells, rows};

/// Product fields that move to the `side` backend in the split placements.
const SIDE_FIELDS: &[&str] = &["price", "qty", "tags"];

fn product(split: bool) -> EntityDef {
    let place = |f: FieldDef| if split && SIDE_FIELDS.contains(&f.name.as_str()) { f.store("side") } else { f };
    EntityDef::new("product")
        .field(place(FieldDef::new("title", T::short_text())))
        .field(place(FieldDef::new("price", T::Float)))
        .field(place(FieldDef::new("qty", T::Integer)))
        .field(place(FieldDef::new("active", T::Boolean)))
        .field(place(FieldDef::new("tags", T::array_of(T::short_text()))))
        .field(place(FieldDef::new("meta", T::Json)))
        .field(place(FieldDef::new("created", T::Timestamp)))
        .field(place(FieldDef::new("day", T::Date)))
}

fn review() -> EntityDef {
    EntityDef::new("review")
        .field(FieldDef::new("product", T::identifier()).index())
        .field(FieldDef::new("stars", T::Integer))
}

async fn load(h: &TestHome, placement: &str) -> Workspace {
    let db = h.dir.path().join(format!("{placement}.sqlite")).display().to_string();
    let (backends, split) = match placement {
        "sqlite" => (json!({"main": {"type": "sqlite", "database": db}}), false),
        "sqlite+inmem" => (json!({"main": {"type": "sqlite", "database": db}, "side": {"type": "inmem"}}), true),
        _ => (json!({"main": {"type": "inmem"}, "side": {"type": "sqlite", "database": db}}), true),
    };
    let ws = Workspace::open_in(&h.home, &placement.replace('+', "-"), Construction::Backends(backends)).await.unwrap();
    ws.register(product(split), false).await.unwrap();
    ws.register(review(), false).await.unwrap();
    let products = [
        json!({"name": "alpha", "title": "Alpha desk", "price": 10.0, "qty": 1, "active": true, "tags": ["office", "wood"],
               "meta": {"color": "red"}, "created": "2024-01-01T00:00:00Z", "day": "2024-01-01"}),
        json!({"name": "beta", "title": "beta chair", "price": 20.0, "qty": 2, "active": false, "tags": ["office"],
               "meta": {"color": "blue"}, "created": "2024-06-01T12:00:00Z", "day": "2024-02-01"}),
        json!({"name": "gamma", "title": "Gamma lamp", "price": null, "qty": 3, "active": true, "tags": []}),
        json!({"name": "delta", "title": null, "price": 40.0, "active": null, "meta": {"color": "red"}, "day": "2024-04-01"}),
    ];
    ws.upsert_many("product", products.iter().map(|p| p.as_object().unwrap().clone()).collect()).await.unwrap();
    let a = heavenbase::catalog::derive_object_id("product", "alpha");
    let b = heavenbase::catalog::derive_object_id("product", "beta");
    for (n, p, s) in [("r1", &a, 5), ("r2", &a, 3), ("r3", &b, 4)] {
        ws.upsert("review", json!({"name": n, "product": p, "stars": s})).await.unwrap();
    }
    ws
}

fn id(name: &str) -> String {
    heavenbase::catalog::derive_object_id("product", name)
}

fn cases() -> Vec<(String, Vec<Vec<String>>)> {
    let names = |n: &[&str]| n.iter().map(|x| vec![x.to_string()]).collect::<Vec<_>>();
    let q = |w: &str| format!("SELECT name FROM product WHERE {w} ORDER BY name");
    vec![
        ("SELECT name FROM product ORDER BY name".into(), names(&["alpha", "beta", "delta", "gamma"])),
        (q("price > 15"), names(&["beta", "delta"])),
        (q("price < 15"), names(&["alpha"])),
        (q("price = 20"), names(&["beta"])),
        (q("price >= 20 AND price <= 40"), names(&["beta", "delta"])),
        (q("price IS NULL"), names(&["gamma"])),
        (q("price IS NOT NULL"), names(&["alpha", "beta", "delta"])),
        (q("price <> 20"), names(&["alpha", "delta"])),
        (q("qty IN (1, 3)"), names(&["alpha", "gamma"])),
        (q("qty NOT IN (1, 3)"), names(&["beta"])),
        (q("qty BETWEEN 2 AND 3"), names(&["beta", "gamma"])),
        (q("title LIKE 'A%'"), names(&["alpha"])),
        (q("title LIKE 'g%'"), names(&[])),
        (q("title LIKE '%a%'"), names(&["alpha", "beta", "gamma"])),
        (q("title ILIKE 'g%'"), names(&["gamma"])),
        (q("title NOT LIKE '%desk'"), names(&["beta", "gamma"])),
        (q("starts_with(title, 'beta')"), names(&["beta"])),
        (q("title ~ '^[A-Z]'"), names(&["alpha", "gamma"])),
        (q("active"), names(&["alpha", "gamma"])),
        (q("NOT active"), names(&["beta"])),
        (q("active IS NULL"), names(&["delta"])),
        (q("day >= DATE '2024-02-01'"), names(&["beta", "delta"])),
        (q("created > TIMESTAMP '2024-03-01T00:00:00Z'"), names(&["beta"])),
        (q("array_has(tags, 'office')"), names(&["alpha", "beta"])),
        (q("cardinality(tags) = 0"), names(&["gamma"])),
        (q("meta LIKE '%red%'"), names(&["alpha", "delta"])),
        (q("price > 5 AND title LIKE '%a%'"), names(&["alpha", "beta"])),
        (q("price > 30 OR qty = 3"), names(&["delta", "gamma"])),
        (q("name = 'alpha'"), names(&["alpha"])),
        (q(&format!("object_id = '{}'", id("alpha"))), names(&["alpha"])),
        (q(&format!("object_id IN ('{}', '{}')", id("alpha"), id("gamma"))), names(&["alpha", "gamma"])),
        (q(&format!("object_id = '{}' AND price > 100", id("alpha"))), names(&[])),
        ("SELECT count(*), sum(qty), max(price), min(qty) FROM product".into(), rows(&[&["4", "6", "40.0", "1"]])),
        ("SELECT round(avg(price), 4) FROM product".into(), rows(&[&["23.3333"]])),
        ("SELECT count(price), count(DISTINCT active) FROM product".into(), rows(&[&["3", "2"]])),
        ("SELECT active, count(*) FROM product GROUP BY active ORDER BY active".into(),
            rows(&[&["false", "1"], &["true", "2"], &["NULL", "1"]])),
        ("SELECT active, sum(qty) AS s FROM product GROUP BY active HAVING sum(qty) > 1 ORDER BY s".into(),
            rows(&[&["false", "2"], &["true", "4"]])),
        ("SELECT name, price FROM product ORDER BY price DESC LIMIT 2".into(), rows(&[&["gamma", "NULL"], &["delta", "40.0"]])),
        ("SELECT name FROM product ORDER BY price DESC NULLS LAST LIMIT 2".into(), names(&["delta", "beta"])),
        ("SELECT name FROM product ORDER BY qty LIMIT 2 OFFSET 1".into(), names(&["beta", "gamma"])),
        ("SELECT p.name, r.stars FROM review r JOIN product p ON r.product = p.object_id ORDER BY r.stars".into(),
            rows(&[&["alpha", "3"], &["beta", "4"], &["alpha", "5"]])),
        ("SELECT p.name, count(*) AS n, avg(r.stars) FROM review r JOIN product p ON r.product = p.object_id \
          GROUP BY p.name HAVING count(*) > 1".into(), rows(&[&["alpha", "2", "4.0"]])),
        ("SELECT p.name FROM product p LEFT JOIN review r ON r.product = p.object_id WHERE r.object_id IS NULL ORDER BY p.name".into(),
            names(&["delta", "gamma"])),
        ("SELECT name FROM product WHERE object_id IN (SELECT product FROM review WHERE stars >= 4) ORDER BY name".into(),
            names(&["alpha", "beta"])),
        ("SELECT count(*) FROM sys_catalog WHERE target_entity = 'product'".into(), rows(&[&["4"]])),
        ("SELECT count(*) FROM sys_metaschema WHERE kind = 'field' AND subject_id = 'product'".into(), rows(&[&["10"]])),
        ("SELECT count(*) FROM (SELECT name FROM product LIMIT 2)".into(), rows(&[&["2"]])),
        ("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name".into(),
            names(&["product", "review", "sys_catalog", "sys_metaschema"])),
    ]
}

#[tokio::test]
async fn the_query_suite_agrees_across_three_placements() {
    let h = TestHome::new();
    let cases = cases();
    assert!(cases.len() >= 40, "{} queries", cases.len());
    for placement in ["sqlite", "sqlite+inmem", "inmem+sqlite"] {
        let ws = load(&h, placement).await;
        for (sql, want) in &cases {
            let got = ws.sql(sql).await.unwrap_or_else(|e| panic!("[{placement}] {sql}: {e}"));
            assert_eq!(&cells(&got), want, "[{placement}] {sql}");
        }
    }
}

async fn explain(ws: &Workspace, sql: &str) -> String {
    let batches = ws.sql(&format!("EXPLAIN {sql}")).await.unwrap();
    cells(&batches).into_iter().map(|r| r.join(" | ")).collect::<Vec<_>>().join("\n")
}

#[tokio::test]
async fn explain_shows_key_lookups_and_pushed_filters() {
    let h = TestHome::new();
    let ws = load(&h, "sqlite+inmem").await;
    let plan = explain(&ws, &format!("SELECT name, price FROM product WHERE object_id = '{}'", id("alpha"))).await;
    assert!(plan.contains("StitchExec") && plan.contains("ids=1"), "{plan}");
    assert!(plan.contains("backend=main (sqlite) key lookup") && plan.contains("backend=side (inmem) key lookup"), "{plan}");
    // A filter on a main column, with a side column projected: pushed into main,
    // and the survivors' ids reach the side group as key lookups.
    let plan = explain(&ws, "SELECT name, price FROM product WHERE title LIKE 'A%'").await;
    assert!(plan.contains("backend=main (sqlite) filtered scan") && plan.contains("pushed=[title LIKE"), "{plan}");
    assert!(plan.contains("backend=side (inmem) key lookup"), "{plan}");
    let plan = explain(&ws, "SELECT name FROM product WHERE qty = 3").await;
    // inmem leaves filters to DataFusion: the filter sits above the stitch.
    assert!(plan.contains("FilterExec") && plan.contains("qty@"), "{plan}");
    // One group answering everything: the backend gets the SQL and the LIMIT.
    let plan = explain(&ws, "SELECT name, title FROM product WHERE title LIKE 'A%' LIMIT 1").await;
    assert!(plan.contains("BackendScanExec") && plan.contains("WHERE \"title\" LIKE ?1 LIMIT 1"), "{plan}");
}
