//! rancher-boot: the entrypoint of an Erlang/Elixir release in a Rancher container.
//!
//! The binary (`main.rs`) parses the command line and calls [`boot::run`]; everything else is
//! here so that integration tests and fuzz targets can reach the pure parts.

pub mod boot;
pub mod cli;
pub mod cookie;
pub mod discovery;
pub mod env;
pub mod erl;
pub mod exec;
pub mod exit;
pub mod init;
pub mod local;
pub mod metadata;
pub mod source;
pub mod template;
