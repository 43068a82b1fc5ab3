//! `hb`: the HeavenBase command line.
//!
//! Exit codes: 0 ok, 1 user error (message on stderr), 2 internal error.

mod demo;
mod output;
mod progress;
mod repl;
mod transfer;

use std::path::PathBuf;
use std::time::Instant;

use clap::{Parser, Subcommand, ValueEnum};
use heavenbase::{Construction, Error, Home, PRESETS, Workspace, preset_backends, redact_secrets};
use heavenbase_pgwire::{DEFAULT_PORT, ServeOptions};

/// `hb --version`: ours and the engines underneath.
const LONG_VERSION: &str =
    concat!(env!("CARGO_PKG_VERSION"), " (DataFusion ", env!("HB_DATAFUSION_VERSION"), ", Lance ", env!("HB_LANCE_VERSION"), ")");

#[derive(Parser)]
#[command(
    name = "hb",
    version,
    long_version = LONG_VERSION,
    about = "HeavenBase: one workspace over many storage engines, every entity one SQL table"
)]
struct Cli {
    /// Workspace id (default: `default`).
    #[arg(short = 'w', long, global = true)]
    workspace: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create $HEAVENBASE_HOME and the `default` workspace (embedded preset).
    Setup,
    /// Manage workspaces.
    #[command(subcommand)]
    Ws(WsCommand),
    /// Run SQL: `-c` once, `-f` a file, or a REPL on stdin (`\dt`, `\d ENTITY`, `\explain SQL`, `\q`).
    ///
    /// Example: hb sql -w demo -c "SELECT count(*) FROM product"
    Sql {
        #[arg(short = 'c', long)]
        command: Option<String>,
        #[arg(short = 'f', long)]
        file: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "table")]
        format: output::Format,
        /// Print how long each statement took.
        #[arg(long)]
        timing: bool,
    },
    /// Serve workspaces over the Postgres wire protocol: every registered one
    /// (the database name picks it), or only the one `-w` names.
    ///
    /// Example: hb serve --demo    then    psql -h 127.0.0.1 -p 5433 -d demo
    Serve {
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        #[arg(long, default_value_t = DEFAULT_PORT)]
        port: u16,
        /// Serve the `demo` workspace, loading the demo data first if it is empty.
        #[arg(long)]
        demo: bool,
        #[arg(long)]
        tls_cert: Option<String>,
        #[arg(long)]
        tls_key: Option<String>,
        /// Refuse connections beyond this many with 53300 (0: no limit).
        #[arg(long, default_value_t = 0)]
        max_connections: usize,
        /// Memory one statement may hold (as 512MB or 2GB); past it, sorts,
        /// aggregates and joins spill to the workspace's folder, and what
        /// cannot spill fails with 53200. Default: no limit.
        #[arg(long, value_parser = parse_size)]
        max_query_memory: Option<usize>,
        /// Memory all statements together may hold. Default: no limit.
        #[arg(long, value_parser = parse_size)]
        max_memory: Option<usize>,
        /// Sessions' statement_timeout (as 30s or 5min; SET changes it per session).
        #[arg(long, value_parser = parse_time)]
        statement_timeout: Option<std::time::Duration>,
        /// Sessions' idle_in_transaction_session_timeout: a session idle that
        /// long inside a transaction block is closed and its block rolled back.
        #[arg(long, value_parser = parse_time)]
        idle_in_transaction_timeout: Option<std::time::Duration>,
        /// Sessions' idle_session_timeout: a session idle that long is closed.
        #[arg(long, value_parser = parse_time)]
        idle_session_timeout: Option<std::time::Duration>,
        /// Also serve MCP over streamable HTTP on this port (same host, one
        /// workspace), with the `agent` profile unless --mcp-profile says otherwise.
        #[arg(long)]
        mcp_port: Option<u16>,
        #[arg(long, default_value = "agent")]
        mcp_profile: heavenbase_mcp::Profile,
        /// Also serve Arrow Flight SQL on this port (same host, one workspace,
        /// the same users and TLS files as the wire).
        #[arg(long)]
        flight_port: Option<u16>,
        /// JSON file with password users and the method:
        /// {"users": [{"name": "bi", "password": "…", "read_only": true}], "method": "scram-sha-256"}
        #[arg(long)]
        auth: Option<PathBuf>,
    },
    /// Compare stored rows with their Catalog cards and field groups with each other.
    Audit {
        #[arg(long)]
        json: bool,
    },
    /// Mend what audit finds.
    Repair {
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
    /// Load a CSV, Parquet, JSON or NDJSON file into an entity (created from the
    /// file's columns when absent).
    ///
    /// Example: hb import people.csv --entity person --name-column full_name
    Import {
        file: PathBuf,
        #[arg(long)]
        entity: String,
        /// Column whose values become `name` (object_ids derive from it).
        #[arg(long)]
        name_column: Option<String>,
        /// Column whose values become `object_id`.
        #[arg(long)]
        id_column: Option<String>,
    },
    /// Write an entity to a CSV, Parquet, JSON or NDJSON file (by extension).
    Export {
        entity: String,
        #[arg(long)]
        to: PathBuf,
    },
    /// Full-text search of an entity: its best rows for QUERY by BM25, best
    /// first. Query: words (any of them), "a phrase", +must, -not, prefix*.
    ///
    /// Example: hb search -w demo review '+battery "lasts all day"'
    Search {
        entity: String,
        query: String,
        /// Fields to search, comma-separated (default: the fields indexed for
        /// search, else every LongText field).
        #[arg(long, value_delimiter = ',')]
        fields: Vec<String>,
        #[arg(long, default_value_t = 10)]
        top_k: usize,
        #[arg(long, value_enum, default_value = "table")]
        format: output::Format,
    },
    /// Load a small real-looking dataset (products and reviews).
    Demo,
    /// Serve a workspace to agents over the Model Context Protocol.
    #[command(subcommand)]
    Mcp(McpCommand),
    /// Print a completion script for a shell.
    ///
    /// Example: hb completions bash > ~/.local/share/bash-completion/completions/hb
    Completions { shell: clap_complete::Shell },
}

