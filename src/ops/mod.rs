//! What commands share: bringing a cluster up, readiness and parity, status,
//! URLs. Each operation takes the engine it works on; none connects to one.

pub mod lifecycle;
pub mod parity;
pub mod ready;
pub mod status;
pub mod up;
pub mod urls;
pub mod wait;
