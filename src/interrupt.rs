//! Ctrl-C without leaving the engine behind the command's back: once it is
//! pressed no new change is sent to the engine, and the changes already
//! sent (a network, a volume, a container being created or started) are
//! waited for, briefly, before the command exits. Dropping a request
//! half-way does not stop the engine from finishing it, and the next `up`
//! would then race that unfinished create (a second network of the same
//! name, a container name in use). Waits, pulls and builds are not held:
//! those stop at once.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crate::error::{Error, Result};

static STOPPING: AtomicBool = AtomicBool::new(false);
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// A change sent to the engine, counted until it is dropped.
#[derive(Debug)]
pub struct Change(());

impl Drop for Change {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Counts a change about to be sent; refused once Ctrl-C was pressed.
pub fn begin_change() -> Result<Change> {
    IN_FLIGHT.fetch_add(1, Ordering::SeqCst);
    let change = Change(());
    if STOPPING.load(Ordering::SeqCst) {
        return Err(Error::Interrupted("interrupted".into()));
    }
    Ok(change)
}

/// Ctrl-C was pressed: no new change starts.
pub fn request_stop() {
    STOPPING.store(true, Ordering::SeqCst);
}

/// Resolves once no change is under way (at most after `patience`).
pub async fn settled(patience: Duration) {
    let deadline = tokio::time::Instant::now() + patience;
    while IN_FLIGHT.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
