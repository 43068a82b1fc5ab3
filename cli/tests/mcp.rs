//! `hb mcp` driven by the official MCP Python SDK (tests/clients/mcp_client.py),
//! over stdio and over streamable HTTP, and served beside the Postgres wire.

use std::process::{Child, Command, Stdio};

use serde_json::{Value as Json, json};

use super::Hb;

/// The seed's note (README): its id derives from its name.
const ROUTING_NOTE_ID: &str = "000042943200010507604878606023630530843197";

fn client_script() -> String {
    format!("{}/../tests/clients/mcp_client.py", env!("CARGO_MANIFEST_DIR"))
}

/// Whether the SDK is importable; under CI it must be (`.ci/run` installs it).
fn sdk_present() -> bool {
    let ok = Command::new("python3").args(["-c", "import mcp, httpx2"]).output().is_ok_and(|o| o.status.success());
    if !ok {
        assert!(std::env::var("CI").is_err(), "the MCP Python SDK (pip: mcp) is required under CI");
        eprintln!("skipped: the MCP Python SDK is not installed");
    }
    ok
}

/// Run the client script; its last stdout line is the JSON report.
fn report(hb: &Hb, args: &[&str]) -> Json {
    let out = Command::new("python3").arg(client_script()).args(args).env("HEAVENBASE_HOME", hb.home.path()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "mcp_client.py {args:?} failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap_or_else(|e| panic!("report: {e}: {stdout}"))
}

fn names(v: &Json) -> Vec<&str> {
    v.as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect()
}

/// What every transport's scenario must show (the agent profile).
fn check_scenario(r: &Json, legacy: bool) {
    assert_eq!(
        names(&r["tools"]),
        ["list_entities", "describe_entity", "define_entity", "get", "count", "upsert", "set", "query", "explain", "sql"]
    );
    let upsert_schema = &r["schemas"]["upsert"];
    assert_eq!(upsert_schema["type"], "object");
    assert_eq!(upsert_schema["required"], json!(["entity", "row"]), "{upsert_schema}");
    assert_eq!(upsert_schema["properties"]["overwrite"]["type"], "boolean");

    let d = &r["describe"];
    assert_eq!(d["entity"], "note");
    let fields: Vec<&str> = d["fields"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(fields, ["object_id", "name", "title", "body", "emb"]);
    assert_eq!(d["fields"][2]["desc"], "What the note is about");
    assert_eq!(d["query_capabilities"]["near"], json!(["emb"]));
    assert_eq!(d["derives"]["object_id"]["from"], "name");
    assert!(names(&d["filter_ops"]["title"]).contains(&"like"));
    assert_eq!(d["filter_ops"]["emb"], json!([]));

    assert_eq!(r["upsert"]["object_id"], ROUTING_NOTE_ID);
    assert_eq!(r["get"]["row"]["title"], "Where fields live");
    assert_eq!(r["get"]["row"]["emb"], json!([1.0, 0.0, 0.0]));

    // The identity column comes first, as the reference's query results carry it.
    assert_eq!(r["query"]["columns"], json!(["object_id", "name", "title"]));
    let titles: Vec<(&str, &str)> = r["query"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| (row["name"].as_str().unwrap(), row["title"].as_str().unwrap()))
        .collect();
    assert_eq!(titles, [("n0", "Lance keeps vectors"), ("n1", "SQLite keeps rows")]);
    assert_eq!(r["query"]["ids"][0], r["query"]["rows"][0]["object_id"]);
    assert_eq!(r["query"]["n"], 2);
    assert_eq!(r["query"]["truncated"], false);
    let near: Vec<&str> = r["near"]["rows"].as_array().unwrap().iter().map(|row| row["name"].as_str().unwrap()).collect();
    assert_eq!(near, ["Routing note", "n0"], "nearest to [1, 0, 0]: {}", r["near"]);
    // Full-text search through the same JSON language: only the seed's body
    // holds "vectors", ranked with its BM25 score.
    let found: Vec<&str> = r["search"]["rows"].as_array().unwrap().iter().map(|row| row["name"].as_str().unwrap()).collect();
    assert_eq!(found, ["Routing note"], "{}", r["search"]);
    assert!(r["search"]["rows"][0]["score"].as_f64().unwrap() > 0.0, "{}", r["search"]);
    assert_eq!(d["query_capabilities"]["search"], json!(["body"]));

    assert_eq!(r["sql_capped"]["error"], false);
    assert_eq!(r["sql_capped"]["rows"], json!([{"title": "Lance keeps vectors"}, {"title": "Postgres serves"}]));
    assert_eq!(r["sql_capped"]["truncated"], true);
    assert!(r["sql_capped"]["note"].as_str().unwrap().contains("first 2 rows"));
    assert_eq!(r["sql_count"]["rows"], json!([{"n": 4}]));

    assert_eq!(r["sql_delete"]["error"], true);
    let refused = r["sql_delete"]["text"].as_str().unwrap();
    assert!(refused.contains("read-only under the 'agent' profile") && refused.contains("DELETE"), "{refused}");
    assert_eq!(r["count_after_delete"], json!({"entity": "note", "n": 4}), "the refused DELETE deleted nothing");

    assert_eq!(r["unknown_entity"]["error"], true);
    let unknown = r["unknown_entity"]["text"].as_str().unwrap();
    assert!(unknown.contains("nots") && unknown.contains("note"), "names the entity and suggests: {unknown}");
    assert_eq!(r["missing_argument"]["error"], true);
    assert!(r["missing_argument"]["text"].as_str().unwrap().contains("object_id"), "{}", r["missing_argument"]);
    assert_eq!(r["bad_value"]["error"], true);
    let bad = r["bad_value"]["text"].as_str().unwrap();
    assert!(bad.contains("note.emb"), "names the entity and field: {bad}");

    let resources = names(&r["resources"]);
    assert!(resources.contains(&"heavenbase://notes/summary"), "{resources:?}");
    assert!(resources.contains(&"heavenbase://notes/entity/note"), "{resources:?}");
    assert_eq!(r["resource_note"]["entity"], "note");
    assert!(r["resource_note"]["schema"]["fields"]["emb"].is_object(), "{}", r["resource_note"]);
    assert!(r["resource_note"]["storage_plan"].is_object(), "{}", r["resource_note"]);
    if legacy {
        assert!(r["protocol"].as_str().unwrap() < "2026", "{}", r["protocol"]);
    } else {
        assert_eq!(r["protocol"], "2026-07-28");
        assert_eq!(r["listen_event"], "ResourcesListChanged", "a define_entity is heard on subscriptions/listen");
    }
}

#[test]
fn mcp_over_stdio_with_the_python_sdk() {
    if !sdk_present() {
        return;
    }
    let hb = Hb::new();
    hb.ok(&["ws", "create", "notes"]);
    let exe = env!("CARGO_BIN_EXE_hb");
    let r = report(&hb, &["stdio", exe, "notes", "agent"]);
    assert_eq!(r["server"], "heavenbase-notes");
    check_scenario(&r, false);
    // The rows are in the workspace, as any other door sees them.
    let rows = hb.ok(&["sql", "-w", "notes", "--format", "csv", "-c", "SELECT title FROM note WHERE name = 'Routing note'"]);
    assert_eq!(rows.trim(), "title\nWhere fields live");

    // The handshake of earlier protocol versions, on a fresh workspace.
    hb.ok(&["ws", "drop", "notes"]);
    hb.ok(&["ws", "create", "notes"]);
    check_scenario(&report(&hb, &["stdio", exe, "notes", "agent", "legacy"]), true);

    // Each profile's exact tool set.
    let readonly = report(&hb, &["tools", exe, "notes", "readonly"]);
    assert_eq!(
        names(&readonly["tools"]),
        ["list_entities", "describe_entity", "get", "get_many", "exists", "count", "query", "explain", "sql"]
    );
    assert!(readonly["read_only"].as_object().unwrap().values().all(|v| v == true));
    let full = report(&hb, &["tools", exe, "notes", "full"]);
    assert_eq!(
        names(&full["tools"]),
        [
            "list_entities",
            "describe_entity",
            "define_entity",
            "get",
            "get_many",
            "exists",
            "count",
            "upsert",
            "upsert_many",
            "set",
            "set_many",
            "delete",
            "delete_many",
            "query",
            "explain",
            "sql",
            "audit",
            "repair"
        ]
    );
    assert_eq!(full["read_only"]["sql"], false);
    assert_eq!(full["read_only"]["get"], true);
    let bad = hb.run(&["mcp", "stdio", "-w", "notes", "--profile", "root"]);
    assert_eq!(bad.status.code(), Some(2), "clap refuses the value");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("readonly, agent, full"));
}

pub(crate) struct Served(pub(crate) Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `N` distinct free ports: all are held until all are chosen (one at a time,
/// the system may hand out a port just released, and a server given the same
/// port twice cannot bind the second).
pub(crate) fn free_ports<const N: usize>() -> [u16; N] {
    let held: Vec<std::net::TcpListener> = (0..N).map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    std::array::from_fn(|i| held[i].local_addr().unwrap().port())
}

pub(crate) fn wait_for(port: u16) {
    for _ in 0..400 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("nothing listens on {port}");
}

/// One `hb serve` answers psql and MCP over HTTP on one workspace: a row
/// written through MCP is read back over the wire.
#[test]
fn mcp_over_http_beside_the_wire() {
    if !sdk_present() {
        return;
    }
    if Command::new("psql").arg("--version").output().is_err() {
        assert!(std::env::var("CI").is_err(), "psql is required under CI");
        return;
    }
    let hb = Hb::new();
    hb.ok(&["ws", "create", "notes"]);
    let [wire, mcp] = free_ports();
    let server = hb
        .cmd()
        .args(["serve", "-w", "notes", "--port", &wire.to_string(), "--mcp-port", &mcp.to_string()])
        .env("HEAVENBASE_MCP_TOKEN", "s3cret-token")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let _served = Served(server);
    wait_for(wire);
    wait_for(mcp);
    let url = format!("http://127.0.0.1:{mcp}/mcp");
    let r = report(&hb, &["http", &url, "s3cret-token"]);
    assert_eq!(r["no_token_status"], 401);
    assert_eq!(r["wrong_token_status"], 401);
    check_scenario(&r, false);

    let out = Command::new("psql")
        .args(["-h", "127.0.0.1", "-p", &wire.to_string(), "-U", "postgres", "-d", "notes", "-X", "-A", "-t", "-c"])
        .arg("SELECT object_id, title FROM note WHERE name = 'Routing note'")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("{ROUTING_NOTE_ID}|Where fields live"));
    // And what psql writes, MCP reads (the legacy handshake this time).
    let out = Command::new("psql")
        .args(["-h", "127.0.0.1", "-p", &wire.to_string(), "-U", "postgres", "-d", "notes", "-X", "-q", "-c"])
        .arg("UPDATE note SET title = 'Edited over the wire' WHERE name = 'n2'")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let got = report(&hb, &["call", &url, "s3cret-token", "get", r#"{"entity": "note", "object_id": "n2"}"#]);
    assert_eq!(got["error"], false, "{got}");
    assert_eq!(got["body"]["row"], Json::Null, "n2 is a name, not an object_id: {got}");
    let q = json!({"entity": "note", "spec": {"filter": {"name": "n2"}, "select": ["title"]}}).to_string();
    let got = report(&hb, &["call", &url, "s3cret-token", "query", &q, "legacy"]);
    assert_eq!(got["body"]["rows"][0]["title"], "Edited over the wire", "{got}");
    assert_eq!(got["body"]["n"], 1, "{got}");
    let config = hb.ok(&["mcp", "config", "-w", "notes", "--port", &mcp.to_string(), "--token"]);
    let config: Json = serde_json::from_str(&config).unwrap();
    assert_eq!(config["mcpServers"]["heavenbase-notes"]["command"], env!("CARGO_BIN_EXE_hb"));
    assert_eq!(config["mcpServers"]["heavenbase-notes"]["args"], json!(["mcp", "stdio", "-w", "notes", "--profile", "agent"]));
    assert_eq!(config["mcpServers"]["heavenbase-notes-http"]["url"], url);
    assert_eq!(config["mcpServers"]["heavenbase-notes-http"]["headers"]["Authorization"], "Bearer ${HEAVENBASE_MCP_TOKEN}");
}