#[derive(Subcommand)]
enum McpCommand {
    /// Speak MCP on stdin/stdout (an agent host starts this command).
    ///
    /// Example: hb mcp stdio -w notes --profile agent
    Stdio {
        /// Tool set: readonly, agent or full.
        #[arg(long, default_value = "agent")]
        profile: heavenbase_mcp::Profile,
        /// Most rows one query or sql result carries.
        #[arg(long, default_value_t = heavenbase_mcp::DEFAULT_MAX_ROWS)]
        max_rows: usize,
    },
    /// Serve MCP over streamable HTTP at http://HOST:PORT/mcp.
    ///
    /// Example: HEAVENBASE_MCP_TOKEN=secret hb mcp serve -w notes --port 7001
    Serve {
        #[command(flatten)]
        endpoint: McpEndpoint,
        /// Require `Authorization: Bearer TOKEN` on every request.
        #[arg(long, env = "HEAVENBASE_MCP_TOKEN", hide_env_values = true)]
        token: Option<String>,
        #[arg(long, default_value_t = heavenbase_mcp::DEFAULT_MAX_ROWS)]
        max_rows: usize,
    },
    /// Print the client configuration ({"mcpServers": …}) for both transports.
    Config {
        #[command(flatten)]
        endpoint: McpEndpoint,
        /// The HTTP entry sends the token from $HEAVENBASE_MCP_TOKEN.
        #[arg(long)]
        token: bool,
    },
}

/// Where `hb mcp serve` listens (and `hb mcp config` points), and its tools.
#[derive(clap::Args)]
struct McpEndpoint {
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(long, default_value_t = heavenbase_mcp::DEFAULT_PORT)]
    port: u16,
    #[arg(long, default_value = "agent")]
    profile: heavenbase_mcp::Profile,
}

