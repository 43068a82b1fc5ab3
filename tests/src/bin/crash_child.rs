//! The child processes of the crash tests (tests/tests/crash.rs), which kill
//! them with SIGKILL: `crash_child writer|one-write|serve`, configured by the
//! `HB_CRASH_*` variables the tests set.

use heavenbase_tests::crash;

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("crash_child needs {name}"))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    let home = var("HB_CRASH_HOME");
    match mode.as_str() {
        "writer" => {
            let ws = crash::open(&home, "crash", crash::backends(&var("HB_CRASH_BACKENDS"))).await;
            let seed = var("HB_CRASH_SEED").parse().expect("HB_CRASH_SEED");
            let version = var("HB_CRASH_VERSION").parse().expect("HB_CRASH_VERSION");
            crash::writer(ws, seed, version).await;
        }
        "one-write" => {
            let ws = crash::open(&home, "crash", crash::backends(&var("HB_CRASH_BACKENDS"))).await;
            crash::one_write(ws).await;
        }
        "serve" => crash::serve(&home, var("HB_CRASH_PORT").parse().expect("HB_CRASH_PORT")).await,
        other => panic!("crash_child: unknown mode '{other}' (writer, one-write, serve)"),
    }
}
