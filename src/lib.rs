//! sparkbox: a real multi-node Apache Spark cluster with Jupyter on your own
//! machine in one command.
//!
//! The library holds everything; `main.rs` only parses, runs and maps errors
//! to exit codes.

pub mod base;
pub mod cli;
pub mod commands;
pub mod engine;
pub mod error;
pub mod image;
pub mod labels;
pub mod progress;
pub mod versions;

pub use error::{Error, Result};
