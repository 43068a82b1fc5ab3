//! `hb --version` names the DataFusion and Lance it was built with: their
//! versions are read from the workspace's Cargo.lock at build time.

fn main() {
    let lock_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock");
    println!("cargo:rerun-if-changed={lock_path}");
    let lock = std::fs::read_to_string(lock_path).unwrap_or_default();
    for (package, var) in [("datafusion", "HB_DATAFUSION_VERSION"), ("lance", "HB_LANCE_VERSION")] {
        println!("cargo:rustc-env={var}={}", locked_version(&lock, package).unwrap_or("unknown"));
    }
}

/// The version of `[[package]] name = "…"` in a Cargo.lock.
fn locked_version<'a>(lock: &'a str, package: &str) -> Option<&'a str> {
    let header = format!("name = \"{package}\"\nversion = \"");
    let start = lock.find(&header)? + header.len();
    lock[start..].split('"').next()
}
