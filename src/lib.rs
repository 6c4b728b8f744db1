//! sparkbox: a real multi-node Apache Spark cluster with Jupyter on your own
//! machine in one command.
//!
//! The library holds everything; `main.rs` only parses, runs and maps errors
//! to exit codes.

pub mod base;
pub mod cli;
pub mod commands;
pub mod config;
pub mod engine;
pub mod error;
pub mod execute;
pub mod image;
pub mod labels;
pub mod lock;
pub mod observe;
pub mod parity;
pub mod plan;
pub mod ports;
pub mod progress;
pub mod reconcile;
pub mod services;
pub mod spec;
pub mod versions;
pub mod wait;

pub use error::{Error, Result};
