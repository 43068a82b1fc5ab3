//! flight: `SELECT * FROM item` (1M rows × 5 columns) fetched over Arrow Flight
//! SQL beside the same result over the Postgres wire, from this server and
//! from Postgres, in the same run. Goal: Flight ≥ 3× our own wire in rows/s.
//!
//! The Flight client is arrow-flight's `FlightSqlServiceClient` (what Rust
//! programs use); the wire clients are tokio-postgres, as in `wire-stream`.

use std::time::{Duration, Instant};

use arrow_flight::sql::client::FlightSqlServiceClient;
use futures::TryStreamExt;
use heavenbase::Workspace;

use crate::wire::{ROWS, setup, stream_all};

/// Serve Flight SQL for `ws` on a runtime of its own; returns the port.
fn serve_flight_on_own_runtime(ws: Workspace) -> u16 {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            let opts = heavenbase_flight::FlightOptions { host: "127.0.0.1".into(), port: 0, ..Default::default() };
            let listener = heavenbase_flight::bind_flight(&opts).await.unwrap();
            tx.send(listener.local_addr().unwrap().port()).unwrap();
            heavenbase_flight::serve_flight_on(listener, ws, &opts, std::future::pending()).unwrap().await.unwrap();
        });
    });
    rx.recv().unwrap()
}

async fn fetch_all(port: u16) -> (usize, Duration) {
    // As a Rust program fetching bulk results sets its channel up: windows
    // sized by measured bandwidth and delay, not h2's 64 KiB default.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .http2_adaptive_window(true)
        .connect()
        .await
        .unwrap();
    let mut client = FlightSqlServiceClient::new(channel);
    let t = Instant::now();
    let info = client.execute("SELECT * FROM item".into(), None).await.unwrap();
    let mut n = 0;
    for endpoint in info.endpoint {
        let ticket = endpoint.ticket.expect("a ticket");
        let mut batches = client.do_get(ticket).await.unwrap();
        while let Some(batch) = batches.try_next().await.unwrap() {
            n += batch.num_rows();
        }
    }
    (n, t.elapsed())
}

pub async fn run() {
    println!("flight: SELECT * FROM item, {ROWS} rows × 5 columns, Flight SQL vs the Postgres wire (ours and Postgres')");
    let s = setup(ROWS).await;
    let port = serve_flight_on_own_runtime(s.ws.clone());
    let (mut flight, mut wire, mut postgres, mut scan) = (Duration::MAX, Duration::MAX, Duration::MAX, Duration::MAX);
    for _ in 0..3 {
        // The ceiling of every door: the plan's batches in process, no encoding.
        let t = Instant::now();
        let plan = s.ws.plan_read("SELECT * FROM item").await.unwrap().unwrap();
        let mut batches = s.ws.session().execute_logical_plan(plan).await.unwrap().execute_stream().await.unwrap();
        let mut n = 0;
        while let Some(batch) = batches.try_next().await.unwrap() {
            n += batch.num_rows();
        }
        assert_eq!(n, ROWS);
        scan = scan.min(t.elapsed());
        let (n, d) = fetch_all(port).await;
        assert_eq!(n, ROWS);
        flight = flight.min(d);
        let (n, d) = stream_all(&s.wire).await;
        assert_eq!(n, ROWS);
        wire = wire.min(d);
        let (n, d) = stream_all(&s.postgres).await;
        assert_eq!(n, ROWS);
        postgres = postgres.min(d);
    }
    let rate = |d: Duration| ROWS as f64 / d.as_secs_f64();
    println!("  the plan alone, in process: {:.0} rows/s ({:.2} s)", rate(scan), scan.as_secs_f64());
    println!("  HeavenBase Flight SQL: {:.0} rows/s ({:.2} s)", rate(flight), flight.as_secs_f64());
    println!("  HeavenBase wire:       {:.0} rows/s ({:.2} s)", rate(wire), wire.as_secs_f64());
    println!("  Postgres wire:         {:.0} rows/s ({:.2} s)", rate(postgres), postgres.as_secs_f64());
    println!(
        "  Flight / our wire {:.2}× (goal ≥ 3×: {}), Flight / Postgres {:.2}×",
        rate(flight) / rate(wire),
        if rate(flight) >= 3.0 * rate(wire) { "met" } else { "missed" },
        rate(flight) / rate(postgres)
    );
}