#[derive(Subcommand)]
enum WsCommand {
    /// List registered workspaces.
    List,
    /// Create a workspace from a preset or a backend map file (JSON or TOML).
    ///
    /// Example: hb ws create shop --backends backends.toml
    Create {
        id: String,
        #[arg(long, conflicts_with = "backends")]
        preset: Option<String>,
        #[arg(long)]
        backends: Option<PathBuf>,
    },
    /// Show a workspace's construction, backends and entities.
    Show { id: String },
    /// Drop a workspace: its tables, its folder and its registry record.
    Drop { id: String },
    /// List a workspace's entities.
    Entities { id: String },
    /// Presets: `list`, or `show NAME` for the resolved backend map.
    Presets {
        #[arg(value_enum, default_value = "list")]
        action: PresetAction,
        name: Option<String>,
    },
}

#[derive(Clone, ValueEnum)]
enum PresetAction {
    List,
    Show,
}

/// A failure and the exit code it gets.
pub struct Failure {
    code: i32,
    message: String,
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        let code = if e.kind().is_environment() { 2 } else { 1 };
        Failure { code, message: e.to_string() }
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure { code: 1, message: e.to_string() }
    }
}

pub fn user_error(message: impl Into<String>) -> Failure {
    Failure { code: 1, message: message.into() }
}

/// Stack of every runtime thread. Planning and evaluating deeply nested SQL
/// recurses; long AND/OR chains are balanced first (heavenbase::chains), and
/// this leaves room for the nesting that remains (deep CASE, long arithmetic),
/// where the default 2 MiB would abort the process. Only touched pages are
/// committed.
const THREAD_STACK: usize = 32 << 20;

fn main() {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().thread_stack_size(THREAD_STACK).build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hb: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = match runtime.block_on(run(cli)) {
        Ok(()) => 0,
        Err(f) => {
            eprintln!("hb: {}", f.message);
            f.code
        }
    };
    std::process::exit(code);
}

/// Ready-to-paste ways in: psql, a JDBC URL, a SQLAlchemy URL. With TLS the
/// client is told to require it.
fn connect_lines(host: &str, port: u16, db: &str, tls: bool) -> [String; 3] {
    let (psql_ssl, jdbc_ssl, sqlalchemy_ssl) =
        if tls { (" sslmode=require", "?sslmode=require", "?sslmode=require") } else { ("", "", "") };
    [
        format!("psql:       psql \"host={host} port={port} dbname={db}{psql_ssl}\""),
        format!("JDBC:       jdbc:postgresql://{host}:{port}/{db}{jdbc_ssl}"),
        format!("SQLAlchemy: postgresql+psycopg://{host}:{port}/{db}{sqlalchemy_ssl}"),
    ]
}

