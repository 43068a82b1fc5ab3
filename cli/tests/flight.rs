//! `hb serve --flight-port` driven by Python's ADBC Flight SQL driver
//! (tests/clients/flight_client.py): Arrow types, prepared statements with
//! parameters, catalog objects, writes, and a wrong password refused.

use std::process::{Command, Stdio};

use heavenbase::{Construction, EntityDef, FieldDef, Home, LogicalType as T, Workspace};
use serde_json::{Value as Json, json};

use super::Hb;
use super::mcp::{Served, free_ports, wait_for};

fn driver_present() -> bool {
    let ok =
        Command::new("python3").args(["-c", "import adbc_driver_flightsql, pyarrow"]).output().is_ok_and(|o| o.status.success());
    if !ok {
        assert!(std::env::var("CI").is_err(), "adbc-driver-flightsql and pyarrow are required under CI");
        eprintln!("skipped: the ADBC Flight SQL driver is not installed");
    }
    ok
}

#[tokio::test]
async fn flight_sql_with_the_adbc_driver() {
    if !driver_present() {
        return;
    }
    let hb = Hb::new();
    {
        // An embedded workspace (SQLite rows, Lance vectors), loaded in-process
        // and closed before the server opens it.
        let ws = Workspace::open_in(&Home::new(hb.home.path()), "docs", Construction::preset("embedded")).await.unwrap();
        ws.register(
            EntityDef::new("doc")
                .field(FieldDef::new("title", T::short_text()))
                .field(FieldDef::new("qty", T::Integer))
                .field(FieldDef::new("emb", T::vector(3)))
                .field(FieldDef::new("at", T::Timestamp)),
            false,
        )
        .await
        .unwrap();
        for (name, title, qty, emb, at) in [
            ("d1", "one", 1, [1.0, 0.0, 0.0], "2024-01-02T03:04:05Z"),
            ("d2", "two", 2, [0.0, 1.0, 0.0], "2024-02-03T04:05:06Z"),
            ("d3", "three", 3, [0.0, 0.0, 1.0], "2024-03-04T05:06:07Z"),
        ] {
            ws.upsert("doc", json!({"name": name, "title": title, "qty": qty, "emb": emb, "at": at})).await.unwrap();
        }
    }
    let auth = hb.home.path().join("auth.json");
    std::fs::write(
        &auth,
        r#"{"users": [{"name": "app", "password": "flight-pass"}, {"name": "bi", "password": "bi-pass", "read_only": true}]}"#,
    )
    .unwrap();
    let [wire, flight] = free_ports();
    let server = hb
        .cmd()
        .args(["serve", "-w", "docs", "--port", &wire.to_string(), "--flight-port", &flight.to_string()])
        .args(["--auth", auth.to_str().unwrap()])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let _served = Served(server);
    wait_for(wire);
    wait_for(flight);

    let out = Command::new("python3")
        .arg(format!("{}/../tests/clients/flight_client.py", env!("CARGO_MANIFEST_DIR")))
        .args([&format!("grpc://127.0.0.1:{flight}"), "app", "flight-pass"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "flight_client.py failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let r: Json = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();

    assert_eq!(
        r["types"],
        json!({"name": "string", "title": "string", "qty": "int64", "emb": "fixed_size_list<item: float>[3]",
               "at": "timestamp[ms, tz=UTC]"}),
        "vectors as fixed-size lists, timestamps with their zone"
    );
    assert_eq!(
        r["rows"][0],
        json!({"name": "d1", "title": "one", "qty": 1, "emb": [1.0, 0.0, 0.0], "at": "2024-01-02T03:04:05+00:00"})
    );
    assert_eq!(r["rows"].as_array().unwrap().len(), 3);
    assert_eq!(r["prepared"], json!(["d2"]), "qty > 1 AND title LIKE '%o%'");
    assert_eq!(r["prepared_again"], json!(["d3"]), "the same statement with other parameters");
    assert_eq!(r["insert_result"], json!([[1]]), "an INSERT answers its count");
    assert_eq!(r["ingested"], 2);
    assert_eq!(r["after_writes"], json!([6, 21]), "3 rows + 1 inserted + 2 ingested; qty 1+2+3+4+5+6");
    let doc = &r["objects"]["doc"];
    assert_eq!(doc["type"], "TABLE");
    assert_eq!(doc["schema"], "public");
    assert_eq!(doc["columns"], json!(["object_id", "name", "title", "qty", "emb", "at"]));
    assert_eq!(r["objects"]["sys_catalog"]["type"], "SYSTEM TABLE");
    assert_eq!(r["table_types"], json!(["SYSTEM TABLE", "TABLE", "VIEW"]));
    let refused = r["wrong_password"].as_str().unwrap();
    assert!(refused.contains("password authentication failed for user \"app\""), "{refused}");

    // A read-only user reads, and every way of writing is refused.
    let out = Command::new("python3")
        .arg(format!("{}/../tests/clients/flight_client.py", env!("CARGO_MANIFEST_DIR")))
        .args(["readonly", &format!("grpc://127.0.0.1:{flight}"), "bi", "bi-pass"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "flight_client.py readonly failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let ro: Json = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(ro["count"], 6);
    for write in ["insert", "delete", "ingest"] {
        let refused = ro[write].as_str().unwrap();
        assert!(refused.contains("read-only"), "{write}: {refused}");
    }
    assert_eq!(ro["count_after"], 6, "nothing was written");

    // What Flight wrote, the wire reads.
    let out = Command::new("psql")
        .args(["-h", "127.0.0.1", "-p", &wire.to_string(), "-U", "app", "-d", "docs", "-X", "-A", "-t", "-c"])
        .arg("SELECT name, title FROM doc WHERE qty >= 4 ORDER BY qty")
        .env("PGPASSWORD", "flight-pass")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "d4|inserted over Flight\nd5|ingested\nd6|ingested");
}

/// With the wire's certificate and key, the Flight port speaks only TLS: a
/// client trusting the certificate is served, a plaintext client is not.
#[tokio::test]
async fn flight_sql_over_tls_only() {
    if !driver_present() {
        return;
    }
    let hb = Hb::new();
    {
        let ws = Workspace::open_in(&Home::new(hb.home.path()), "docs", Construction::preset("embedded")).await.unwrap();
        ws.register(EntityDef::new("doc").field(FieldDef::new("title", T::short_text())), false).await.unwrap();
        ws.upsert("doc", json!({"name": "d1", "title": "one"})).await.unwrap();
    }
    let (cert, key) = (hb.home.path().join("server.crt"), hb.home.path().join("server.key"));
    let made = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs (.ci/run installs it)");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let [wire, flight] = free_ports();
    let server = hb
        .cmd()
        .args(["serve", "-w", "docs", "--port", &wire.to_string(), "--flight-port", &flight.to_string()])
        .args(["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let _served = Served(server);
    wait_for(flight);
    let out = Command::new("python3")
        .arg(format!("{}/../tests/clients/flight_client.py", env!("CARGO_MANIFEST_DIR")))
        .args(["tls", &format!("localhost:{flight}"), cert.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "flight_client.py tls failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let r: Json = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(r["tls_count"], 1);
    assert!(r["plaintext"].as_str().unwrap().starts_with("refused"), "a plaintext client is not served: {r}");

    // A key that cannot be read stops the server before it serves anything.
    let ports: [u16; 2] = free_ports();
    let out = hb
        .cmd()
        .args(["serve", "-w", "docs", "--port", &ports[0].to_string(), "--flight-port", &ports[1].to_string()])
        .args(["--tls-cert", cert.to_str().unwrap(), "--tls-key", "/nonexistent/server.key"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/server.key"), "{}", String::from_utf8_lossy(&out.stderr));
}
