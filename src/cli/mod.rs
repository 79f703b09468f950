//! Glue between the command line and the crates, one module per command.

pub mod controllers;
pub mod diff;
pub mod drift;
pub mod image;
pub mod logging;
pub mod node;
pub mod output;
pub mod server;
pub mod snapshot;
pub mod sources;
pub mod sync;
pub mod token;
pub mod token_list;
pub mod up;
pub mod up_runtime;
pub mod validate;
