//! `soak`: 64 clients against `hb serve` (a process of its own, embedded
//! preset) for 10 minutes: point reads, range reads, writes, updates, COPY,
//! statements cancelled mid-stream and connections dropped mid-result, all
//! within a bounded key space (at most 20k inserted and 1,000 copied rows per
//! client beside the 100k loaded), so the table's size levels off. Each
//! minute: statements answered per second, unexpected errors (must be 0; a
//! cancelled statement's 57014 and a dropped connection are what the script
//! provokes) and the server's resident memory. The baselines are the run's
//! own: the last minute's rate against the first's, and the RSS after the
//! first minute (warm-up) against the last.
//!
//! `cargo run --release -p heavenbase-benchmarks -- soak [minutes] [clients]`
//! (needs `hb` beside the benchmark binary: `cargo build --release -p heavenbase-cli`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt, pin_mut};

use crate::hb::Hb;
use crate::rss_mib;
use crate::wire::connect;

const ROWS: usize = 100_000;
/// Keys the inserts draw from, above the loaded rows.
const INSERT_BAND: u64 = 20_000;
/// Each client's COPY slots (of 100 rows each) start here, clear of both.
const COPY_BASE: u64 = 1_000_000;
const COPY_SLOTS: u64 = 10;

#[derive(Default)]
struct Counters {
    answered: AtomicU64,
    cancelled: AtomicU64,
    dropped: AtomicU64,
    unexpected: AtomicU64,
}

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

pub async fn run(minutes: u64, clients: usize) {
    let Some(hb) = Hb::find("soak") else { return };
    hb.run(&["ws", "create", "soak", "--preset", "embedded"]);
    let (server, setup) = hb.serve("soak", &["--max-connections", "500"]).await;
    let conninfo = server.conninfo.clone();
    setup
        .batch_execute("CREATE TABLE item (id bigint PRIMARY KEY, title text, qty integer, price double precision)")
        .await
        .unwrap();
    crate::wire::copy_lines(&setup, "COPY item FROM STDIN", ROWS, |i| {
        format!("{i}\tTitle {i}\t{}\t{}\n", i % 97, i as f64 * 0.5)
    })
    .await;
    println!("soak: {clients} clients for {minutes} min against hb serve (embedded preset, {ROWS} rows to start)");

    let counters = Arc::new(Counters::default());
    let deadline = Instant::now() + Duration::from_secs(minutes * 60);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (counters, conninfo) = (counters.clone(), conninfo.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (c as u64 + 1));
            let mut client = connect(&conninfo).await;
            while Instant::now() < deadline {
                match client_step(&mut rng, &client, &conninfo, c as u64).await {
                    Step::Answered => counters.answered.fetch_add(1, Ordering::Relaxed),
                    Step::Cancelled => counters.cancelled.fetch_add(1, Ordering::Relaxed),
                    Step::Dropped => counters.dropped.fetch_add(1, Ordering::Relaxed),
                    Step::Unexpected(e) => {
                        if counters.unexpected.fetch_add(1, Ordering::Relaxed) < 5 {
                            println!("  unexpected error (client {c}): {e}");
                        }
                        if client.is_closed() {
                            client = connect(&conninfo).await;
                        }
                        0
                    }
                };
            }
        }));
    }

    let mut last = 0;
    let mut rates = Vec::new();
    let mut rss = Vec::new();
    println!("  minute | statements/s | cancelled | dropped | unexpected errors | server RSS (MiB) | rows");
    for minute in 1..=minutes {
        tokio::time::sleep_until((deadline - Duration::from_secs((minutes - minute) * 60)).into()).await;
        let answered = counters.answered.load(Ordering::Relaxed);
        let rate = (answered - last) as f64 / 60.0;
        last = answered;
        let mib = rss_mib(server.pid());
        let rows = setup.query_one("SELECT count(*) FROM item", &[]).await.map_or(-1, |r| r.get::<_, i64>(0));
        rates.push(rate);
        rss.push(mib);
        println!(
            "  {minute:>6} | {rate:>12.0} | {:>9} | {:>7} | {:>17} | {mib:>16.0} | {rows}",
            counters.cancelled.load(Ordering::Relaxed),
            counters.dropped.load(Ordering::Relaxed),
            counters.unexpected.load(Ordering::Relaxed)
        );
    }
    for t in tasks {
        t.await.unwrap();
    }
    let alive = setup.query_one("SELECT count(*) FROM item", &[]).await.map(|r| r.get::<_, i64>(0));
    let unexpected = counters.unexpected.load(Ordering::Relaxed);
    println!("  rate, last minute / first        : {:.2}", rates.last().unwrap() / rates[0]);
    if rss.len() > 1 {
        println!(
            "  RSS, last minute / after warm-up : {:.2} ({:.0} → {:.0} MiB)",
            rss.last().unwrap() / rss[0],
            rss[0],
            rss.last().unwrap()
        );
    }
    println!("  unexpected errors                : {unexpected} (goal 0)");
    println!(
        "  server answering afterwards      : {}",
        alive.map(|n| format!("yes, {n} rows")).unwrap_or_else(|e| format!("NO: {e}"))
    );
}

