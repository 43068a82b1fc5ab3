//! `search`: full-text search over 100k documents of about 60 words each
//! (words drawn from a 30k-word vocabulary with Zipf's law, s = 1.07: the skew
//! of real text), beside SQLite FTS5's `bm25()` over the same documents in the
//! same run:
//! - index build: FTS5 inserting the documents into a table on a file, vs the
//!   `inmem` search backend (documents and index in memory) and the `embedded`
//!   engine (documents in a SQLite file, index in memory) taking the same
//!   documents as one group write; and the embedded engine's index rebuilt
//!   from its file (what a reopened workspace does);
//! - queries/s for top-10, per query shape (one rare word, one common word,
//!   three words OR'ed, two words AND'ed, a two-word phrase), the same queries
//!   in each engine's syntax;
//! - overlap of each engine's top-10 with FTS5's (FTS5 scores with its own
//!   BM25 variant: idf without Lucene's +1, so rankings may differ).

use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::{RecordBatch, StringArray};
use heavenbase::catalog::LogicalType as T;
use heavenbase::providers::text::{TextQuery, TextRequest};
use heavenbase::providers::{Backend, BackendContext, BackendRegistry, ColumnSpec, GroupSpec};

const DOCS: usize = 100_000;
const VOCAB: usize = 30_000;

/// splitmix64: deterministic text without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Pronounceable words: consonant-vowel syllables, distinct by construction.
fn vocabulary() -> Vec<String> {
    const C: &[u8] = b"bcdfghjklmnprstvz";
    const V: &[u8] = b"aeiou";
    (0..VOCAB)
        .map(|mut i| {
            let mut w = String::new();
            loop {
                w.push(C[i % C.len()] as char);
                i /= C.len();
                w.push(V[i % V.len()] as char);
                i /= V.len();
                if i == 0 {
                    break;
                }
            }
            w
        })
        .collect()
}

struct Corpus {
    vocab: Vec<String>,
    docs: Vec<String>,
}

