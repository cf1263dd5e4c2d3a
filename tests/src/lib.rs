//! Shared helpers for the privileged tests: a frame builder for verdict
//! tables, a handle on a privately loaded copy of the program, and network
//! namespace plumbing for the end-to-end tests.

pub mod api;
pub mod behaviour;
pub mod encodings;
pub mod frames;
pub mod harness;
pub mod netns;
pub mod openapi;
