//! What commands share: bringing a cluster up, readiness and parity, status,
//! URLs. Each operation takes the engine it works on; none connects to one.

pub mod bundle;
pub mod doctor;
pub mod exec;
pub mod image_io;
pub mod parity;
pub mod wait;
