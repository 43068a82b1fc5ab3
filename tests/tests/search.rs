//! Full-text and hybrid search: BM25 rankings checked against a BM25 computed
//! independently here, the same answers from the in-memory index and from an
//! exact search over SQLite rows, from the Rust API, the builder, JSON, SQL and
//! the wire; writes, deletes and transactions reflected at once.

use std::collections::{HashMap, HashSet};

use heavenbase::{Construction, EntityDef, FieldDef, Filter, LogicalType as T, Search, Workspace};
use serde_json::json;

use crate::common::{TestHome, cells};

pub(crate) const VOCAB: [&str; 24] = [
    "rust", "query", "engine", "vector", "search", "index", "table", "stream", "batch", "arrow", "planner", "join", "filter",
    "sort", "memory", "disk", "cache", "shard", "replica", "backup", "schema", "column", "row", "token",
];

/// A deterministic document of 6 to 29 words drawn unevenly from VOCAB (word
/// k about twice as common as word k + 3), so document frequencies, lengths
/// and term counts all vary.
fn body(i: usize) -> String {
    let mut x = (i as u64).wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
    let mut next = || {
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 29;
        x
    };
    let len = 6 + (next() % 24) as usize;
    (0..len)
        .map(|_| {
            let r = next() % 1000;
            let k = ((r as f64 / 1000.0).powf(2.2) * VOCAB.len() as f64) as usize;
            VOCAB[k.min(VOCAB.len() - 1)]
        })
        .collect::<Vec<_>>()
        .join(if i % 2 == 0 { " " } else { ", " })
}

fn title(i: usize) -> String {
    format!("Note {i} on {}", VOCAB[i % VOCAB.len()].to_uppercase())
}

fn doc() -> EntityDef {
    EntityDef::new("doc")
        .field(FieldDef::new("title", T::short_text()).search(true))
        .field(FieldDef::new("body", T::long_text()))
        .field(FieldDef::new("n", T::Integer))
        .field(FieldDef::new("emb", T::Vector { dim: 4 }))
}

fn emb(i: usize) -> Vec<f32> {
    vec![(i % 7) as f32, (i % 5) as f32, (i % 3) as f32, 1.0]
}

const DOCS: usize = 120;

async fn load(ws: &Workspace) {
    ws.register(doc(), false).await.unwrap();
    let rows: Vec<_> = (0..DOCS)
        .map(|i| {
            json!({"name": format!("d{i:03}"), "title": title(i), "body": body(i), "n": i, "emb": emb(i)})
                .as_object()
                .unwrap()
                .clone()
        })
        .collect();
    ws.upsert_many("doc", rows).await.unwrap();
}

fn id(i: usize) -> String {
    heavenbase::catalog::derive_object_id("doc", &format!("d{i:03}"))
}

/// BM25 as Lucene computes it, written out independently of the engine.
pub(crate) struct Oracle {
    /// Per field: object_id → its words.
    fields: HashMap<&'static str, HashMap<String, Vec<String>>>,
}

fn split(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(|w| w.to_lowercase()).collect()
}

impl Oracle {
    pub(crate) fn new(docs: &[(String, String, String)]) -> Oracle {
        let mut fields: HashMap<&'static str, HashMap<String, Vec<String>>> = HashMap::new();
        for (id, title, body) in docs {
            for (f, text) in [("title", title), ("body", body)] {
                let words = split(text);
                if !words.is_empty() {
                    fields.entry(f).or_default().insert(id.clone(), words);
                }
            }
        }
        Oracle { fields }
    }