async fn open(id: Option<&str>) -> Result<Workspace, Failure> {
    let id = id.unwrap_or("default");
    Workspace::load(id).await.map_err(|e| {
        let hint = if id == "default" { " Run `hb setup` to create it." } else { "" };
        user_error(format!("{e}{hint}"))
    })
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let ws_id = cli.workspace.as_deref();
    match cli.command {
        Command::Setup => {
            let home = Home::from_env()?;
            std::fs::create_dir_all(home.root())?;
            let ws = Workspace::open("default", Construction::preset("embedded")).await?;
            println!("HeavenBase home: {}", home.root().display());
            println!("workspace '{}' ready ({})", ws.id(), ws.construction().describe());
        }
        Command::Ws(cmd) => ws_command(cmd).await?,
        Command::Sql { command, file, format, timing } => {
            let ws = open(ws_id).await?;
            let script = match (command, file) {
                (Some(c), _) => Some(c),
                (None, Some(f)) => Some(std::fs::read_to_string(&f).map_err(|e| user_error(format!("{}: {e}", f.display())))?),
                (None, None) => None,
            };
            match script {
                Some(text) => {
                    for stmt in split_statements(&text) {
                        run_statement(&ws, &stmt, format, timing).await?;
                    }
                }
                None => repl::run(&ws, format, timing).await?,
            }
        }
        Command::Serve {
            host,
            port,
            demo,
            tls_cert,
            tls_key,
            max_connections,
            max_query_memory,
            max_memory,
            statement_timeout,
            idle_in_transaction_timeout,
            idle_session_timeout,
            mcp_port,
            mcp_profile,
            flight_port,
            auth,
        } => {
            if max_query_memory.is_some() || max_memory.is_some() {
                bound_the_allocator();
            }
            let workspaces = if demo {
                vec![demo::ensure_demo(ws_id.unwrap_or("demo")).await?]
            } else if ws_id.is_some() {
                vec![open(ws_id).await?]
            } else {
                let mut all = Vec::new();
                for record in Home::from_env()?.list()? {
                    all.push(open(Some(&record.id)).await?);
                }
                if all.is_empty() {
                    return Err(user_error("no workspaces are registered; run `hb setup` or `hb serve --demo`"));
                }
                all
            };
            let auth = match auth {
                Some(path) => heavenbase_pgwire::AuthConfig::from_file(&path).map_err(user_error)?,
                None => Default::default(),
            };
            // One pool for every door of this process (the wire, MCP, Flight SQL).
            let memory = heavenbase::memory::MemoryLimits::new(max_memory, max_query_memory);
            if memory.is_limited() {
                for ws in &workspaces {
                    ws.limit_memory(&memory)?;
                }
            }
            let opts = ServeOptions {
                host: host.clone(),
                port,
                tls_cert,
                tls_key,
                max_connections,
                auth,
                memory,
                timeouts: heavenbase_pgwire::Timeouts {
                    statement: statement_timeout,
                    idle_in_transaction: idle_in_transaction_timeout,
                    idle_session: idle_session_timeout,
                },
                ..Default::default()
            };
            let tls = opts.tls_cert.is_some();
            for ws in &workspaces {
                println!("serving workspace '{}' on {host}:{port}", ws.id());
                for line in connect_lines(&host, port, ws.id(), tls) {
                    println!("  {line}");
                }
            }
            // Side doors on the same workspace: started (ports bound, TLS
            // files read) before the wire, so a failure stops everything.
            if flight_port.is_some() || mcp_port.is_some() {
                let [ws] = workspaces.as_slice() else {
                    return Err(user_error("--flight-port and --mcp-port serve one workspace: name it with -w"));
                };
                if let Some(flight_port) = flight_port {
                    spawn_flight(ws, &host, flight_port, &opts).await?;
                }
                if let Some(mcp_port) = mcp_port {
                    spawn_mcp(ws, &host, mcp_port, mcp_profile).await?;
                }
            }
            heavenbase_pgwire::serve_until(workspaces, &opts, async {
                shutdown_signal().await;
                println!("shutting down: letting running statements finish");
            })
            .await
            .map_err(|e| user_error(format!("server: {e}")))?;
        }
        Command::Audit { json } => {
            let ws = open(ws_id).await?;
            let audit = ws.audit().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&audit.to_json()).expect("json"));
            } else {
                let c = &audit.catalog;
                println!(
                    "{}: {} objects, {} catalog cards; missing {}, mismatched {}, dangling {}; objects split between backends: {}; \
                     journal entries replayed on open: {}",
                    if audit.ok() { "ok" } else { "problems found" },
                    c.objects,
                    c.catalog_rows,
                    c.missing.len(),
                    c.mismatched.len(),
                    c.dangling.len(),
                    audit.partial.len(),
                    audit.journal_replayed
                );
            }
            if !audit.ok() {
                return Err(Failure { code: 1, message: "audit found problems; run `hb repair`".into() });
            }
        }
        Command::Repair { dry_run, json } => {
            let ws = open(ws_id).await?;
            // Progress over the rows the audit reads: the Catalog's cards and
            // every entity's rows.
            let mut total = ws.count(heavenbase::catalog::system::SYS_CATALOG).await?;
            for e in ws.entities() {
                total += ws.count(&e).await?;
            }
            let mut progress = progress::Progress::new("repair", total);
            let r = ws.repair_with_progress(dry_run, &mut |_, rows| progress.advance(rows)).await?;
            progress.finish();
            if json {
                println!("{}", serde_json::to_string_pretty(&r).expect("json"));
            } else {
                let c = &r["catalog"];
                println!(
                    "{}missing written {}, mismatched rewritten {}, dangling deleted {}, split objects mended {}; ok: {}",
                    if dry_run { "(dry run) " } else { "" },
                    c["missing_written"],
                    c["mismatched_rewritten"],
                    c["dangling_deleted"],
                    r["groups"]["mended"],
                    r["ok"]
                );
            }
        }
        Command::Import { file, entity, name_column, id_column } => {
            let ws = open(ws_id).await?;
            let n = transfer::import(&ws, &file, &entity, name_column.as_deref(), id_column.as_deref()).await?;
            println!("imported {n} rows into {entity}");
        }
        Command::Export { entity, to } => {
            let ws = open(ws_id).await?;
            let n = transfer::export(&ws, &entity, &to).await?;
            println!("exported {n} rows of {entity} to {}", to.display());
        }
        Command::Search { entity, query, fields, top_k, format } => {
            let ws = open(ws_id).await?;
            let names: Vec<&str> = fields.iter().map(String::as_str).collect();
            let mut shown = vec!["name".to_string()];
            shown.extend(fields.iter().cloned());
            let q = ws.query(&entity)?.search(&names, &query, Some(top_k))?.select(shown);
            output::print(&q.execute().await?, format)?;
        }
        Command::Mcp(cmd) => mcp_command(ws_id, cmd).await?,
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "hb", &mut std::io::stdout());
        }
        Command::Demo => {
            let ws = demo::ensure_demo(ws_id.unwrap_or("demo")).await?;
            println!("workspace '{}': {}", ws.id(), ws.entities().join(", "));
        }
    }
    Ok(())
}

