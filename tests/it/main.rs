//! rancher-boot's integration tests: each file is a feature, run against the built binary.

mod docker_dns;
mod erlang;
mod exec;
mod fake_metadata;
mod init;
mod metadata;
mod peers;
mod secrets;
mod sources;
mod support;
mod templates;
