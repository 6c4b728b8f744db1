//! Host ports: published on 127.0.0.1 by default; a taken default is replaced
//! by the next free port (and reported), a taken fixed port is an error.

use std::collections::BTreeSet;

use crate::error::{Error, Result};
use crate::model::spec::PortChoice;

/// How many ports above a default are tried before giving up.
const SEARCH_SPAN: u16 = 200;

/// The outcome of settling one port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settled {
    /// The port to use.
    pub port: u16,
    /// True when the preferred port was taken and another one was picked.
    pub moved: bool,
}

/// Settles a port: keep the one an existing container already publishes,
/// else the preferred one if free, else (for automatic choices) the next free
/// one not in `claimed`. `flag` names the option for the error message.
pub fn settle(
    choice: PortChoice,
    existing: Option<u16>,
    claimed: &mut BTreeSet<u16>,
    address: &str,
    flag: &str,
    free: &dyn Fn(&str, u16) -> bool,
) -> Result<Settled> {
    settle_block(choice, existing, 1, claimed, address, flag, free)
}

/// Like [`settle`], for `count` consecutive ports starting at the settled one
/// (Spark takes the next port when a driver's UI port is in use).
pub fn settle_block(
    choice: PortChoice,
    existing: Option<u16>,
    count: u16,
    claimed: &mut BTreeSet<u16>,
    address: &str,
    flag: &str,
    free: &dyn Fn(&str, u16) -> bool,
) -> Result<Settled> {
    let count = count.max(1);
    let block = |start: u16| -> Option<std::ops::Range<u16>> {
        let end = start.checked_add(count)?;
        Some(start..end)
    };
    if let Some(port) = existing {
        let keep = match choice {
            PortChoice::Auto(_) => true,
            PortChoice::Fixed(p) => p == port,
        };
        if let Some(range) = block(port).filter(|_| keep) {
            if range.clone().all(|p| !claimed.contains(&p)) {
                claimed.extend(range);
                return Ok(Settled { port, moved: false });
            }
        }
    }
    let usable = |range: std::ops::Range<u16>, claimed: &BTreeSet<u16>| -> Option<u16> {
        // The first port of the range that cannot be used, if any.
        range
            .into_iter()
            .find(|p| claimed.contains(p) || !free(address, *p))
    };
    match choice {
        PortChoice::Fixed(port) => {
            let Some(range) = block(port) else {
                return Err(Error::PortTaken(format!(
                    "port {port} leaves no room for {count} ports below 65536 — pass a lower {flag}"
                )));
            };
            if let Some(bad) = usable(range.clone(), claimed) {
                let what = if count > 1 {
                    format!(" (of the {count} ports from {port})")
                } else {
                    String::new()
                };
                return Err(Error::PortTaken(format!(
                    "port {bad}{what} is taken on {address} — pass another {flag} or stop the program using it"
                )));
            }
            claimed.extend(range);
            Ok(Settled { port, moved: false })
        }
        PortChoice::Auto(start) => {
            for port in start..start.saturating_add(SEARCH_SPAN) {
                let Some(range) = block(port) else { break };
                if usable(range.clone(), claimed).is_none() {
                    claimed.extend(range);
                    return Ok(Settled {
                        port,
                        moved: port != start,
                    });
                }
            }
            Err(Error::PortTaken(format!(
                "no free port in {start}..{} on {address} — pass {flag} with a free port",
                start.saturating_add(SEARCH_SPAN)
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taken(ports: &'static [u16]) -> impl Fn(&str, u16) -> bool {
        move |_, p| !ports.contains(&p)
    }

    #[test]
    fn auto_moves_past_taken_and_claimed_ports() {
        let mut claimed = BTreeSet::from([8081]);
        let s = settle(
            PortChoice::Auto(8080),
            None,
            &mut claimed,
            "127.0.0.1",
            "--x",
            &taken(&[8080]),
        )
        .expect("a port");
        assert_eq!(
            s,
            Settled {
                port: 8082,
                moved: true
            }
        );
        assert!(claimed.contains(&8082));
    }

    #[test]
    fn fixed_taken_port_is_a_clear_error() {
        let mut claimed = BTreeSet::new();
        let err = settle(
            PortChoice::Fixed(8080),
            None,
            &mut claimed,
            "127.0.0.1",
            "--master-ui-port",
            &taken(&[8080]),
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(
            err.contains("port 8080 is taken on 127.0.0.1") && err.contains("--master-ui-port"),
            "{err}"
        );
    }

    #[test]
    fn existing_container_keeps_its_port() {
        let mut claimed = BTreeSet::new();
        // The port looks taken because our own container publishes it.
        let s = settle(
            PortChoice::Auto(8080),
            Some(8085),
            &mut claimed,
            "127.0.0.1",
            "--x",
            &taken(&[8085]),
        )
        .expect("kept");
        assert_eq!(
            s,
            Settled {
                port: 8085,
                moved: false
            }
        );
    }

    #[test]
    fn a_block_skips_past_any_taken_port_in_it() {
        let mut claimed = BTreeSet::from([4045]);
        let s = settle_block(
            PortChoice::Auto(4040),
            None,
            4,
            &mut claimed,
            "127.0.0.1",
            "--app-ui-port",
            &taken(&[4042]),
        )
        .expect("a block");
        // 4040-4043 holds a taken port, 4043-4046 a claimed one.
        assert_eq!(s.port, 4046);
        assert!((4046..4050).all(|p| claimed.contains(&p)));
        let err = settle_block(
            PortChoice::Fixed(4040),
            None,
            4,
            &mut BTreeSet::new(),
            "127.0.0.1",
            "--app-ui-port",
            &taken(&[4042]),
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(
            err.contains("port 4042 (of the 4 ports from 4040) is taken"),
            "{err}"
        );
    }
}
