//! mcp: tool calls over streamable HTTP beside the same reads over the
//! Postgres wire, one workspace behind both, in the same run.
//!
//! - get: `tools/call get {entity, object_id}` vs a prepared
//!   `SELECT * FROM item WHERE object_id = $1` from tokio-postgres.
//! - query: `tools/call query {filter: {qty: k}, limit: 10}` vs a prepared
//!   `SELECT * FROM item WHERE qty = $1 LIMIT 10`.
//!
//! One client, calls one after another on a kept-alive connection (an agent
//! waits for each answer); ids drawn uniformly and skewed (90% of calls on 1%
//! of the rows). MCP requests are the stateless 2026-07-28 form with JSON
//! responses, as the Python SDK sends them. Printed: calls/s and p50 per door,
//! and MCP's calls/s as a fraction of the wire's (no goal is set by the issue;
//! the figure says what the JSON-RPC/HTTP framing costs).

use std::time::{Duration, Instant};

use heavenbase::Workspace;
use serde_json::{Value as Json, json};

use crate::wire::{connect, setup};

const ROWS: usize = 10_000;
const CALLS: usize = 2_000;
const WARM: usize = 200;

/// Serve MCP (full profile) for `ws` on a runtime of its own; returns the URL.
fn serve_mcp_on_own_runtime(ws: Workspace) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            let opts = heavenbase_mcp::HttpOptions { port: 0, profile: heavenbase_mcp::Profile::Full, ..Default::default() };
            heavenbase_mcp::serve_http_until(ws, &opts, std::future::pending(), |addr| {
                tx.send(format!("http://{addr}/mcp")).unwrap();
            })
            .await
            .unwrap();
        });
    });
    rx.recv().unwrap()
}

struct McpClient {
    http: reqwest::Client,
    url: String,
    id: std::sync::atomic::AtomicU64,
}

impl McpClient {
    /// One `tools/call`; the tool's structured result.
    async fn call(&self, tool: &str, arguments: Json) -> Json {
        let id = self.id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let body = json!({
            "jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": tool, "arguments": arguments, "_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientInfo": {"name": "bench", "version": "1"},
                "io.modelcontextprotocol/clientCapabilities": {}}}
        });
        let response = self
            .http
            .post(&self.url)
            .header("Accept", "application/json, text/event-stream")
            .header("MCP-Protocol-Version", "2026-07-28")
            .header("Mcp-Method", "tools/call")
            .header("Mcp-Name", tool)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let mut reply: Json = response.json().await.unwrap();
        assert_eq!(reply["result"]["isError"], false, "{reply}");
        reply["result"]["structuredContent"].take()
    }
}

/// Ids for `n` calls: uniform over every row, or skewed (90% on 1% of rows).
fn draws(n: usize, skewed: bool) -> Vec<usize> {
    let mut x: u64 = 0x9E3779B97F4A7C15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if skewed && x % 10 != 0 { (x / 10 % (ROWS as u64 / 100)) as usize } else { (x / 10 % ROWS as u64) as usize }
        })
        .collect()
}

struct Figures {
    per_second: f64,
    p50: Duration,
}

fn figures(mut latencies: Vec<Duration>) -> Figures {
    let total: Duration = latencies.iter().sum();
    latencies.sort();
    Figures { per_second: latencies.len() as f64 / total.as_secs_f64(), p50: latencies[latencies.len() / 2] }
}

async fn timed<F, Fut>(keys: &[usize], mut f: F) -> Figures
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut latencies = Vec::with_capacity(keys.len());
    for (i, k) in keys.iter().enumerate() {
        let t = Instant::now();
        f(*k).await;
        if i >= WARM {
            latencies.push(t.elapsed());
        }
    }
    figures(latencies)
}

fn report(what: &str, mcp: &Figures, wire: &Figures) {
    println!(
        "  {what}: MCP {:.0} calls/s (p50 {:.0} µs), wire {:.0} calls/s (p50 {:.0} µs): MCP/wire {:.2}",
        mcp.per_second,
        mcp.p50.as_secs_f64() * 1e6,
        wire.per_second,
        wire.p50.as_secs_f64() * 1e6,
        mcp.per_second / wire.per_second
    );
}

pub async fn run() {
    println!("mcp: tool calls over streamable HTTP beside the Postgres wire, {ROWS} rows, {CALLS} calls each, one client");
    // The wire benchmarks' workspace and rows (ids 0…n-1), served over the wire.
    let s = setup(ROWS).await;
    let url = serve_mcp_on_own_runtime(s.ws.clone());
    let mcp = McpClient { http: reqwest::Client::new(), url, id: Default::default() };
    let mcp = &mcp;
    let pg = connect(&s.wire).await;
    let by_id = pg.prepare("SELECT * FROM item WHERE object_id = $1").await.unwrap();
    let by_qty = pg.prepare("SELECT * FROM item WHERE qty = $1 LIMIT 10").await.unwrap();

    for (shape, skewed) in [("uniform", false), ("skewed", true)] {
        let keys = draws(CALLS + WARM, skewed);
        let m = timed(&keys, |k| async move {
            let got = mcp.call("get", json!({"entity": "item", "object_id": k.to_string()})).await;
            assert_eq!(got["row"]["object_id"], k.to_string());
        })
        .await;
        let w = timed(&keys, |k| {
            let (pg, by_id) = (&pg, &by_id);
            async move {
                let id = k.to_string();
                assert_eq!(pg.query(by_id, &[&id]).await.unwrap().len(), 1);
            }
        })
        .await;
        report(&format!("get, {shape} ids"), &m, &w);
    }
    let keys: Vec<usize> = draws(CALLS + WARM, false).into_iter().map(|k| k % 97).collect();
    let m = timed(&keys, |k| async move {
        let got = mcp.call("query", json!({"entity": "item", "spec": {"filter": {"qty": k}, "limit": 10}})).await;
        assert_eq!(got["n"], 10);
    })
    .await;
    let w = timed(&keys, |k| {
        let (pg, by_qty) = (&pg, &by_qty);
        async move {
            assert_eq!(pg.query(by_qty, &[&(k as i64)]).await.unwrap().len(), 10);
        }
    })
    .await;
    report("query (filter + limit 10)", &m, &w);
}
