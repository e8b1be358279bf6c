//! Who a per-address limit counts: the client's network
//! ([`crate::host_network`]: an IPv4 address or an IPv6 /64), not its
//! literal address, and the shares of a pool of places each network may
//! hold.

use std::net::{IpAddr, SocketAddr};

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
        client_socket(extensions).map(|a| a.ip().into())
    }

    /// The unspecified address: what a request without connection info
    /// counts as where every request must count as someone.
    pub const UNKNOWN: Self = Self(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
}

/// The client's socket address of a request, from the connection info
/// tonic puts in it (plain TCP, or TLS over it); None for a request made in
/// process.
pub fn client_socket(extensions: &http::Extensions) -> Option<SocketAddr> {
    extensions
        .get::<TcpConnectInfo>()
        .and_then(|c| c.remote_addr)
        .or_else(|| {
            extensions
                .get::<TlsConnectInfo<TcpConnectInfo>>()
                .and_then(|c| c.get_ref().remote_addr)
        })
}

/// A pool's places held per client ([`crate::host_network::Shares`]).
pub type AddressShares = crate::host_network::Shares<ClientAddr>;

/// One place of one client, given back on drop.
pub type AddressPlace = crate::host_network::Share<ClientAddr>;
