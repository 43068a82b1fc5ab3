//! Elasticsearch / OpenSearch as the search backend, against the
//! OpenSearch-compatible `osmem-server` that .ci/run starts
//! (`HEAVENBASE_TEST_OPENSEARCH`; no Elasticsearch server can be installed
//! here) and against a real Elasticsearch when `HEAVENBASE_TEST_ES` is set.
//!
//! osmem-server computes BM25's length normalisation differently from Lucene
//! (its scores differ from Lucene's by a factor that depends on a document's
//! length), so the corpus here gives every document the same length and no
//! word twice: then every engine that scores idf · f(tf, dl) ranks alike, and
//! the test checks that the ranks it compares are unambiguous. Against a real
//! Elasticsearch the scores themselves are compared with BM25 as well.

use std::collections::HashSet;

use heavenbase::{Construction, EntityDef, FieldDef, LogicalType as T, Search, Workspace};
use serde_json::json;

use crate::common::{TestHome, cells};
use crate::search::{Oracle, QUERIES, VOCAB, check, lose_index_entry};

/// The search servers to test: (label, URL, whether its scores are Lucene's).
fn servers() -> Vec<(&'static str, String, bool)> {
    let mut out = Vec::new();
    match std::env::var("HEAVENBASE_TEST_OPENSEARCH") {
        Ok(url) if !url.is_empty() => out.push(("opensearch", url, false)),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("HEAVENBASE_TEST_OPENSEARCH is not set; .ci/run starts osmem-server on 127.0.0.1:9200")
        }
        _ => eprintln!("skipped: HEAVENBASE_TEST_OPENSEARCH is not set (pip install osmem-server; see .ci/run)"),
    }
    if let Ok(url) = std::env::var("HEAVENBASE_TEST_ES")
        && !url.is_empty()
    {
        out.push(("elasticsearch", url, true));
    }
    out
}

/// A workspace whose rows are in SQLite and whose search backend is `url`,
/// with indexes named after `tag` and this home (tests running at once, and
/// runs after an interrupted one, never share an index).
async fn open(h: &TestHome, tag: &str, kind: &str, url: &str) -> Workspace {
    let prefix = format!("{}_", h.pg_schema(tag));
    h.open(
        tag,
        Construction::Backends(json!({
            "main": {"type": "sqlite", "database": "file://{ws_folder}/main.sqlite"},
            "search": {"type": kind, "hosts": [url], "index_prefix": prefix},
        })),
    )
    .await
}

const DOCS: usize = 150;
const WORDS: usize = 8;

/// `WORDS` distinct words drawn unevenly from VOCAB (skewed towards its start,
/// or its end for `reverse`): every document has the same length and holds no
/// word twice, while document frequencies vary widely.
fn words(i: usize, salt: u64, reverse: bool) -> String {
    let mut x = (i as u64 ^ salt).wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
    let mut next = || {
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 29;
        x
    };
    let mut picked: Vec<&str> = Vec::new();
    while picked.len() < WORDS {
        let r = next() % 1000;
        let k = (((r as f64 / 1000.0).powf(1.8) * VOCAB.len() as f64) as usize).min(VOCAB.len() - 1);
        let w = VOCAB[if reverse { VOCAB.len() - 1 - k } else { k }];
        if !picked.contains(&w) {
            picked.push(w);
        }
    }
    picked.join(" ")
}

fn id(i: usize) -> String {
    heavenbase::catalog::derive_object_id("doc", &format!("e{i:03}"))
}

fn corpus() -> Vec<(String, String, String)> {
    (0..DOCS).map(|i| (id(i), words(i, 0x5eed, true), words(i, 0, false))).collect()
}

fn doc() -> EntityDef {
    EntityDef::new("doc")
        .field(FieldDef::new("title", T::short_text()).search(true))
        .field(FieldDef::new("body", T::long_text()))
        .field(FieldDef::new("n", T::Integer))
}

