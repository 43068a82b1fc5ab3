// Cargo resolves a package's [build-dependencies] only when it has a build
// script; this one makes the host-side features in Cargo.toml count. It
// watches only itself (see derive/build.rs).
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
}
