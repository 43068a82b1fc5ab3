//! Helpers of the end-to-end tests that run outside the test binary.

pub mod crash;
