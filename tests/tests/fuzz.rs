//! Fuzzing in the suite: five targets, each a committed seed corpus
//! (tests/fuzz/<target>/) mutated at random for a bounded time
//! (`HEAVENBASE_FUZZ_SECS`, 10 s by default). The generator's seed is fixed
//! unless `HEAVENBASE_FUZZ_SEED` gives one (`random` for a fresh one); it is
//! printed, so any run replays.
//!
//! The mutations are libFuzzer's kinds without its coverage feedback (cargo-fuzz
//! needs a nightly toolchain, which this project does not require): bytes
//! flipped, set, inserted, deleted, repeated (which is how nesting grows),
//! spliced from another seed, dictionary tokens inserted; JSON inputs are also
//! mutated as trees (values replaced by others of any type, keys of the
//! language added, nesting deepened).
//!
//! What every input must get: an answer or an error of a user-facing kind,
//! within a time bound, never a panic (caught and reported with the input),
//! never an `Internal` error (a defect by definition), and the workspace or
//! server stays usable. COPY input must also be all or nothing.

use std::time::{Duration, Instant};

use heavenbase::{Construction, EntityDef, ErrorKind};
use serde_json::{Value as Json, json};

use crate::common::TestHome;
use crate::hostile::Rng;
use crate::sql::load;
use crate::wire::{connect, start};

/// A target's run: its corpus, its time budget and its generator.
struct Fuzz {
    target: &'static str,
    corpus: Vec<Vec<u8>>,
    rng: Rng,
    deadline: Instant,
    runs: usize,
}

impl Fuzz {
    fn new(target: &'static str) -> Fuzz {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz").join(target);
        let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())).flatten().collect();
        files.sort_by_key(|e| e.path());
        let corpus: Vec<Vec<u8>> = files.iter().map(|e| std::fs::read(e.path()).unwrap()).collect();
        assert!(!corpus.is_empty(), "empty corpus {}", dir.display());
        let secs = std::env::var("HEAVENBASE_FUZZ_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(10.0);
        // A fixed seed by default, so the suite is repeatable (a longer budget
        // explores further along the same sequence); `random` for a new one.
        let seed = match std::env::var("HEAVENBASE_FUZZ_SEED").as_deref() {
            Ok("random") => std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1,
            Ok(n) => n.parse().expect("HEAVENBASE_FUZZ_SEED is a number or 'random'"),
            Err(_) => 0x5eed_f022 ^ target.len() as u64,
        };
        println!("fuzz {target}: seed {seed} (HEAVENBASE_FUZZ_SEED={seed} replays), {secs} s, {} seeds", corpus.len());
        Fuzz { target, corpus, rng: Rng(seed), deadline: Instant::now() + Duration::from_secs_f64(secs), runs: 0 }
    }

    /// The next input, or None when the time is up. Seeds first, unchanged.
    fn next_bytes(&mut self, dictionary: &[&str]) -> Option<Vec<u8>> {
        if Instant::now() >= self.deadline {
            println!("fuzz {}: {} inputs", self.target, self.runs);
            return None;
        }
        self.runs += 1;
        if self.runs <= self.corpus.len() {
            return Some(self.corpus[self.runs - 1].clone());
        }
        let mut data = self.corpus[self.rng.below(self.corpus.len())].clone();
        for _ in 0..1 + self.rng.below(4) {
            mutate_bytes(&mut self.rng, &mut data, &self.corpus, dictionary);
        }
        Some(data)
    }

    /// The next JSON input: a seed mutated as a tree, or as text that still parses.
    fn next_json(&mut self, keys: &[&str]) -> Option<Json> {
        loop {
            let bytes = self.next_bytes(keys)?;
            let seed: Json = match serde_json::from_slice(&bytes) {
                Ok(v) => v,
                Err(_) => continue,
            };
            if self.runs <= self.corpus.len() {
                return Some(seed);
            }
            let mut v = seed;
            for _ in 0..1 + self.rng.below(3) {
                mutate_json(&mut self.rng, &mut v, keys, 0);
            }
            return Some(v);
        }
    }
}

const TOKENS: &[&str] = &[
    "(",
    ")",
    "'",
    "\"",
    "\\",
    ",",
    ";",
    "NULL",
    "-",
    "--",
    "/*",
    "*/",
    "$1",
    "[",
    "]",
    "{",
    "}",
    ":",
    "::",
    "\0",
    "\u{fffd}",
    "é",
    "🦀",
    "9223372036854775808",
    "-9223372036854775809",
    "1e309",
    "NaN",
    "-0",
    "''",
    "\n",
    "\r\n",
    "\t",
    " ",
    "*",
];

