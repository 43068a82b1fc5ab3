//! `memory`: a statement far larger than its memory limit, and a client that
//! stops reading, against `hb serve` as a process of its own (embedded
//! preset, `--max-query-memory 512MB`), with the server's resident memory
//! sampled every 50 ms from /proc.
//!
//! 1. A client sends `SELECT` of about 2 GiB and then reads nothing for 10 s:
//!    the server may hold only what the socket and one batch hold, so its RSS
//!    must not grow by more than the margin below, and another session must
//!    be answered meanwhile.
//! 2. A sort of about 4 GiB (`row_number() OVER (ORDER BY k)` over rows of a
//!    key and a 100-byte text; the outer aggregate reads every row back, so
//!    the sort carries the text) must spill and answer, or fail with 53200;
//!    either way the server's peak RSS must stay under its idle RSS plus the
//!    limit plus a fixed margin (128 MiB: DataFusion counts the batches it
//!    holds, not the allocator's slack, the merge's read buffers or the
//!    generator's batch in flight). The baseline is Postgres sorting the same
//!    rows with `work_mem = 512MB` in the same run (`HEAVENBASE_TEST_PG`;
//!    skipped when it does not answer). The spill folder's size is sampled
//!    too: a statement that answers under its limit must have spilled.
//! 3. The same rows grouped into half as many groups (each keeping its
//!    longest text): a hash aggregate over its limit, held to the same bound.
//!
//! `cargo run --release -p heavenbase-benchmarks -- memory [GiB]` (needs `hb`
//! beside the benchmark binary: `cargo build --release -p heavenbase-cli`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use heavenbase_tests::frontend;
use tokio::io::AsyncWriteExt;

use crate::hb::Hb;
use crate::rss_mib;
use crate::wire::{connect, pg_conninfo};

const LIMIT_MIB: u64 = 512;
const MARGIN_MIB: f64 = 128.0;
/// Bytes of text each sorted row carries.
const WIDTH: usize = 100;
/// What a sorted row holds in Arrow: an Int64 key, the text and its offset.
const ROW_BYTES: usize = 8 + WIDTH + 8 + 4;