    /// (score, matched) of one clause in one field for one document.
    fn clause(&self, field: &str, id: &str, clause: &str) -> (f64, bool) {
        let docs = &self.fields[field];
        let Some(words) = docs.get(id) else { return (0.0, false) };
        let n = docs.len() as f64;
        let avgdl = docs.values().map(|w| w.len()).sum::<usize>() as f64 / n;
        let idf = |w: &str| {
            let df = docs.values().filter(|d| d.iter().any(|x| x == w)).count() as f64;
            (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
        };
        let norm = |tf: f64| tf / (tf + 1.2 * (1.0 - 0.75 + 0.75 * words.len() as f64 / avgdl));
        if let Some(prefix) = clause.strip_suffix('*') {
            let hit = words.iter().any(|w| w.starts_with(prefix));
            return (if hit { 1.0 } else { 0.0 }, hit);
        }
        let phrase = split(clause);
        let freq = words.windows(phrase.len()).filter(|w| *w == phrase.as_slice()).count() as f64;
        if freq == 0.0 {
            return (0.0, false);
        }
        (phrase.iter().map(|w| idf(w)).sum::<f64>() * norm(freq), true)
    }

    /// Every matching id with its score, best first, ties by id.
    pub(crate) fn rank(&self, fields: &[&str], query: &str) -> Vec<(String, f64)> {
        // The test queries keep to: words, "phrases", +x, -x, prefix*.
        let mut clauses: Vec<(char, String)> = Vec::new();
        let mut rest = query.trim();
        while !rest.is_empty() {
            let occur = match rest.chars().next().unwrap() {
                c @ ('+' | '-') => {
                    rest = &rest[1..];
                    c
                }
                _ => ' ',
            };
            let (clause, tail) = if let Some(q) = rest.strip_prefix('"') {
                let end = q.find('"').unwrap();
                (q[..end].to_string(), &q[end + 1..])
            } else {
                let end = rest.find(' ').unwrap_or(rest.len());
                (rest[..end].to_string(), &rest[end..])
            };
            clauses.push((occur, clause));
            rest = tail.trim_start();
        }
        let ids: HashSet<&String> = fields.iter().flat_map(|f| self.fields[f].keys()).collect();
        let mut out = Vec::new();
        for id in ids {
            let (mut score, mut ok, mut any) = (0.0, true, false);
            for (occur, c) in &clauses {
                let (s, hit) = fields.iter().fold((0.0, false), |(s, h), f| {
                    let (cs, ch) = self.clause(f, id, c);
                    (s + cs, h || ch)
                });
                match occur {
                    '-' => ok &= !hit,
                    '+' => {
                        ok &= hit;
                        score += s;
                        any |= hit;
                    }
                    _ => {
                        score += s;
                        any |= hit;
                    }
                }
            }
            let must = clauses.iter().any(|(o, _)| *o == '+');
            let shoulds_hit = clauses.iter().any(|(o, c)| *o == ' ' && fields.iter().any(|f| self.clause(f, id, c).1));
            if ok && any && (must || shoulds_hit) {
                out.push((id.clone(), score));
            }
        }
        out.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        out
    }
}

pub(crate) const QUERIES: [&str; 30] = [
    "rust",
    "token",
    "backup replica",
    "query engine",
    "shard cache disk",
    "\"query engine\"",
    "\"arrow batch\"",
    "\"rust rust\"",
    "+rust engine",
    "+vector +index",
    "+search -rust",
    "vector -index",
    "+\"stream batch\" memory",
    "sch*",
    "re*",
    "ro* -column",
    "+col* rust",
    "planner join filter sort",
    "memory",
    "schema column row token",
    "\"join filter\"",
    "+join +filter +sort",
    "-rust query",
    "arrow",
    "index",
    "stream",
    "cache -disk -shard",
    "+table",
    "\"table table\"",
    "engine*",
];

/// Compare an engine's top-k with the oracle's: every returned row has the
/// oracle's score, and nothing the oracle ranks higher is missing.
pub(crate) fn check(hits: &[(String, f32)], oracle: &[(String, f64)], k: usize, what: &str) {
    assert_eq!(hits.len(), oracle.len().min(k), "{what}: {hits:?} vs {:?}", &oracle[..oracle.len().min(k)]);
    let by_id: HashMap<&str, f64> = oracle.iter().map(|(id, s)| (id.as_str(), *s)).collect();
    for (id, s) in hits {
        let want = by_id.get(id.as_str()).unwrap_or_else(|| panic!("{what}: {id} does not match"));
        assert!((*s as f64 - want).abs() < 1e-4 * want.max(1.0), "{what}: {id} scored {s}, BM25 says {want}");
    }
    if let (Some(last), Some(kth)) = (hits.last(), oracle.get(hits.len().saturating_sub(1))) {
        assert!(last.1 as f64 >= kth.1 - 1e-4, "{what}: the {}th row scores {} below {}", hits.len(), last.1, kth.1);
    }
    for w in hits.windows(2) {
        assert!(w[0].1 >= w[1].1, "{what}: not best first: {hits:?}");
    }
}

fn corpus() -> Vec<(String, String, String)> {
    (0..DOCS).map(|i| (id(i), title(i), body(i))).collect()
}

#[tokio::test]
async fn bm25_rankings_match_an_independent_computation_in_every_engine() {
    let h = TestHome::new();
    let oracle = Oracle::new(&corpus());
    // debug: title and body indexed by the in-memory search backend;
    // embedded without a search backend: searched exactly over SQLite rows.
    let indexed = h.open("s-debug", Construction::preset("debug")).await;
    let exact = h
        .open(
            "s-exact",
            Construction::Backends(json!({"main": {"type": "sqlite", "database": "file://{ws_folder}/main.sqlite"}})),
        )
        .await;
    load(&indexed).await;
    load(&exact).await;
    let plan = indexed.placement("doc").unwrap();
    let inverted: Vec<(String, String)> = plan
        .bindings
        .iter()
        .filter(|b| b.strategy.as_str() == "inverted")
        .map(|b| (b.field.clone(), b.backend.clone()))
        .collect();
    assert_eq!(inverted, [("title".to_string(), "search".to_string()), ("body".into(), "search".into())]);
    assert_eq!(plan.home_of("body"), Some("main"), "LongText is read from main and indexed in search");
    let explain = indexed.explain_search("doc", &Search::new(&["body"], "rust", None).unwrap()).unwrap();
    assert!(explain.contains("backend=search (inmem)") && explain.contains("inverted index"), "{explain}");
    let explain = exact.explain_search("doc", &Search::new(&["body"], "rust", None).unwrap()).unwrap();
    assert!(explain.contains("backend=main (sqlite)") && explain.contains("exact BM25"), "{explain}");

    let mut with_matches = 0;
    for fields in [&["body"][..], &["title", "body"][..]] {
        for q in QUERIES {
            let want = oracle.rank(fields, q);
            with_matches += usize::from(want.len() >= 10);
            for (ws, engine) in [(&indexed, "inmem"), (&exact, "exact")] {
                let search = Search::new(fields, q, Some(10)).unwrap();
                let hits = ws.search("doc", &search, None).await.unwrap();
                check(&hits, &want, 10, &format!("{engine} {fields:?} [{q}]"));
            }
            let a = indexed.search("doc", &Search::new(fields, q, Some(10)).unwrap(), None).await.unwrap();
            let b = exact.search("doc", &Search::new(fields, q, Some(10)).unwrap(), None).await.unwrap();
            let ids = |h: &[(String, f32)]| h.iter().map(|x| x.0.clone()).collect::<Vec<_>>();
            assert_eq!(ids(&a), ids(&b), "{fields:?} [{q}]: the engines agree on the top 10");
        }
    }
    assert!(with_matches >= 40, "the corpus gives most queries ten matches or more: {with_matches} of 60");
    // A pre-filter picks candidates; the statistics stay the whole field's.
    let evens: Vec<String> = (0..DOCS).step_by(2).map(id).collect();
    let want: Vec<(String, f64)> = oracle.rank(&["body"], "rust").into_iter().filter(|(i, _)| evens.contains(i)).collect();
    let hits = indexed.search("doc", &Search::new(&["body"], "rust", Some(5)).unwrap(), Some(evens)).await.unwrap();
    check(&hits, &want, 5, "pre-filtered");
}

#[tokio::test]
async fn sql_builder_and_json_agree_and_errors_name_the_field() {
    let h = TestHome::new();
    let ws = h.open("s-sql", Construction::preset("debug")).await;
    load(&ws).await;
    let oracle = Oracle::new(&corpus());
    let want = oracle.rank(&["body"], "+vector index");
    let top: Vec<String> = want.iter().take(5).map(|(id, _)| id.clone()).collect();
    let names: Vec<String> = top.iter().map(|id| format!("d{:03}", (0..DOCS).find(|i| self::id(*i) == *id).unwrap())).collect();

    let got = cells(
        &ws.sql(
            "SELECT d.name, round(s.score::double precision, 4) FROM search('doc', 'body', '+vector index', 5) AS s \
             JOIN doc d USING (object_id) ORDER BY s.score DESC, d.object_id",
        )
        .await
        .unwrap(),
    );
    assert_eq!(got.iter().map(|r| r[0].clone()).collect::<Vec<_>>(), names);
    assert_eq!(got[0][1], format!("{}", (want[0].1 * 10_000.0).round() / 10_000.0));

    // The builder: filters first, then the search; score ranks the rows.
    let rows = ws.query("doc").unwrap().search(&["body"], "+vector index", Some(5)).unwrap().rows().await.unwrap();
    assert_eq!(rows.iter().map(|r| r["name"].as_str().unwrap().to_string()).collect::<Vec<_>>(), names);
    assert!(rows[0]["score"].as_f64().unwrap() > rows[4]["score"].as_f64().unwrap());
    let rows = ws
        .query("doc")
        .unwrap()
        .where_(Filter::lt("n", 60))
        .search(&["body"], "+vector index", Some(3))
        .unwrap()
        .rows()
        .await
        .unwrap();
    let want_low: Vec<&String> =
        want.iter().filter(|(id, _)| (0..60).any(|i| self::id(i) == *id)).take(3).map(|x| &x.0).collect();
    assert_eq!(rows.iter().map(|r| r["object_id"].as_str().unwrap()).collect::<Vec<_>>(), want_low);

    // JSON: `$match` on a field indexed for search is a ranked full-text match
    // (every matching row, best first); on other fields a substring test.
    let q = json!({"filter": {"body": {"$match": "+vector index"}}, "select": ["name"]});
    let rows = ws.query_json("doc", &q).unwrap().rows().await.unwrap();
    assert_eq!(rows.len(), want.len(), "every match, not a top k");
    assert_eq!(rows.iter().take(5).map(|r| r["name"].as_str().unwrap().to_string()).collect::<Vec<_>>(), names);
    let q = json!({"search": {"fields": "body", "query": "+vector index", "top_k": 5}, "select": ["name"]});
    let rows = ws.query_json("doc", &q).unwrap().rows().await.unwrap();
    assert_eq!(rows.iter().map(|r| r["name"].as_str().unwrap().to_string()).collect::<Vec<_>>(), names);
    let rows = ws.query("doc").unwrap().where_(Filter::matches("name", "D00")).rows().await.unwrap();
    assert_eq!(rows.len(), 10, "name is not indexed for search: $match is a case-insensitive substring");

    // The where argument pre-filters with SQL.
    let got = cells(
        &ws.sql(
            "SELECT count(*) FROM search('doc', 'body', 'rust', 1000, 'n >= 100') s JOIN doc d USING (object_id) WHERE d.n < 100",
        )
        .await
        .unwrap(),
    );
    assert_eq!(got, [["0"]]);

    // Errors name the entity and the field, and say what is wrong.
    for (sql, expect) in [
        ("SELECT * FROM search('doc', 'bodyy', 'rust')", "no field 'bodyy'"),
        ("SELECT * FROM search('doc', 'n', 'rust')", "doc.n is"),
        ("SELECT * FROM search('doc', 'body', '-rust')", "no word to search for"),
        ("SELECT * FROM search('doc', 'body', '\"rust')", "not closed"),
        ("SELECT * FROM search('nope', 'body', 'rust')", "nope"),
        ("SELECT * FROM search('doc', 'body')", "3 to 5 arguments"),
        ("SELECT * FROM search('doc', 'body', 'rust', 0)", "positive integer"),
    ] {
        let err = ws.sql(sql).await.unwrap_err().to_string();
        assert!(err.contains(expect), "{sql}: {err}");
    }

    // EXPLAIN names the backend and the query it ran.
    let plan = cells(&ws.sql("EXPLAIN SELECT * FROM search('doc', 'title, body', 'Rust +\"query engine\"', 7)").await.unwrap());
    let text = plan.iter().map(|r| r.join(" ")).collect::<Vec<_>>().join("\n");
    assert!(text.contains("SearchExec") && text.contains("backend=search (inmem)"), "{text}");
    assert!(text.contains("[rust +\"query engine\"]") && text.contains("top_k=7"), "{text}");
}

#[tokio::test]
async fn hybrid_fuses_text_and_vector_rankings_by_rrf() {
    let h = TestHome::new();
    let ws = h.open("s-hybrid", Construction::preset("debug")).await;
    load(&ws).await;
    // Each ranking read 100 deep, then RRF by hand.
    let text = ws.search("doc", &Search::new(&["body"], "query engine", Some(100)).unwrap(), None).await.unwrap();
    let near =
        ws.near("doc", &heavenbase::Near::new("emb", vec![3.0, 2.0, 1.0, 1.0], Some(100), None).unwrap(), None).await.unwrap();
    let mut want: HashMap<String, f64> = HashMap::new();
    for ranking in [&text, &near] {
        for (r, (id, _)) in ranking.iter().enumerate() {
            *want.entry(id.clone()).or_default() += 1.0 / (60.0 + r as f64 + 1.0);
        }
    }
    let mut want: Vec<(String, f64)> = want.into_iter().collect();
    want.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    want.truncate(10);

    let got = cells(
        &ws.sql(
            "SELECT object_id, score, text_rank, vector_rank FROM hybrid('doc', 'body', 'query engine', 'emb', '[3, 2, 1, 1]', 10)",
        )
        .await
        .unwrap(),
    );
    assert_eq!(got.len(), 10);
    for (row, (id, score)) in got.iter().zip(&want) {
        assert_eq!(&row[0], id);
        assert!((row[1].parse::<f64>().unwrap() - score).abs() < 1e-9, "{row:?} vs {score}");
        let text_rank = text.iter().position(|(t, _)| t == id).map(|p| (p + 1).to_string()).unwrap_or("NULL".into());
        let vector_rank = near.iter().position(|(t, _)| t == id).map(|p| (p + 1).to_string()).unwrap_or("NULL".into());
        assert_eq!((&row[2], &row[3]), (&text_rank, &vector_rank), "{id}");
    }
    // The builder and JSON give the same rows.
    let rows = ws
        .query("doc")
        .unwrap()
        .hybrid(&["body"], "query engine", "emb", vec![3.0, 2.0, 1.0, 1.0], Some(10))
        .unwrap()
        .rows()
        .await
        .unwrap();
    assert_eq!(
        rows.iter().map(|r| r["object_id"].as_str().unwrap().to_string()).collect::<Vec<_>>(),
        want.iter().map(|w| w.0.clone()).collect::<Vec<_>>()
    );
    let q = json!({"hybrid": {"fields": ["body"], "query": "query engine", "vector_field": "emb", "vector": [3, 2, 1, 1], "top_k": 3}});
    let rows = ws.query_json("doc", &q).unwrap().rows().await.unwrap();
    assert_eq!(
        rows.iter().map(|r| r["object_id"].as_str().unwrap().to_string()).collect::<Vec<_>>(),
        want.iter().take(3).map(|w| w.0.clone()).collect::<Vec<_>>()
    );
    assert!(rows[0].contains_key("text_rank") && rows[0].contains_key("vector_rank"));
    let err = ws.sql("SELECT * FROM hybrid('doc', 'body', 'x', 'title', '[1,2,3,4]')").await.unwrap_err().to_string();
    assert!(err.contains("not a vector"), "{err}");
}

#[tokio::test]
async fn writes_deletes_and_transactions_are_searched_at_once() {
    let h = TestHome::new();
    let ws = h.open("s-writes", Construction::preset("debug")).await;
    load(&ws).await;
    let find = |ws: Workspace, q: &'static str| async move {
        let hits = ws.search("doc", &Search::new(&["body"], q, Some(1000)).unwrap(), None).await.unwrap();
        hits.into_iter().map(|h| h.0).collect::<Vec<_>>()
    };
    assert!(find(ws.clone(), "zebra").await.is_empty());
    ws.upsert("doc", json!({"name": "z1", "body": "a zebra crossing"})).await.unwrap();
    let z1 = heavenbase::catalog::derive_object_id("doc", "z1");
    assert_eq!(find(ws.clone(), "zebra").await, [z1.clone()]);
    // SQL DML: an update moves the row from one word to another.
    ws.sql("UPDATE doc SET body = 'an okapi at rest' WHERE name = 'z1'").await.unwrap();
    assert!(find(ws.clone(), "zebra").await.is_empty());
    assert_eq!(find(ws.clone(), "okapi").await, [z1.clone()]);
    ws.sql("DELETE FROM doc WHERE name = 'z1'").await.unwrap();
    assert!(find(ws.clone(), "okapi").await.is_empty());
    // A partial write leaves the indexed text as it was.
    let before = find(ws.clone(), "+rust").await;
    ws.sql("UPDATE doc SET n = n + 1000").await.unwrap();
    assert_eq!(find(ws.clone(), "+rust").await, before);