fn mutate_bytes(rng: &mut Rng, data: &mut Vec<u8>, corpus: &[Vec<u8>], dictionary: &[&str]) {
    let len = data.len();
    let at = rng.below(len + 1);
    match rng.below(8) {
        0 if len > 0 => data[at.min(len - 1)] ^= 1 << rng.below(8),
        1 if len > 0 => data[at.min(len - 1)] = rng.next() as u8,
        2 => {
            let token = if rng.chance(2) { TOKENS[rng.below(TOKENS.len())] } else { dictionary[rng.below(dictionary.len())] };
            data.splice(at..at, token.bytes());
        }
        3 if len > 0 => {
            let end = (at + 1 + rng.below(16)).min(len);
            data.drain(at.min(end)..end);
        }
        4 if len > 0 => {
            // Repeat a span: nesting and long lists grow this way.
            let end = (at + 1 + rng.below(24)).min(len);
            let span = data[at.min(end)..end].to_vec();
            let most = if rng.chance(8) { 2_000 } else { 8 };
            let times = 1 + rng.below(most);
            let repeated: Vec<u8> = span.iter().copied().cycle().take(span.len() * times).collect();
            data.splice(end..end, repeated);
        }
        5 => {
            let other = &corpus[rng.below(corpus.len())];
            let from = rng.below(other.len() + 1);
            let to = (from + rng.below(64)).min(other.len());
            data.splice(at..at, other[from..to].iter().copied());
        }
        6 if len > 0 => data.truncate(at),
        _ => data.insert(at, b"0123456789abcxyz-+.e"[rng.below(20)]),
    }
}

fn random_json(rng: &mut Rng, keys: &[&str], depth: usize) -> Json {
    match rng.below(if depth > 6 { 7 } else { 10 }) {
        0 => Json::Null,
        1 => json!(rng.chance(2)),
        2 => json!([0i64, -1, 1, i64::MAX, i64::MIN, 255, 256, 65_536][rng.below(8)]),
        3 => json!([0.5f64, -0.0, 1e308, -1e-308, 3.25][rng.below(5)]),
        4 => json!(keys[rng.below(keys.len())]),
        5 => json!(TOKENS[rng.below(TOKENS.len())]),
        6 => json!("x".repeat(rng.below(4) * 300)),
        7 => Json::Array((0..rng.below(4)).map(|_| random_json(rng, keys, depth + 1)).collect()),
        8 => {
            let mut m = serde_json::Map::new();
            for _ in 0..1 + rng.below(3) {
                m.insert(keys[rng.below(keys.len())].to_string(), random_json(rng, keys, depth + 1));
            }
            Json::Object(m)
        }
        _ => {
            // Deep nesting.
            let mut v = json!(1);
            for _ in 0..rng.below(200) {
                v = if rng.chance(2) { json!([v]) } else { json!({keys[rng.below(keys.len())]: v}) };
            }
            v
        }
    }
}

fn mutate_json(rng: &mut Rng, v: &mut Json, keys: &[&str], depth: usize) {
    let descend = rng.below(3) != 0 && depth < 32;
    match v {
        Json::Object(m) if descend && !m.is_empty() => {
            let k = m.keys().nth(rng.below(m.len())).unwrap().clone();
            match rng.below(5) {
                0 => {
                    m.remove(&k);
                }
                1 => {
                    m.insert(keys[rng.below(keys.len())].to_string(), random_json(rng, keys, depth));
                }
                _ => mutate_json(rng, m.get_mut(&k).unwrap(), keys, depth + 1),
            }
        }
        Json::Array(a) if descend && !a.is_empty() => {
            let i = rng.below(a.len());
            match rng.below(4) {
                0 => {
                    a.remove(i);
                }
                1 => a.push(a[i].clone()),
                _ => mutate_json(rng, &mut a[i], keys, depth + 1),
            }
        }
        _ => *v = random_json(rng, keys, depth),
    }
}

fn printable(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    if text.len() > 600 {
        format!("{}… ({} bytes)", &text[..text.floor_char_boundary(600)], bytes.len())
    } else {
        text.into_owned()
    }
}