/// A server held to a memory limit must not hold much more than its
/// statements do, and glibc's malloc left to its defaults keeps what they free:
/// up to eight arenas per core, each keeping its free lists, and a mapping
/// threshold that rises to 32 MiB as large blocks are freed, after which Arrow
/// buffers come from the arenas and stay there. Measured with `benchmarks
/// memory` (a 4 GiB sort under `--max-query-memory 512MB`, which DataFusion
/// accounts within the limit): the server's RSS peaked at idle + 2.5–2.7× the
/// limit with the defaults; with one arena per core and blocks of 128 KiB or
/// more mapped on their own, at idle + 0.85–1.00× over thirteen runs (a spilling
/// grouping of the same rows 0.92–1.23×), for about a third more time on that
/// sort. glibc reads those settings (`GLIBC_TUNABLES`) only when a process
/// starts, and removes them from the environment it hands on, so `hb serve`
/// with a limit starts itself again once with them added to the caller's, and
/// with `HEAVENBASE_ALLOCATOR=bounded` to say it did. A caller that sets
/// `HEAVENBASE_ALLOCATOR` itself (to anything) keeps glibc as it started.
/// Not glibc: nothing.
fn bound_the_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::process::CommandExt;
        if std::env::var_os(ALLOCATOR_SETTING).is_some() {
            return;
        }
        let Ok(exe) = std::env::current_exe() else { return };
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let ours = format!("glibc.malloc.arena_max={cores}:glibc.malloc.mmap_threshold=131072");
        let tunables = match std::env::var("GLIBC_TUNABLES") {
            Ok(given) if !given.is_empty() => format!("{given}:{ours}"),
            _ => ours,
        };
        // exec replaces this process (the same pid) and returns only if it could not.
        let failed = std::process::Command::new(exe)
            .args(std::env::args_os().skip(1))
            .env("GLIBC_TUNABLES", tunables)
            .env(ALLOCATOR_SETTING, "bounded")
            .exec();
        eprintln!("hb: could not restart with a bounded allocator ({failed}); serving with glibc's defaults");
    }
}