async fn load(ws: &Workspace) {
    ws.register(doc(), false).await.unwrap();
    let rows: Vec<_> = corpus()
        .into_iter()
        .enumerate()
        .map(|(i, (_, title, body))| {
            json!({"name": format!("e{i:03}"), "title": title, "body": body, "n": i}).as_object().unwrap().clone()
        })
        .collect();
    ws.upsert_many("doc", rows).await.unwrap();
}

/// Adjacent scores are equal (a tie, broken by object_id in every engine) or
/// clearly apart: an engine whose scores differ by a constant factor, or by
/// float rounding, cannot order them otherwise.
fn assert_unambiguous(hits: &[(String, f32)], what: &str) {
    for w in hits.windows(2) {
        let (a, b) = (w[0].1 as f64, w[1].1 as f64);
        assert!(a == b || a - b > 1e-3 * a, "{what}: the corpus ranks {} ({a}) and {} ({b}) too closely", w[0].0, w[1].0);
    }
}

fn ids(hits: &[(String, f32)]) -> Vec<String> {
    hits.iter().map(|h| h.0.clone()).collect()
}

#[tokio::test]
async fn the_search_server_ranks_as_inmem_and_the_embedded_engine() {
    let h = TestHome::new();
    let inmem = h.open("e-inmem", Construction::preset("debug")).await;
    let embedded = h.open("e-embedded", Construction::preset("embedded")).await;
    load(&inmem).await;
    load(&embedded).await;
    let oracle = Oracle::new(&corpus());
    for (kind, url, lucene) in servers() {
        let es = open(&h, &format!("e-rank-{kind}"), kind, &url).await;
        load(&es).await;
        let plan = es.placement("doc").unwrap();
        let inverted: Vec<(&str, &str)> = plan
            .bindings
            .iter()
            .filter(|b| b.strategy.as_str() == "inverted")
            .map(|b| (b.field.as_str(), b.backend.as_str()))
            .collect();
        assert_eq!(inverted, [("title", "search"), ("body", "search")], "{kind}");
        assert_eq!(plan.home_of("body"), Some("main"), "{kind}: LongText is read from main and indexed in search");
        let explain = es.explain_search("doc", &Search::new(&["body"], "+rust \"query engine\"", None).unwrap()).unwrap();
        assert!(
            explain.contains(&format!("backend=search ({kind})"))
                && explain.contains("match_phrase")
                && explain.contains("query engine"),
            "{explain}"
        );

        let mut compared = 0;
        for fields in [&["body"][..], &["title", "body"][..]] {
            for q in QUERIES {
                let what = format!("{kind} {fields:?} [{q}]");
                let search = Search::new(fields, q, Some(10)).unwrap();
                let a = inmem.search("doc", &search, None).await.unwrap();
                let b = embedded.search("doc", &search, None).await.unwrap();
                let c = es.search("doc", &search, None).await.unwrap();
                check(&a, &oracle.rank(fields, q), 10, &format!("inmem {what}"));
                // The 11th too: the 10th place is decided against it.
                let eleven = inmem.search("doc", &Search::new(fields, q, Some(11)).unwrap(), None).await.unwrap();
                assert_unambiguous(&eleven, &what);
                assert_eq!(ids(&a), ids(&b), "{what}: inmem and embedded");
                assert_eq!(ids(&a), ids(&c), "{what}: inmem and the search server");
                for w in c.windows(2) {
                    assert!(w[0].1 >= w[1].1, "{what}: best first: {c:?}");
                }
                if lucene {
                    check(&c, &oracle.rank(fields, q), 10, &what);
                }
                compared += usize::from(a.len() == 10);
            }
        }
        assert!(compared >= 40, "{kind}: most queries have ten results: {compared} of 60");

        // Candidates restricted by id: statistics stay the whole index's.
        let evens: Vec<String> = (0..DOCS).step_by(2).map(id).collect();
        let search = Search::new(&["body"], "rust query", Some(7)).unwrap();
        let a = inmem.search("doc", &search, Some(evens.clone())).await.unwrap();
        let c = es.search("doc", &search, Some(evens.clone())).await.unwrap();
        assert_eq!(a.len(), 7);
        assert!(a.iter().all(|h| evens.contains(&h.0)));
        assert_eq!(ids(&a), ids(&c), "{kind}: pre-filtered");

        // SQL over the server's ranking, joined to the rows in main.
        let sql = "SELECT d.name FROM search('doc', 'body', '+vector index', 5) s JOIN doc d USING (object_id) \
                   ORDER BY s.score DESC, d.object_id";
        assert_eq!(cells(&es.sql(sql).await.unwrap()), cells(&inmem.sql(sql).await.unwrap()), "{kind}: SQL search");
        let plan = cells(&es.sql(&format!("EXPLAIN {sql}")).await.unwrap());
        assert!(plan.iter().any(|r| r.join(" ").contains(&format!("{kind} BM25 on index"))), "{kind}: {plan:?}");
        es.sql("DROP TABLE doc").await.unwrap();
    }
}

