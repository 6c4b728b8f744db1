//! Host ports: published on 127.0.0.1 by default; a taken default is replaced
//! by the next free port (and reported), a taken fixed port is an error.

use std::collections::BTreeSet;
use std::net::TcpListener;

use crate::error::{Error, Result};
use crate::spec::PortChoice;

/// How many ports above a default are tried before giving up.
const SEARCH_SPAN: u16 = 200;

/// True when nothing listens on `address:port` (so the engine can publish it).
pub fn is_free(address: &str, port: u16) -> bool {
    TcpListener::bind((address, port)).is_ok()
}

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
    if let Some(port) = existing {
        let keep = match choice {
            PortChoice::Auto(_) => true,
            PortChoice::Fixed(p) => p == port,
        };
        if keep && !claimed.contains(&port) {
            claimed.insert(port);
            return Ok(Settled { port, moved: false });
        }
    }
    match choice {
        PortChoice::Fixed(port) => {
            if claimed.contains(&port) || !free(address, port) {
                return Err(Error::PortTaken(format!(
                    "port {port} is taken on {address} — pass another {flag} or stop the program using it"
                )));
            }
            claimed.insert(port);
            Ok(Settled { port, moved: false })
        }
        PortChoice::Auto(start) => {
            for port in start..start.saturating_add(SEARCH_SPAN) {
                if !claimed.contains(&port) && free(address, port) {
                    claimed.insert(port);
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
    fn real_socket_check_sees_a_listener() {
        let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind");
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        assert!(!is_free("127.0.0.1", port));
        drop(listener);
        assert!(is_free("127.0.0.1", port));
    }
}