/// Set by [`bound_the_allocator`]'s restart, or by a caller who wants glibc left alone.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const ALLOCATOR_SETTING: &str = "HEAVENBASE_ALLOCATOR";

/// `--max-query-memory 512MB`: a size as Postgres writes one.
fn parse_size(text: &str) -> Result<usize, String> {
    heavenbase::memory::parse_bytes(text)
}

/// `--statement-timeout 30s`: a time as Postgres writes one.
fn parse_time(text: &str) -> Result<std::time::Duration, String> {
    heavenbase_pgwire::parse_duration(text).ok_or_else(|| format!("'{text}' is not a time (as 500ms, 30s, 5min or 1h)"))
}

/// Arrow Flight SQL beside the wire: the wire's users and TLS files.
async fn spawn_flight(ws: &Workspace, host: &str, port: u16, wire: &ServeOptions) -> Result<(), Failure> {
    let users = wire.auth.users.iter().map(|u| heavenbase_flight::FlightUser {
        name: u.name.clone(),
        password: u.password.clone(),
        read_only: u.read_only,
    });
    let flight = heavenbase_flight::FlightOptions {
        host: host.to_string(),
        port,
        users: users.collect(),
        tls_cert: wire.tls_cert.clone(),
        tls_key: wire.tls_key.clone(),
    };
    let listener = heavenbase_flight::bind_flight(&flight).await.map_err(user_error)?;
    let addr = listener.local_addr()?;
    let serving =
        heavenbase_flight::serve_flight_on(listener, ws.clone(), &flight, std::future::pending()).map_err(user_error)?;
    println!("serving Arrow Flight SQL on {}://{addr}", if flight.tls_cert.is_some() { "grpc+tls" } else { "grpc" });
    tokio::spawn(async move {
        if let Err(e) = serving.await {
            eprintln!("hb: {e}");
        }
    });
    Ok(())
}

/// MCP over streamable HTTP beside the wire (`HEAVENBASE_MCP_TOKEN` for a token).
async fn spawn_mcp(ws: &Workspace, host: &str, port: u16, profile: heavenbase_mcp::Profile) -> Result<(), Failure> {
    let token = std::env::var("HEAVENBASE_MCP_TOKEN").ok().filter(|t| !t.is_empty());
    let mcp = heavenbase_mcp::HttpOptions { host: host.to_string(), port, profile, token, ..Default::default() };
    let listener = heavenbase_mcp::bind_http(&mcp).await.map_err(user_error)?;
    println!("serving MCP ({profile} profile) on http://{}/mcp", listener.local_addr()?);
    let ws = ws.clone();
    tokio::spawn(async move {
        if let Err(e) = heavenbase_mcp::serve_http_on(listener, ws, &mcp, std::future::pending()).await {
            eprintln!("hb: {e}");
        }
    });
    Ok(())
}

