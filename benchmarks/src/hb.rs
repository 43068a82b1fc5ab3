//! The `hb` binary built beside this one, run in a home of its own: for the
//! benchmarks that measure the command line and the server as users run them
//! (import, soak, memory).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Hb {
    path: PathBuf,
    home: tempfile::TempDir,
}

impl Hb {
    /// `hb` and a new home for it; None, after saying so, when `hb` has not
    /// been built.
    pub fn find(benchmark: &str) -> Option<Hb> {
        let path = std::env::current_exe().unwrap().with_file_name("hb");
        if !path.exists() {
            println!("{benchmark}: {} is missing; build it first (cargo build --release -p heavenbase-cli)", path.display());
            return None;
        }
        let (home, _) = crate::home();
        Some(Hb { path, home })
    }

    /// The folder `hb` keeps its workspaces in.
    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// `hb args`, which must succeed; what it printed.
    pub fn run(&self, args: &[&str]) -> String {
        let out = Command::new(&self.path).args(args).env("HEAVENBASE_HOME", self.home()).output().unwrap();
        assert!(out.status.success(), "hb {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// `hb serve -w ws` with `flags` on a free loopback port, and a client
    /// connected once it answers.
    pub async fn serve(&self, ws: &str, flags: &[&str]) -> (Served, tokio_postgres::Client) {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(&self.path)
            .args(["serve", "-w", ws, "--port", &port.to_string()])
            .args(flags)
            .env("HEAVENBASE_HOME", self.home())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let served = Served { child, port, conninfo: format!("host=127.0.0.1 port={port} user=postgres dbname={ws}") };
        let client = loop {
            if let Ok((client, connection)) = tokio_postgres::connect(&served.conninfo, tokio_postgres::NoTls).await {
                tokio::spawn(connection);
                break client;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        (served, client)
    }
}

/// A running `hb serve`, stopped when dropped, however the run ends.
pub struct Served {
    child: Child,
    pub port: u16,
    pub conninfo: String,
}

impl Served {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