#[tokio::test]
async fn the_search_server_follows_writes_transactions_alter_and_repair() {
    let h = TestHome::new();
    for (kind, url, _) in servers() {
        let ws = open(&h, &format!("e-writes-{kind}"), kind, &url).await;
        load(&ws).await;
        let find = |ws: Workspace, q: &'static str| async move {
            let hits = ws.search("doc", &Search::new(&["body"], q, Some(1000)).unwrap(), None).await.unwrap();
            hits.into_iter().map(|h| h.0).collect::<Vec<_>>()
        };
        assert!(find(ws.clone(), "zebra").await.is_empty());
        ws.upsert("doc", json!({"name": "z1", "body": "a zebra crossing"})).await.unwrap();
        let z1 = heavenbase::catalog::derive_object_id("doc", "z1");
        assert_eq!(find(ws.clone(), "zebra").await, [z1.clone()], "{kind}: an upsert is searched at once");
        ws.sql("UPDATE doc SET body = 'an okapi at rest' WHERE name = 'z1'").await.unwrap();
        assert!(find(ws.clone(), "zebra").await.is_empty(), "{kind}");
        assert_eq!(find(ws.clone(), "okapi").await, [z1.clone()], "{kind}");
        ws.sql("DELETE FROM doc WHERE name = 'z1'").await.unwrap();
        assert!(find(ws.clone(), "okapi").await.is_empty(), "{kind}");
        // A write of other fields leaves the indexed text as it was.
        let before = find(ws.clone(), "+rust").await;
        assert!(!before.is_empty());
        ws.sql("UPDATE doc SET n = n + 1000").await.unwrap();
        assert_eq!(find(ws.clone(), "+rust").await, before, "{kind}");

        // A rolled-back block leaves the index as it was; a commit publishes.
        let txn = ws.begin().unwrap();
        txn.workspace().upsert("doc", json!({"name": "z2", "body": "zebra zebra"})).await.unwrap();
        txn.workspace().sql(&format!("DELETE FROM doc WHERE object_id = '{}'", before[0])).await.unwrap();
        let z2 = heavenbase::catalog::derive_object_id("doc", "z2");
        assert_eq!(find(txn.workspace().clone(), "zebra").await, [z2.clone()], "{kind}: the block sees its rows");
        assert!(find(ws.clone(), "zebra").await.is_empty(), "{kind}: outside the block nothing changed");
        txn.rollback();
        assert!(find(ws.clone(), "zebra").await.is_empty(), "{kind}");
        assert_eq!(find(ws.clone(), "+rust").await, before, "{kind}");
        let txn = ws.begin().unwrap();
        txn.workspace().upsert("doc", json!({"name": "z2", "body": "zebra zebra"})).await.unwrap();
        txn.commit().await.unwrap();
        assert_eq!(find(ws.clone(), "zebra").await, [z2.clone()], "{kind}");

        // An entry lost from the server: audit names it, repair reindexes it.
        let search = Search::new(&["body"], "+rust", Some(1000)).unwrap();
        let ranked = ws.search("doc", &search, None).await.unwrap();
        let lost = ranked[0].0.clone();
        lose_index_entry(&ws, &lost).await;
        assert!(!ws.search("doc", &search, None).await.unwrap().iter().any(|h| h.0 == lost), "{kind}");
        let audit = ws.audit().await.unwrap();
        assert_eq!(audit.partial.len(), 1, "{kind}: {audit:?}");
        assert_eq!(
            (audit.partial[0].object_id.as_str(), audit.partial[0].missing_in.clone()),
            (lost.as_str(), vec!["search".to_string()]),
            "{kind}"
        );
        ws.repair(false).await.unwrap();
        assert!(ws.audit().await.unwrap().ok(), "{kind}");
        assert_eq!(ids(&ws.search("doc", &search, None).await.unwrap()), ids(&ranked), "{kind}: reindexed");
        ws.sql("DROP TABLE doc").await.unwrap();

        // DDL: the index follows a renamed and a dropped column.
        ws.sql("CREATE TABLE note (id integer PRIMARY KEY, body text, extra text) WITH (search = 'body, extra')").await.unwrap();
        ws.sql("INSERT INTO note VALUES (1, 'okapi at rest', 'x'), (2, 'zebra crossing', 'y')").await.unwrap();
        ws.sql("ALTER TABLE note RENAME COLUMN body TO text").await.unwrap();
        let q = |sql: &'static str| {
            let ws = ws.clone();
            async move { cells(&ws.sql(sql).await.unwrap()) }
        };
        let got = q("SELECT n.id FROM search('note', 'text', 'zebra') s JOIN note n USING (object_id)").await;
        assert_eq!(got, [["2"]], "{kind}: the index follows the renamed column");
        ws.sql("ALTER TABLE note DROP COLUMN extra").await.unwrap();
        ws.sql("UPDATE note SET text = 'a zebra again' WHERE id = 1").await.unwrap();
        let got =
            q("SELECT n.id FROM search('note', 'text', 'zebra') s JOIN note n USING (object_id) ORDER BY s.score DESC, n.id")
                .await;
        assert_eq!(got.len(), 2, "{kind}: {got:?}");
        let err = ws.sql("SELECT * FROM search('note', 'extra', 'x')").await.unwrap_err().to_string();
        assert!(err.contains("extra"), "{kind}: {err}");
        ws.sql("DROP TABLE note").await.unwrap();
        ws.sql("CREATE TABLE note (id integer PRIMARY KEY, text text) WITH (search = 'text')").await.unwrap();
        assert_eq!(q("SELECT count(*) FROM search('note', 'text', 'zebra')").await, [["0"]], "{kind}: a new table, a new index");
        ws.sql("DROP TABLE note").await.unwrap();
    }
}

