//! Glue between the command line and the crates, one module per command.

pub mod controllers;
pub mod image;
pub mod logging;
pub mod node;
pub mod output;
pub mod server;
pub mod token;
pub mod validate;
