//! Helpers of the end-to-end tests that run outside the test binary (the crash
//! tests' child processes) or are shared with the benchmarks (the sqllogictest
//! runner, frontend messages as bytes).

pub mod crash;
pub mod frontend;
pub mod logictest;
