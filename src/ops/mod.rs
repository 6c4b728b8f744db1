//! What commands share: bringing a cluster up, readiness and parity, status,
//! the lifecycle, URLs, exec, diagnostics. Each operation takes the engine it
//! works on; none connects to one.

pub mod bundle;
pub mod doctor;
pub mod exec;
pub mod image_io;
pub mod lifecycle;
pub mod parity;
pub mod prune;
pub mod ready;
pub mod status;
pub mod up;
pub mod urls;
