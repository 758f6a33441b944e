//! Placeholder until the source family lands (branch sources): the platform files' pure parts.
pub mod ecs;
pub mod fly;
pub mod kubernetes;
pub mod nomad;
