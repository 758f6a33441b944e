//! rancher-boot's integration tests: each file is a feature, run against the built binary.

mod exec;
mod metadata;
mod support;