enum Step {
    Answered,
    Cancelled,
    Dropped,
    Unexpected(String),
}

fn outcome<T>(r: Result<T, tokio_postgres::Error>) -> Step {
    match r {
        Ok(_) => Step::Answered,
        Err(e) => Step::Unexpected(e.to_string()),
    }
}

async fn client_step(rng: &mut Rng, client: &tokio_postgres::Client, conninfo: &str, slot: u64) -> Step {
    let roll = rng.below(100);
    let id = rng.below(ROWS as u64) as i64;
    match roll {
        // Point reads by key.
        0..=49 => outcome(client.query_opt("SELECT title, qty FROM item WHERE id = $1", &[&id]).await),
        // Range reads.
        50..=61 => outcome(client.query("SELECT id, price FROM item WHERE qty = $1 ORDER BY id LIMIT 50", &[&(id % 97)]).await),
        // New rows, into a bounded band of keys: an upsert once the band is full,
        // so the table stops growing after the first minutes and memory that
        // keeps rising is a leak, not data.
        62..=75 => {
            let key = (ROWS as u64 + rng.below(INSERT_BAND)) as i64;
            outcome(
                client
                    .execute(
                        "INSERT INTO item (id, title, qty, price) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (id) DO UPDATE SET title = EXCLUDED.title, qty = item.qty + 1",
                        &[&key, &format!("New {key}"), &1i64, &1.5f64],
                    )
                    .await,
            )
        }
        // Updates of existing rows.
        76..=85 => outcome(client.execute("UPDATE item SET qty = qty + 1 WHERE id = $1", &[&id]).await),
        // COPY of 100 rows into one of the client's own ten slots, after deleting
        // what an earlier COPY left there: deletes and COPY, the table bounded.
        86..=89 => {
            let start = COPY_BASE + slot * COPY_SLOTS * 100 + rng.below(COPY_SLOTS) * 100;
            let lines: String = (start..start + 100).map(|i| format!("{i}\tCopied {i}\t{}\t2.5\n", i % 97)).collect();
            let copied = async {
                client.execute("DELETE FROM item WHERE id >= $1 AND id < $2", &[&(start as i64), &(start as i64 + 100)]).await?;
                let sink = client.copy_in::<_, bytes::Bytes>("COPY item FROM STDIN").await?;
                pin_mut!(sink);
                sink.send(bytes::Bytes::from(lines)).await?;
                sink.finish().await
            };
            outcome(copied.await)
        }
        // A whole-table read cancelled while its rows stream.
        90..=94 => {
            let token = client.cancel_token();
            let cancel = async {
                tokio::time::sleep(Duration::from_millis(2 + rng.below(20))).await;
                let _ = token.cancel_query(tokio_postgres::NoTls).await;
            };
            let (read, ()) = tokio::join!(client.query("SELECT * FROM item", &[]), cancel);
            match read {
                Ok(_) => Step::Answered,
                Err(e) if e.code().is_some_and(|c| c.code() == "57014") => Step::Cancelled,
                Err(e) => Step::Unexpected(e.to_string()),
            }
        }
        // A connection dropped after reading a few rows of a large result.
        _ => {
            let (other, conn) = match tokio_postgres::connect(conninfo, tokio_postgres::NoTls).await {
                Ok(pair) => pair,
                Err(e) => return Step::Unexpected(e.to_string()),
            };
            let driver = tokio::spawn(conn);
            let stream = other.query_raw("SELECT * FROM item", std::iter::empty::<i64>()).await;
            match stream {
                Ok(stream) => {
                    pin_mut!(stream);
                    for _ in 0..10 {
                        if stream.next().await.is_none() {
                            break;
                        }
                    }
                }
                Err(e) => return Step::Unexpected(e.to_string()),
            }
            driver.abort();
            Step::Dropped
        }
    }
}