#[tokio::test]
async fn an_unreachable_search_server_is_named_and_nothing_is_half_registered() {
    let h = TestHome::new();
    // Port 1 on the loopback: refused at once.
    let ws = open(&h, "e-down", "elasticsearch", "http://127.0.0.1:1").await;
    let err = ws.register(doc(), false).await.unwrap_err().to_string();
    assert!(err.contains("'search'") && err.contains("elasticsearch") && err.contains("127.0.0.1:1"), "{err}");
    let err = ws.sql("SELECT count(*) FROM doc").await.unwrap_err().to_string();
    assert!(err.contains("doc"), "the entity was not registered: {err}");
    // A password never shows in the configuration users see.
    let h2 = TestHome::new();
    let ws = h2
        .open(
            "e-secret",
            Construction::Backends(json!({
                "main": {"type": "sqlite", "database": ":memory:"},
                "search": {"type": "opensearch", "hosts": ["https://admin:hunter2@127.0.0.1:1"],
                           "username": "admin", "password": "hunter2"},
            })),
        )
        .await;
    let shown: HashSet<String> = ws.backends().iter().map(|b| b.describe().to_string()).collect();
    assert!(shown.iter().all(|d| !d.contains("hunter2")), "{shown:?}");
    assert!(shown.iter().any(|d| d.contains("https://***@127.0.0.1:1")), "{shown:?}");
    // Nor in the error of a request that failed.
    let err = ws.register(doc(), false).await.unwrap_err().to_string();
    assert!(err.contains("no host answered") && !err.contains("hunter2"), "{err}");
}