/// Run `work` for one input in a task of its own: a panic is reported with the
/// input, a hang past `limit` too; an Internal error is a defect as well.
async fn one<F>(target: &str, input: &str, limit: Duration, work: F)
where
    F: std::future::Future<Output = heavenbase::Result<()>> + Send + 'static,
{
    match tokio::time::timeout(limit, tokio::spawn(work)).await {
        Err(_) => panic!("fuzz {target}: no answer within {limit:?} for input:\n{input}"),
        Ok(Err(join)) => panic!("fuzz {target}: panicked ({join}) on input:\n{input}"),
        Ok(Ok(Err(e))) if e.kind() == ErrorKind::Internal => panic!("fuzz {target}: internal error {e} on input:\n{input}"),
        Ok(Ok(_)) => {}
    }
}

const QUERY_KEYS: &[&str] = &[
    "filter",
    "select",
    "order",
    "limit",
    "offset",
    "group_by",
    "aggregate",
    "having",
    "count",
    "near",
    "search",
    "hybrid",
    "and",
    "or",
    "not",
    "$eq",
    "$ne",
    "$gt",
    "$lt",
    "$gte",
    "$lte",
    "$in",
    "$nin",
    "$like",
    "$contains",
    "$match",
    "$exists",
    "$null",
    "field",
    "op",
    "value",
    "vector",
    "top_k",
    "fields",
    "query",
    "metric",
    "sum",
    "avg",
    "min",
    "max",
    "count_distinct",
    "name",
    "title",
    "price",
    "qty",
    "active",
    "tags",
    "meta",
    "created",
    "day",
    "object_id",
    "-price",
];

/// JSON queries (`ws.query_json`) against the query suite's workspace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzz_json_queries() {
    let h = TestHome::new();
    let ws = load(&h, "sqlite").await;
    let mut fuzz = Fuzz::new("json_query");
    while let Some(spec) = fuzz.next_json(QUERY_KEYS) {
        let entity = if fuzz.rng.chance(5) { "review" } else { "product" };
        let input = format!("{entity}: {}", printable(spec.to_string().as_bytes()));
        let ws = ws.clone();
        one("json_query", &input, Duration::from_secs(20), async move {
            let query = ws.query_json(entity, &spec)?;
            query.rows().await.map(|_| ())
        })
        .await;
    }
    assert_eq!(ws.count("product").await.unwrap(), 4);
}

const DEFINITION_KEYS: &[&str] = &[
    "entity_id",
    "fields",
    "name",
    "type",
    "required",
    "unique",
    "index",
    "store",
    "search",
    "default",
    "desc",
    "dim",
    "max_chars",
    "values",
    "items",
    "primary_key",
    "placement",
    "metric",
    "ShortText",
    "LongText",
    "Integer",
    "Float",
    "Boolean",
    "Timestamp",
    "Date",
    "Json",
    "Vector",
    "Array",
    "Categorical",
    "Identifier",
    "main",
    "vec",
    "nope",
];

/// JSON entity definitions: parsed, registered, written to and read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzz_entity_definitions() {
    let h = TestHome::new();
    let ws = h.open("fuzzdef", Construction::preset("debug")).await;
    let mut fuzz = Fuzz::new("entity_definition");
    while let Some(v) = fuzz.next_json(DEFINITION_KEYS) {
        let input = printable(v.to_string().as_bytes());
        let ws = ws.clone();
        one("entity_definition", &input, Duration::from_secs(20), async move {
            let def = EntityDef::from_json(&v)?;
            let entity = def.entity_id.clone();
            ws.register(def, true).await?;
            let _ = ws.upsert(&entity, json!({"name": "probe"})).await;
            ws.sql(&format!("SELECT * FROM \"{}\"", entity.replace('"', "\"\""))).await.map(|_| ())
        })
        .await;
    }
    // The workspace still works.
    assert!(ws.audit().await.unwrap().ok());
}

const SQL_WORDS: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "GROUP BY",
    "ORDER BY",
    "LIMIT",
    "UNION ALL",
    "JOIN",
    "ON",
    "AND",
    "OR",
    "NOT",
    "IN",
    "CASE",
    "WHEN",
    "THEN",
    "END",
    "EXISTS",
    "INSERT INTO",
    "VALUES",
    "UPDATE",
    "SET",
    "DELETE",
    "RETURNING",
    "product",
    "review",
    "name",
    "price",
    "qty",
    "tags",
    "meta",
    "object_id",
    "count(*)",
    "sum(",
    "near(",
    "search(",
    "CAST(",
    "::text",
    "'2024-01-01'::date",
    "ARRAY[",
    "WITH",
    "AS",
    "DISTINCT",
    "OVER (",
    "NULL",
    "true",
    "1/0",
];

