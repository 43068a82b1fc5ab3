//! HeavenBase's examples, one file each beside this one; this library is empty
//! and only makes them a package. Run one with
//! `cargo run -p heavenbase-examples --example walkthrough`.
