//! The cluster's desired shape, its names and roles, every label key with a
//! typed view of a labelled object, and the image contract the Rust side and
//! `images/jupyter-spark/` both follow. No I/O.

pub mod contract;
pub mod labels;
pub mod recipe;
pub mod record;
pub mod registry;
pub mod spec;
pub mod versions;