/// SQL text into `ws.sql`: reads and writes on the query suite's workspace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzz_sql_text() {
    let h = TestHome::new();
    let ws = load(&h, "sqlite").await;
    let mut fuzz = Fuzz::new("sql");
    while let Some(bytes) = fuzz.next_bytes(SQL_WORDS) {
        let sql = String::from_utf8_lossy(&bytes).into_owned();
        let input = printable(sql.as_bytes());
        // An input that aborts the process (a stack overflow) cannot be
        // reported after the fact: HEAVENBASE_FUZZ_TRACE prints each first,
        // as a JSON string (one line, exact), for replaying a run.
        if std::env::var_os("HEAVENBASE_FUZZ_TRACE").is_some() {
            eprintln!("fuzz sql input: {}", serde_json::Value::String(sql.clone()));
        }
        let ws = ws.clone();
        one("sql", &input, Duration::from_secs(30), async move { ws.sql(&sql).await.map(|_| ()) }).await;
    }
    assert!(ws.audit().await.unwrap().ok());
}

/// COPY … FROM STDIN (CSV and text) over the wire: each COPY is answered, and
/// writes all of its rows or none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzz_copy_input() {
    use futures::SinkExt;
    let h = TestHome::new();
    let ws = load(&h, "sqlite").await;
    let port = start(ws.clone()).await;
    let client = connect(port, "sqlite").await;
    let mut fuzz = Fuzz::new("copy");
    while let Some(bytes) = fuzz.next_bytes(&[",", "\t", "\\N", "\"", "\\.", "\n", "true", "{a,b}", "2024-01-01"]) {
        let csv = fuzz.rng.chance(2);
        let statement = if csv {
            "COPY product (name, title, price, qty, active, tags) FROM STDIN (FORMAT csv)"
        } else {
            "COPY product (name, title, price, qty, active, tags) FROM STDIN"
        };
        let before: i64 = client.query_one("SELECT count(*) FROM product", &[]).await.unwrap().get(0);
        let input = format!("{statement}\n{}", printable(&bytes));
        let outcome = tokio::time::timeout(Duration::from_secs(20), async {
            let sink = client.copy_in::<_, std::io::Cursor<Vec<u8>>>(statement).await?;
            futures::pin_mut!(sink);
            sink.send(std::io::Cursor::new(bytes.clone())).await?;
            sink.finish().await
        })
        .await
        .unwrap_or_else(|_| panic!("fuzz copy: no answer within 20 s for input:\n{input}"));
        let after: i64 = client.query_one("SELECT count(*) FROM product", &[]).await.unwrap().get(0);
        match outcome {
            Ok(n) => assert!(after >= before && after - before <= n as i64, "COPY said {n}, rows {before} → {after}: {input}"),
            Err(e) => {
                let db = e.as_db_error().unwrap_or_else(|| panic!("the session broke ({e}) on input:\n{input}"));
                assert_ne!(db.code().code(), "XX000", "{db:?} on input:\n{input}");
                assert_eq!(after, before, "a refused COPY changed the rows ({db:?}): {input}");
            }
        }
    }
    assert!(ws.audit().await.unwrap().ok());
}

/// The extended protocol's messages, built well and then mutated, on fresh
/// connections: whatever arrives, the server answers or closes that
/// connection, and a bystander session keeps being served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzz_wire_messages() {
    let h = TestHome::new();
    let ws = load(&h, "sqlite").await;
    let port = start(ws.clone()).await;
    let bystander = connect(port, "sqlite").await;
    let mut fuzz = Fuzz::new("wire");
    let mut sent = 0;
    while let Some(bytes) =
        fuzz.next_bytes(&["P", "B", "E", "S", "Q", "D", "C", "H", "\0\0\0\x04", "\0\0\0\0", "\x7f\x7f\x7f\x7f"])
    {
        // Each seed file holds the messages after startup; a third of the
        // inputs also go before it, where only startup packets belong.
        let logged_in = !fuzz.rng.chance(3);
        crate::hostile::send_raw_waiting(port, logged_in, &bytes, Duration::from_millis(50)).await;
        sent += 1;
        if sent % 16 == 0 {
            let one: i64 = bystander.query_one("SELECT 1", &[]).await.expect("the bystander is served").get(0);
            assert_eq!(one, 1);
        }
    }
    // The inputs may write (COPY, INSERT): the rows are whatever they made,
    // and the workspace still answers and audits clean.
    let n: i64 = bystander.query_one("SELECT count(*) FROM product", &[]).await.expect("the bystander is served").get(0);
    assert!(n >= 4, "{n}");
    assert!(ws.audit().await.unwrap().ok());
}