fn corpus() -> Corpus {
    let vocab = vocabulary();
    // Zipf CDF over ranks.
    let weights: Vec<f64> = (1..=VOCAB).map(|r| 1.0 / (r as f64).powf(1.07)).collect();
    let total: f64 = weights.iter().sum();
    let mut cdf = Vec::with_capacity(VOCAB);
    let mut acc = 0.0;
    for w in &weights {
        acc += w / total;
        cdf.push(acc);
    }
    let mut rng = Rng(7);
    let docs = (0..DOCS)
        .map(|_| {
            let len = 40 + (rng.next() % 41) as usize;
            (0..len)
                .map(|_| {
                    let u = rng.unit();
                    vocab[cdf.partition_point(|c| *c < u).min(VOCAB - 1)].as_str()
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    Corpus { vocab, docs }
}

/// One query in our syntax and in FTS5's.
struct Q {
    shape: &'static str,
    ours: String,
    fts5: String,
}

fn queries(c: &Corpus) -> Vec<Q> {
    let mut rng = Rng(11);
    let mut out = Vec::new();
    let word = |rng: &mut Rng, lo: usize, hi: usize| c.vocab[lo + (rng.next() as usize) % (hi - lo)].clone();
    for _ in 0..40 {
        let w = word(&mut rng, 1_000, 10_000);
        out.push(Q { shape: "rare word", ours: w.clone(), fts5: w });
        let w = word(&mut rng, 0, 20);
        out.push(Q { shape: "common word", ours: w.clone(), fts5: w });
        let (a, b, d) = (word(&mut rng, 20, 2_000), word(&mut rng, 20, 2_000), word(&mut rng, 20, 2_000));
        out.push(Q { shape: "3 words OR", ours: format!("{a} {b} {d}"), fts5: format!("{a} OR {b} OR {d}") });
        let (a, b) = (word(&mut rng, 0, 200), word(&mut rng, 0, 200));
        out.push(Q { shape: "2 words AND", ours: format!("+{a} +{b}"), fts5: format!("{a} AND {b}") });
        // Two adjacent words of a document: the phrase occurs at least once.
        let doc: Vec<&str> = c.docs[(rng.next() as usize) % DOCS].split(' ').collect();
        let at = (rng.next() as usize) % (doc.len() - 1);
        let phrase = format!("\"{} {}\"", doc[at], doc[at + 1]);
        out.push(Q { shape: "phrase", ours: phrase.clone(), fts5: phrase });
    }
    out
}

fn ids() -> Vec<String> {
    (0..DOCS).map(|i| format!("{i:08}")).collect()
}

fn batch(c: &Corpus, group: &GroupSpec) -> RecordBatch {
    RecordBatch::try_new(group.schema(), vec![Arc::new(StringArray::from(ids())), Arc::new(StringArray::from(c.docs.clone()))])
        .unwrap()
}

fn group() -> GroupSpec {
    let body = ColumnSpec { search: true, ..ColumnSpec::new("body", T::long_text()) };
    GroupSpec::new("doc", "doc", vec![body], vec![])
}

/// Queries/s of `run` over the queries of one shape, best of 3 passes.
fn rate(qs: &[&Q], mut run: impl FnMut(&Q)) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        for q in qs {
            run(q);
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    qs.len() as f64 / best
}

pub async fn run() {
    let c = corpus();
    let words: usize = c.docs.iter().map(|d| d.split(' ').count()).sum();
    println!("search: {DOCS} documents, {:.1} words each on average, {VOCAB}-word Zipf vocabulary", words as f64 / DOCS as f64);
    let dir = tempfile::tempdir().unwrap();

    // FTS5 on a file, one transaction.
    let fts = rusqlite::Connection::open(dir.path().join("fts5.sqlite")).unwrap();
    fts.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; CREATE VIRTUAL TABLE doc USING fts5(body)").unwrap();
    let t = Instant::now();
    {
        let tx = fts.unchecked_transaction().unwrap();
        let mut ins = tx.prepare("INSERT INTO doc(rowid, body) VALUES (?1, ?2)").unwrap();
        for (i, d) in c.docs.iter().enumerate() {
            ins.execute(rusqlite::params![i as i64, d]).unwrap();
        }
        drop(ins);
        tx.commit().unwrap();
    }
    let fts_build = t.elapsed().as_secs_f64();

    // Our two engines, built from the registry as a workspace builds them.
    let registry = BackendRegistry::standard();
    let cx = BackendContext { ws_id: "bench".into(), ws_folder: dir.path().to_path_buf(), home: dir.path().to_path_buf() };
    let mut config = serde_json::Map::new();
    let inmem = registry.create("inmem", "search", &config, &cx).unwrap();
    config.insert("database".into(), serde_json::json!(format!("file://{}/embedded.sqlite", dir.path().display())));
    config.insert("search".into(), serde_json::json!(true));
    let embedded = registry.create("sqlite", "main", &config, &cx).unwrap();
    let g = group();
    let mut builds = Vec::new();
    for backend in [&inmem, &embedded] {
        backend.ensure_group(&g).await.unwrap();
        let b = batch(&c, &g);
        let t = Instant::now();
        backend.upsert(&g, b).await.unwrap();
        builds.push(t.elapsed().as_secs_f64());
    }
    // A reopened embedded workspace: the index rebuilt from the file.
    let reopened = registry.create("sqlite", "main", &config, &cx).unwrap();
    let t = Instant::now();
    reopened.ensure_group(&g).await.unwrap();
    let rebuild = t.elapsed().as_secs_f64();
    println!(
        "  build: FTS5 {:.2} s; inmem {:.2} s ({:.2}× FTS5's time); embedded {:.2} s ({:.2}×); embedded index rebuilt at reopen {:.2} s",
        fts_build,
        builds[0],
        builds[0] / fts_build,
        builds[1],
        builds[1] / fts_build,
        rebuild
    );

    let qs = queries(&c);
    let mut fts_query = fts.prepare("SELECT rowid FROM doc WHERE doc MATCH ?1 ORDER BY bm25(doc) LIMIT 10").unwrap();
    let mut fts_top = |q: &Q| -> Vec<String> {
        fts_query.query_map([&q.fts5], |r| r.get::<_, i64>(0)).unwrap().map(|r| format!("{:08}", r.unwrap())).collect()
    };
    let handle = tokio::runtime::Handle::current();
    let top = |backend: &Arc<dyn Backend>, q: &Q| -> Vec<String> {
        let request = TextRequest { columns: vec!["body".into()], query: TextQuery::parse(&q.ours).unwrap(), k: 10, ids: None };
        let hits = tokio::task::block_in_place(|| handle.block_on(backend.text_search(&g, &request))).unwrap();
        hits.into_iter().map(|h| h.0).collect()
    };
    let mut worst = f64::MAX;
    for shape in ["rare word", "common word", "3 words OR", "2 words AND", "phrase"] {
        let of_shape: Vec<&Q> = qs.iter().filter(|q| q.shape == shape).collect();
        let fts_rate = rate(&of_shape, |q| {
            fts_top(q);
        });
        let inmem_rate = rate(&of_shape, |q| {
            top(&inmem, q);
        });
        let embedded_rate = rate(&of_shape, |q| {
            top(&reopened, q);
        });
        let (mut overlap, mut n) = (0usize, 0usize);
        for q in &of_shape {
            let (a, b) = (fts_top(q), top(&inmem, q));
            overlap += b.iter().filter(|id| a.contains(id)).count();
            n += a.len().max(b.len());
            assert_eq!(b, top(&reopened, q), "inmem and embedded rank alike: [{}]", q.ours);
        }
        worst = worst.min(inmem_rate / fts_rate).min(embedded_rate / fts_rate);
        println!(
            "  {shape:>11}: FTS5 {fts_rate:>7.0} q/s; inmem {inmem_rate:>7.0} q/s ({:.2}×); embedded {embedded_rate:>7.0} q/s ({:.2}×); top-10 overlap with FTS5 {:.0}%",
            inmem_rate / fts_rate,
            embedded_rate / fts_rate,
            100.0 * overlap as f64 / n.max(1) as f64
        );
    }
    println!("  worst shape: {worst:.2}× FTS5's queries/s (goal ≥ 1×); build goal ≤ 2× FTS5's time");
}