async fn mcp_command(ws_id: Option<&str>, cmd: McpCommand) -> Result<(), Failure> {
    match cmd {
        McpCommand::Stdio { profile, max_rows } => {
            let ws = open(ws_id).await?;
            // stdout carries the protocol: nothing else may be printed there.
            let server = heavenbase_mcp::WorkspaceServer::with_max_rows(ws, profile, max_rows);
            heavenbase_mcp::serve_stdio_with(server).await.map_err(user_error)
        }
        McpCommand::Serve { endpoint: McpEndpoint { host, port, profile }, token, max_rows } => {
            let ws = open(ws_id).await?;
            let opts = heavenbase_mcp::HttpOptions { host, port, profile, token: token.filter(|t| !t.is_empty()), max_rows };
            let id = ws.id().to_string();
            heavenbase_mcp::serve_http_until(ws, &opts, shutdown_signal(), |addr| {
                println!(
                    "serving workspace '{id}' over MCP ({} profile) on http://{addr}/mcp{}",
                    opts.profile,
                    if opts.token.is_some() { " (bearer token required)" } else { "" }
                );
            })
            .await
            .map_err(user_error)
        }
        McpCommand::Config { endpoint: McpEndpoint { host, port, profile }, token } => {
            let ws = open(ws_id).await?;
            // The host starts this very binary, wherever it lives.
            let exe = std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_else(|_| "hb".into());
            let config = heavenbase_mcp::client_config(&exe, ws.id(), profile, &host, port, token);
            println!("{}", serde_json::to_string_pretty(&config).expect("json"));
            Ok(())
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("signal handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

async fn ws_command(cmd: WsCommand) -> Result<(), Failure> {
    let home = Home::from_env()?;
    match cmd {
        WsCommand::List => {
            for rec in home.list()? {
                println!("{}\t{}\t{}", rec.id, rec.construction.describe(), rec.created_at);
            }
        }
        WsCommand::Create { id, preset, backends } => {
            let construction = match (preset, backends) {
                (_, Some(file)) => {
                    let text = std::fs::read_to_string(&file).map_err(|e| user_error(format!("{}: {e}", file.display())))?;
                    let is_toml = file.extension().is_some_and(|e| e == "toml");
                    let map: serde_json::Value = if is_toml {
                        toml::from_str(&text)
                            .map_err(|e| user_error(format!("{}: not a TOML backend map: {e}", file.display())))?
                    } else {
                        serde_json::from_str(&text)
                            .map_err(|e| user_error(format!("{}: not a JSON backend map: {e}", file.display())))?
                    };
                    Construction::Backends(map)
                }
                (Some(p), None) => Construction::preset(&p),
                (None, None) => Construction::preset("embedded"),
            };
            let ws = Workspace::open(&id, construction).await?;
            println!("workspace '{}' ready ({})", ws.id(), ws.construction().describe());
        }
        WsCommand::Show { id } => {
            let ws = open(Some(&id)).await?;
            println!("{}", serde_json::to_string_pretty(&ws.health()).expect("json"));
        }
        WsCommand::Drop { id } => {
            let ws = open(Some(&id)).await?;
            ws.drop().await?;
            println!("dropped workspace '{id}'");
        }
        WsCommand::Entities { id } => {
            let ws = open(Some(&id)).await?;
            for e in ws.entities() {
                println!("{e}");
            }
        }
        WsCommand::Presets { action, name } => match action {
            PresetAction::List => {
                for p in PRESETS {
                    println!("{p}");
                }
            }
            PresetAction::Show => {
                let name = name.ok_or_else(|| user_error("hb ws presets show NAME"))?;
                let backends = preset_backends(&name)?;
                let shown = serde_json::json!({"domain": "workspace-preset", "data": {"preset": name, "backends": redact_secrets(&backends)}});
                println!("{}", serde_json::to_string_pretty(&shown).expect("json"));
            }
        },
    }
    Ok(())
}

/// Split a script on `;` outside quotes.
pub(crate) fn split_statements(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    for c in text.chars() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, ';') => {
                if !cur.trim().is_empty() {
                    out.push(cur.trim().to_string());
                }
                cur.clear();
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

pub(crate) async fn run_statement(ws: &Workspace, sql: &str, format: output::Format, timing: bool) -> Result<(), Failure> {
    let t = Instant::now();
    let batches = ws.sql(sql).await?;
    output::print(&batches, format)?;
    if timing {
        println!("Time: {:.3} ms", t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(())
}