/// Bytes of the files under `dir`.
fn folder_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => folder_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Samples `pid`'s RSS and the bytes in `spill` every 50 ms until stopped.
struct Peaks {
    stop: Arc<AtomicBool>,
    rss_kib: Arc<AtomicU64>,
    spill_bytes: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Peaks {
    /// `home`: the server's home, under which the workspace's spill folder appears on first use.
    fn start(pid: u32, home: std::path::PathBuf) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (rss_kib, spill_bytes) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let (s, r, b) = (stop.clone(), rss_kib.clone(), spill_bytes.clone());
        let task = tokio::spawn(async move {
            while !s.load(Ordering::Relaxed) {
                r.fetch_max((rss_mib(pid) * 1024.0) as u64, Ordering::Relaxed);
                b.fetch_max(spill_folder(&home).map_or(0, |spill| folder_bytes(&spill)), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        Peaks { stop, rss_kib, spill_bytes, task }
    }

    /// Peak RSS in MiB and peak spilled bytes in MiB.
    async fn finish(self) -> (f64, f64) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap();
        (self.rss_kib.load(Ordering::Relaxed) as f64 / 1024.0, self.spill_bytes.load(Ordering::Relaxed) as f64 / 1048576.0)
    }
}

/// The workspace's spill folder (`…/mem/spill` under the home), once made.
fn spill_folder(home: &std::path::Path) -> Option<std::path::PathBuf> {
    fn find(dir: &std::path::Path) -> Option<std::path::PathBuf> {
        for e in std::fs::read_dir(dir).ok()?.flatten() {
            let path = e.path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n == "spill") {
                    return Some(path);
                }
                if let Some(found) = find(&path) {
                    return Some(found);
                }
            }
        }
        None
    }
    find(home)
}

/// The rows both statements read, as each side spells the generator:
/// `rows` rows of a key `k` (`value * 7919 % modulus`) and a `WIDTH`-byte text `p`.
fn generated(rows: u64, modulus: u64, postgres: bool) -> String {
    let (from, value) = if postgres {
        (format!("generate_series(1, {rows}) AS g(value)"), "value::bigint")
    } else {
        (format!("generate_series(1, {rows})"), "value")
    };
    let pad = WIDTH - 12;
    format!("SELECT ({value} * 7919) % {modulus} AS k, repeat('x', {pad}) || lpad(CAST(value AS text), 12, '0') AS p FROM {from}")
}

/// The sort: every row numbered in key order; the outer aggregate reads the
/// text back, so the sort carries it.
fn sort_sql(rows: u64, postgres: bool) -> String {
    let rows_sql = generated(rows, rows, postgres);
    format!("SELECT count(*), max(r), sum(length(p)) FROM (SELECT row_number() OVER (ORDER BY k) AS r, p FROM ({rows_sql}) s) t")
}

/// The grouping: `rows` rows into `rows / 2` groups of two, each group's
/// longest text kept, so the aggregate's state carries the text.
fn group_sql(rows: u64, postgres: bool) -> String {
    let rows_sql = generated(rows, rows / 2, postgres);
    format!(
        "SELECT count(*), sum(c), max(length(m)) FROM (SELECT k, count(*) AS c, max(p) AS m FROM ({rows_sql}) s GROUP BY k) t"
    )
}

/// The first row of a simple query's answer, its cells joined by `, `.
fn first_row(messages: &[tokio_postgres::SimpleQueryMessage]) -> Vec<String> {
    messages
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).unwrap_or("NULL").to_string()).collect::<Vec<_>>().join(", "))
            }
            _ => None,
        })
        .collect()
}

