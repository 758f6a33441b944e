//! rancher-boot's integration tests: each file is a feature, run against the built binary.

mod dns_answers;
mod docker_dns;
mod docs;
mod doctor;
mod ecs;
mod erlang;
mod exec;
mod fake_metadata;
mod fly;
mod init;
mod kubernetes;
mod mesh;
mod metadata;
mod nomad;
mod peers;
mod probe;
mod rabbitmq;
mod readme_platforms;
mod secrets;
mod security;
mod sources;
mod support;
mod templates;
mod usage;
mod user;
