// Present so that [build-dependencies] in Cargo.toml count (see there). It
// watches only itself: without this line cargo reruns it, and rebuilds
// everything above this crate, whenever any file of the package changes
// (tests/ui/*.stderr included).
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
}