pub async fn run(gib: f64) {
    let Some(hb) = Hb::find("memory") else { return };
    hb.run(&["ws", "create", "mem", "--preset", "embedded"]);
    let (server, client) = hb.serve("mem", &["--max-query-memory", &format!("{LIMIT_MIB}MB")]).await;
    let rows = (gib * (1u64 << 30) as f64 / ROW_BYTES as f64) as u64;
    let pid = server.pid();
    // A statement that neither answers nor fails says so (57014) instead of holding the run.
    client.batch_execute("SET statement_timeout = '10min'").await.unwrap();
    let idle = rss_mib(pid);
    let bound = idle + LIMIT_MIB as f64 + MARGIN_MIB;
    println!(
        "memory: hb serve --max-query-memory {LIMIT_MIB}MB (embedded), idle RSS {idle:.0} MiB; \
         bound = idle + limit + {MARGIN_MIB:.0} MiB = {bound:.0} MiB"
    );

    // 1. A client that stops reading a ~2 GiB result.
    let big = (2.0 * (1u64 << 30) as f64 / ROW_BYTES as f64) as u64;
    let before = rss_mib(pid);
    let watch = Peaks::start(pid, hb.home().to_path_buf());
    let mut stalled = tokio::net::TcpStream::connect(("127.0.0.1", server.port)).await.unwrap();
    stalled.write_all(&frontend::startup("postgres", "mem")).await.unwrap();
    let select = format!("SELECT value, repeat('x', {}) FROM generate_series(1, {big})", WIDTH);
    stalled.write_all(&frontend::query(&select)).await.unwrap();
    let other = connect(&server.conninfo).await;
    let t = Instant::now();
    let mut answered = 0;
    while t.elapsed() < Duration::from_secs(10) {
        let n: i64 = other.query_one("SELECT count(*) FROM generate_series(1, 1000)", &[]).await.unwrap().get(0);
        assert_eq!(n, 1000);
        answered += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (peak, _) = watch.finish().await;
    println!(
        "  a client stalled for 10 s on a {:.1} GiB result: server RSS {before:.0} → peak {peak:.0} MiB (+{:.0} MiB, {}); \
         another session answered {answered} statements meanwhile",
        (big * ROW_BYTES as u64) as f64 / (1u64 << 30) as f64,
        peak - before,
        if peak - before <= MARGIN_MIB { "within the margin" } else { "OVER THE MARGIN" }
    );
    drop(stalled);
    // The server drops the result with the socket.
    tokio::time::sleep(Duration::from_millis(500)).await;
    other.simple_query("SELECT 1").await.expect("the server answers after the stalled client left");
    // 2. Statements far over the limit (after the stall: freed memory stays
    // with the allocator, so the stall is measured on a server that has not
    // sorted yet). Two shapes: a sort, and a grouping into half as many
    // groups as rows (an aggregate that must spill too).
    let pg = match tokio::time::timeout(Duration::from_secs(5), tokio_postgres::connect(&pg_conninfo(), tokio_postgres::NoTls))
        .await
    {
        Ok(Ok((pg, conn))) => {
            tokio::spawn(conn);
            pg.batch_execute(&format!("SET work_mem = '{LIMIT_MIB}MB'; SET max_parallel_workers_per_gather = 0")).await.unwrap();
            Some(pg)
        }
        _ => {
            println!("  Postgres baselines skipped: {} does not answer", pg_conninfo());
            None
        }
    };
    let groups = rows / 2;
    let shapes = [
        ("sort", sort_sql(rows, false), sort_sql(rows, true), format!("{rows}, {rows}, {}", rows * WIDTH as u64)),
        ("grouping", group_sql(rows, false), group_sql(rows, true), format!("{groups}, {rows}, {WIDTH}")),
    ];
    for (shape, ours, theirs, expected) in shapes {
        let before = rss_mib(pid);
        let watch = Peaks::start(pid, hb.home().to_path_buf());
        let t = Instant::now();
        let answer = client.simple_query(&ours).await;
        let took = t.elapsed().as_secs_f64();
        let (peak, spilled) = watch.finish().await;
        let outcome = match &answer {
            Ok(messages) => {
                assert_eq!(first_row(messages), vec![expected.clone()], "the {shape}'s answer");
                assert!(spilled > 0.0, "a {shape} larger than its limit that answered must have spilled");
                format!("answered ({expected})")
            }
            Err(e) => {
                let code = e.as_db_error().map(|d| d.code().code().to_string()).unwrap_or_default();
                assert_eq!(code, "53200", "a {shape} over its limit spills or fails with 53200: {e}");
                format!("failed with 53200 ({})", e.as_db_error().map(|d| d.message()).unwrap_or_default())
            }
        };
        println!(
            "  {shape} of {rows} rows (~{:.1} GiB in Arrow): {outcome} in {took:.1} s, {spilled:.0} MiB spilled at most at \
             once; RSS {before:.0} MiB before, peak {peak:.0} MiB = idle + {:.0} MiB ({:.2} of the limit), {}",
            (rows * ROW_BYTES as u64) as f64 / (1u64 << 30) as f64,
            peak - idle,
            (peak - idle) / LIMIT_MIB as f64,
            if peak <= bound { "within the bound" } else { "OVER THE BOUND" }
        );
        // The session goes on after it.
        client.simple_query("SELECT 1").await.expect("the session answers after the statement");
        if let Some(pg) = &pg {
            let t = Instant::now();
            let theirs = pg.simple_query(&theirs).await.unwrap();
            let pg_took = t.elapsed().as_secs_f64();
            assert_eq!(first_row(&theirs), vec![expected], "Postgres' {shape}");
            let ratio = if answer.is_ok() { format!("; ours {:.2}× its time", took / pg_took) } else { String::new() };
            println!("    Postgres (work_mem {LIMIT_MIB}MB, no parallel workers), the same {shape}: {pg_took:.1} s{ratio}");
        }
    }

    drop(server);
}
