//! sparkbox: a real multi-node Apache Spark cluster with Jupyter on your own
//! machine in one command.
//!
//! The layers, each importing only those below it:
//! `commands` (thin: parse, call an operation, print) → `ops` (up, readiness
//! and parity, status, URLs) → `plan` (observe, settle, desired, reconcile,
//! plan, execute) → `model` (the cluster's shape, names, labels, the image
//! contract) and `settings` (file + flags + the existing cluster's record),
//! with `engine` (the only module that speaks to an engine) and `image` (the
//! recipe, the base, versions, archives) beside them. `main.rs` only parses,
//! runs and maps errors to exit codes.

pub mod cli;
pub mod commands;
pub mod engine;
pub mod error;
pub mod image;
pub mod interrupt;
pub mod lock;
pub mod model;
pub mod ops;
pub mod plan;
pub mod progress;
pub mod settings;

pub use error::{Error, Result};
