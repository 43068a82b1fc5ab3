//! No code: this crate only carries the features every selection of workspace
//! packages must agree on (see Cargo.toml).