    // Inside a block the search sees the block's rows; a rollback leaves the
    // index as it was; a commit publishes them.
    let txn = ws.begin().unwrap();
    txn.workspace().upsert("doc", json!({"name": "z2", "body": "zebra zebra"})).await.unwrap();
    txn.workspace().sql(&format!("DELETE FROM doc WHERE object_id = '{}'", before[0])).await.unwrap();
    let z2 = heavenbase::catalog::derive_object_id("doc", "z2");
    assert_eq!(find(txn.workspace().clone(), "zebra").await, [z2.clone()]);
    assert!(!find(txn.workspace().clone(), "+rust").await.contains(&before[0]));
    assert!(find(ws.clone(), "zebra").await.is_empty(), "outside the block nothing changed");
    txn.rollback();
    assert!(find(ws.clone(), "zebra").await.is_empty());
    assert_eq!(find(ws.clone(), "+rust").await, before);
    let txn = ws.begin().unwrap();
    txn.workspace().upsert("doc", json!({"name": "z2", "body": "zebra zebra"})).await.unwrap();
    txn.commit().await.unwrap();
    assert_eq!(find(ws.clone(), "zebra").await, [z2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_and_hybrid_over_the_wire() {
    let h = TestHome::new();
    let ws = h.open("s-wire", Construction::preset("debug")).await;
    load(&ws).await;
    let port = crate::wire::start(ws.clone()).await;
    let client = crate::wire::connect(port, "s-wire").await;
    let want = ws.search("doc", &Search::new(&["body"], "\"query engine\"", Some(5)).unwrap(), None).await.unwrap();
    let rows = client
        .query(
            "SELECT d.name, s.object_id, s.score FROM search('doc', 'body', '\"query engine\"', 5) s \
             JOIN doc d USING (object_id) ORDER BY s.score DESC, s.object_id",
            &[],
        )
        .await
        .unwrap();
    let got: Vec<(String, f32)> = rows.iter().map(|r| (r.get::<_, String>(1), r.get::<_, f32>(2))).collect();
    assert_eq!(got, want);
    // Bound parameters as arguments, typed in Parse as psycopg types them
    // (text, and an integer top_k): the same rows.
    use tokio_postgres::types::Type;
    let rows = client
        .query_typed(
            "SELECT d.name, s.object_id, s.score FROM search('doc', 'body', $1, $2) s \
             JOIN doc d USING (object_id) ORDER BY s.score DESC, s.object_id",
            &[(&"\"query engine\"", Type::TEXT), (&5i64, Type::INT8)],
        )
        .await
        .unwrap();
    let got: Vec<(String, f32)> = rows.iter().map(|r| (r.get::<_, String>(1), r.get::<_, f32>(2))).collect();
    assert_eq!(got, want);
    let rows = client
        .query_typed(
            "SELECT object_id, text_rank FROM hybrid('doc', 'body', $1, 'emb', $2, $3) ORDER BY score DESC, object_id",
            &[(&"rust", Type::TEXT), (&"[1, 0, 0, 1]", Type::TEXT), (&4i32, Type::INT4)],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 4);
    // Prepared (Describe reports the parameters: text, and an int8 top_k),
    // mixed with a parameter the plan types itself.
    let statement = client
        .prepare("SELECT d.n FROM search('doc', 'body', $1, $2) s JOIN doc d USING (object_id) WHERE d.n < $3 ORDER BY d.n")
        .await
        .unwrap();
    assert_eq!(statement.params(), &[Type::TEXT, Type::INT8, Type::INT8]);
    let rows = client.query(&statement, &[&"rust", &1000i64, &50i64]).await.unwrap();
    let want = ws.search("doc", &Search::new(&["body"], "rust", Some(1000)).unwrap(), None).await.unwrap();
    let n: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    let mut expected: Vec<i64> =
        want.iter().map(|(id, _)| (0..DOCS).find(|i| self::id(*i) == *id).unwrap() as i64).filter(|n| *n < 50).collect();
    expected.sort();
    assert_eq!(n, expected);
    let err = client.query_typed("SELECT * FROM search('doc', 'bodyy', $1)", &[(&"rust", Type::TEXT)]).await.unwrap_err();
    assert!(err.as_db_error().unwrap().message().contains("no field 'bodyy'"), "{err:?}");
    let rows = client
        .simple_query("SELECT count(*) FROM hybrid('doc', 'body', 'rust', 'emb', '[1, 0, 0, 1]', 8) WHERE text_rank IS NOT NULL OR vector_rank IS NOT NULL")
        .await
        .unwrap();
    let count = rows.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(String::from),
        _ => None,
    });
    assert_eq!(count.as_deref(), Some("8"));
}

/// A write cut off between backends: `doc`'s entry `id` is deleted from the
/// workspace's `search` backend alone, behind the engine's back.
pub(crate) async fn lose_index_entry(ws: &Workspace, id: &str) {
    let backend = ws.backends().iter().find(|b| b.info().name == "search").unwrap().clone();
    let mut body = heavenbase::providers::ColumnSpec::new("body", T::long_text());
    body.search = true;
    let mut title = heavenbase::providers::ColumnSpec::new("title", T::short_text());
    title.search = true;
    let group = heavenbase::providers::GroupSpec::new("doc", "doc", vec![title, body], vec![]);
    assert_eq!(backend.delete(&group, &[id.to_string()]).await.unwrap(), [id.to_string()], "the entry was there");
}

#[tokio::test]
async fn audit_reports_a_missing_index_entry_and_repair_reindexes_it() {
    let h = TestHome::new();
    let ws = h.open("s-audit", Construction::preset("debug")).await;
    load(&ws).await;
    let search = Search::new(&["body"], "+rust", Some(1000)).unwrap();
    let before = ws.search("doc", &search, None).await.unwrap();
    let lost = before[0].0.clone();
    lose_index_entry(&ws, &lost).await;
    assert!(!ws.search("doc", &search, None).await.unwrap().iter().any(|h| h.0 == lost));
    let audit = ws.audit().await.unwrap();
    assert_eq!(audit.partial.len(), 1);
    assert_eq!(
        (audit.partial[0].object_id.as_str(), audit.partial[0].missing_in.clone()),
        (lost.as_str(), vec!["search".to_string()])
    );
    ws.repair(false).await.unwrap();
    assert!(ws.audit().await.unwrap().ok());
    assert_eq!(ws.search("doc", &search, None).await.unwrap(), before, "reindexed from the row, scores as before");
}

#[tokio::test]
async fn the_embedded_preset_indexes_in_main_and_finds_its_index_after_reopening() {
    let h = TestHome::new();
    let search = Search::new(&["title", "body"], "+\"query engine\" rust sch*", Some(10)).unwrap();
    let before = {
        let ws = h.open("s-emb", Construction::preset("embedded")).await;
        load(&ws).await;
        let plan = ws.placement("doc").unwrap();
        let body: Vec<(String, String)> = plan
            .bindings
            .iter()
            .filter(|b| b.field == "body")
            .map(|b| (b.backend.clone(), b.strategy.as_str().to_string()))
            .collect();
        assert_eq!(body, [("main".to_string(), "inverted".to_string())], "stored and indexed in main: one transaction per write");
        assert_eq!(plan.groups.iter().map(|g| g.backend.as_str()).collect::<Vec<_>>(), ["main", "vec"]);
        let explain = ws.explain_search("doc", &search).unwrap();
        assert!(explain.contains("backend=main (sqlite)") && explain.contains("inverted index"), "{explain}");
        // System entities' text is not indexed.
        let card = ws.placement("sys-catalog").unwrap();
        assert!(!card.bindings.iter().any(|b| b.strategy.as_str() == "inverted"));
        let hits = ws.search("doc", &search, None).await.unwrap();
        check(&hits, &Oracle::new(&corpus()).rank(&["title", "body"], "+\"query engine\" rust sch*"), 10, "embedded");
        hits
    };
    let ws = Workspace::load_in(&h.home, "s-emb").await.unwrap();
    assert_eq!(ws.search("doc", &search, None).await.unwrap(), before, "the index is found again after reopening");
    ws.upsert("doc", json!({"name": "fresh", "body": "query engine query engine"})).await.unwrap();
    let hits = ws.search("doc", &Search::new(&["body"], "\"query engine\"", Some(1)).unwrap(), None).await.unwrap();
    assert_eq!(hits[0].0, heavenbase::catalog::derive_object_id("doc", "fresh"));
}

#[tokio::test]
async fn sql_tables_index_the_columns_with_search_names() {
    let h = TestHome::new();
    let ws = h.open("s-ddl", Construction::preset("debug")).await;
    ws.sql("CREATE TABLE post (id integer PRIMARY KEY, title text, body text, note text) WITH (search = 'title, body')")
        .await
        .unwrap();
    let plan = ws.placement("post").unwrap();
    let mut indexed: Vec<&str> =
        plan.bindings.iter().filter(|b| b.strategy.as_str() == "inverted").map(|b| b.field.as_str()).collect();
    indexed.sort();
    assert_eq!(indexed, ["body", "title"], "text columns not named are not indexed");
    ws.sql("INSERT INTO post VALUES (1, 'Rust engines', 'a query engine in rust', 'rust'), (2, 'Java', 'a jvm', 'rust rust')")
        .await
        .unwrap();
    let got = cells(
        &ws.sql("SELECT p.id FROM search('post', '', 'rust') s JOIN post p USING (object_id) ORDER BY s.score DESC")
            .await
            .unwrap(),
    );
    assert_eq!(got, [["1"]], "'' searches the indexed columns");
    // A column not indexed is still searchable, exactly.
    let got = cells(
        &ws.sql("SELECT p.id FROM search('post', 'note', 'rust') s JOIN post p USING (object_id) ORDER BY s.score DESC")
            .await
            .unwrap(),
    );
    assert_eq!(got, [["2"], ["1"]]);
    let explain = cells(&ws.sql("EXPLAIN SELECT * FROM search('post', 'note', 'rust')").await.unwrap());
    assert!(explain.iter().any(|r| r.join(" ").contains("exact BM25")), "{explain:?}");
    let err = ws.sql("CREATE TABLE bad (t text) WITH (search = 'nope')").await.unwrap_err().to_string();
    assert!(err.contains("nope"), "{err}");
}

#[tokio::test]
async fn the_index_follows_alter_and_drop_table() {
    let h = TestHome::new();
    for preset in ["debug", "embedded"] {
        let ws = h.open(&format!("s-alter-{preset}"), Construction::preset(preset)).await;
        ws.sql("CREATE TABLE note (id integer PRIMARY KEY, body text, extra text) WITH (search = 'body')").await.unwrap();
        ws.sql("INSERT INTO note VALUES (1, 'okapi at rest', 'x'), (2, 'zebra crossing', 'y')").await.unwrap();
        let ids = |sql: &'static str| {
            let ws = ws.clone();
            async move { cells(&ws.sql(sql).await.unwrap()) }
        };
        ws.sql("ALTER TABLE note RENAME COLUMN body TO text").await.unwrap();
        let got = ids("SELECT n.id FROM search('note', 'text', 'zebra') s JOIN note n USING (object_id)").await;
        assert_eq!(got, [["2"]], "[{preset}] the index follows the renamed column");
        let explain = ids("EXPLAIN SELECT * FROM search('note', 'text', 'zebra')").await;
        assert!(explain.iter().any(|r| r.join(" ").contains("inverted index")), "[{preset}] {explain:?}");
        ws.sql("ALTER TABLE note DROP COLUMN extra").await.unwrap();
        ws.sql("UPDATE note SET text = 'a zebra again' WHERE id = 1").await.unwrap();
        let got =
            ids("SELECT n.id FROM search('note', '', 'zebra') s JOIN note n USING (object_id) ORDER BY s.score DESC, n.id").await;
        assert_eq!(got.len(), 2, "[{preset}] {got:?}");
        ws.sql("DROP TABLE note").await.unwrap();
        let err = ws.sql("SELECT * FROM search('note', 'text', 'zebra')").await.unwrap_err().to_string();
        assert!(err.contains("note"), "[{preset}] {err}");
        ws.sql("CREATE TABLE note (id integer PRIMARY KEY, text text) WITH (search = 'text')").await.unwrap();
        let got = ids("SELECT count(*) FROM search('note', 'text', 'zebra')").await;
        assert_eq!(got, [["0"]], "[{preset}] a table made again starts with an empty index");
    }
}
