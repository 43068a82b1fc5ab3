//! End-to-end tests: one test binary (every extra binary costs a full link of
//! DataFusion). Real SQLite files, real workspaces under a temporary home.

mod common;
mod crash;
mod dump;
mod elastic;
mod errors;
mod faults;
mod foundation;
mod fuzz;
mod hostile;
mod logictest;
mod postgres;
mod providers;
mod query;
mod replay;
mod search;
mod sql;
mod typed;
mod types;
mod vectors;
mod wire;
