//! rancher-boot: the entrypoint of an Erlang/Elixir release in a container, on Rancher,
//! Kubernetes, Docker Swarm or Compose, ECS, Nomad, Fly, or plain Docker.
//!
//! The binary (`main.rs`) parses the command line and calls [`boot::run`]; everything else is
//! here so that integration tests and fuzz targets can reach the pure parts.

pub mod boot;
pub mod cli;
pub mod cookie;
pub mod discovery;
pub mod dist;
pub mod dist_flags;
pub mod dns;
pub mod doctor;
pub mod env;
pub mod erl;
pub mod exec;
pub mod exit;
pub mod http;
pub mod init;
pub mod mesh;
pub mod probe;
pub mod source;
pub mod state;
pub mod template;
pub mod user;
pub mod wait;
