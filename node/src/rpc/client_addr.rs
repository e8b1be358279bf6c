//! Who a per-address limit counts: the client's network
//! ([`crate::host_network`]: an IPv4 address or an IPv6 /64), not its
//! literal address, and the shares of a pool of places each network may
//! hold.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tonic::codegen::http;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};

/// The unit of the per-address limits: an IPv4 address or an IPv6 /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientAddr(IpAddr);

impl From<IpAddr> for ClientAddr {
    fn from(ip: IpAddr) -> Self {
        Self(crate::host_network::of(ip))
    }
}

impl ClientAddr {
    /// The client of a request, from the connection info tonic puts in it
    /// (plain TCP, or TLS over it); None for a request made in process (the
    /// explorer's gateway calls the query service directly, bounded by its
    /// own connection limit).
    pub fn of_request(extensions: &http::Extensions) -> Option<Self> {
        extensions
            .get::<TcpConnectInfo>()
            .and_then(|c| c.remote_addr)
            .or_else(|| {
                extensions
                    .get::<TlsConnectInfo<TcpConnectInfo>>()
                    .and_then(|c| c.get_ref().remote_addr)
            })
            .map(|a| a.ip().into())
    }

    /// The unspecified address: what a request without connection info
    /// counts as where every request must count as someone.
    pub const UNKNOWN: Self = Self(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
}

/// How many of a pool's places each client holds, and the most one may.
#[derive(Debug)]
pub struct AddressShares {
    max: usize,
    held: Mutex<HashMap<ClientAddr, usize>>,
}

impl AddressShares {
    /// Shares of at most `max` places per client (at least one).
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max: max.max(1),
            held: Mutex::new(HashMap::new()),
        })
    }

    /// The share of a pool of `pool` places one client may hold: a quarter,
    /// rounded up, so that at least four clients are needed to take the
    /// whole pool and a pool of one is still usable.
    pub fn quarter_of(pool: usize) -> Arc<Self> {
        Self::new(pool.div_ceil(4))
    }

    /// One more place for `client`, unless it holds its share already.
    pub fn take(self: &Arc<Self>, client: ClientAddr) -> Option<AddressPlace> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        // No entry is made for a refusal: the map holds only clients that
        // hold places, so it is no larger than the pool.
        let n = held.get(&client).copied().unwrap_or(0);
        if n >= self.max {
            return None;
        }
        held.insert(client, n + 1);
        Some(AddressPlace {
            owner: self.clone(),
            client,
        })
    }

    /// Clients holding at least one place.
    pub fn clients(&self) -> usize {
        self.held.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// One place of one client; given back on drop.
#[derive(Debug)]
pub struct AddressPlace {
    owner: Arc<AddressShares>,
    client: ClientAddr,
}

impl Drop for AddressPlace {
    fn drop(&mut self) {
        let mut held = self.owner.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = held.get_mut(&self.client) {
            debug_assert!(*n > 0, "gave back a place never taken");
            *n -= 1;
            if *n == 0 {
                held.remove(&self.client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> ClientAddr {
        s.parse::<IpAddr>().unwrap().into()
    }

    #[test]
    fn a_client_holds_at_most_its_share_and_gets_it_back() {
        let shares = AddressShares::quarter_of(5); // 2 each
        let a = addr("2001:db8::1");
        let a_other_host = addr("2001:db8::2");
        let b = addr("10.0.0.1");
        let a1 = shares.take(a).expect("first");
        let _a2 = shares.take(a_other_host).expect("second, same /64");
        assert!(shares.take(a).is_none(), "a third for the same /64");
        assert_eq!(shares.clients(), 1, "a refusal adds no entry");
        let _b1 = shares.take(b).expect("another client is not refused");
        drop(a1);
        assert!(shares.take(a).is_some(), "a place given back is reusable");
        assert_eq!(AddressShares::quarter_of(1).max, 1);
        assert_eq!(AddressShares::quarter_of(4).max, 1);
        assert_eq!(AddressShares::quarter_of(32).max, 8);
    }
}
