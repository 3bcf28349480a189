//! `ToSocketAddrs`: what `TcpStream::connect` takes, and name resolution off the loop.
//!
//! std's `ToSocketAddrs` resolves host names with a blocking `getaddrinfo` call, which would
//! stall every task of the runtime for as long as DNS takes. treeloop's trait of the same
//! name sorts what it is given into two cases:
//!
//! - **already an address** (`SocketAddr`, `(IpAddr, u16)`, a string such as
//!   `"127.0.0.1:8080"` or `"[::1]:80"` that parses as one): used at once, no thread;
//! - **a host name** (`"localhost:8080"`, `("example.com", 443)`): resolved by std on the
//!   blocking pool (`unblock`), as an await point: cancelled, the lookup's result is
//!   discarded when it arrives and nothing is connected.
//!
//! Binds take the same trait, but resolve a host name on the spot, blocking: a bind happens
//! once, at start-up, and is not an `async fn`. The trait is sealed: its method is an
//! implementation detail.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use crate::blocking::unblock;

/// Something [`TcpStream::connect`](super::TcpStream::connect) can connect to: a socket
/// address, an `(ip, port)` pair, a `"host:port"` string or a `(host, port)` pair, or a list
/// of addresses (tried in order). Host names are resolved on the blocking pool, never on the
/// loop (see the module docs).
pub trait ToSocketAddrs: sealed::Sealed {}

/// What a `ToSocketAddrs` turns into before anything blocks.
#[derive(Debug)]
pub enum Target {
    /// Addresses, known without a lookup.
    Ready(Vec<SocketAddr>),
    /// A `"host:port"` string to look up.
    Lookup(String),
    /// A host and a port to look up.
    LookupPair(String, u16),
}

mod sealed {
    /// Seals [`ToSocketAddrs`](super::ToSocketAddrs): only this module implements it.
    pub trait Sealed {
        /// Sorts `self` into known addresses or a lookup to make.
        fn target(self) -> super::Target;
    }
}

impl Target {
    /// The addresses: at once if known, else from std's resolver on the blocking pool.
    pub(crate) async fn resolve(self) -> io::Result<Vec<SocketAddr>> {
        let addrs = match self {
            Target::Ready(addrs) => addrs,
            Target::Lookup(host) => unblock(move || lookup(host.as_str())).await??,
            Target::LookupPair(host, port) => {
                unblock(move || lookup((host.as_str(), port))).await??
            }
        };
        if addrs.is_empty() {
            return Err(no_address());
        }
        Ok(addrs)
    }
}

/// Tries `f` on each address of `addr`, resolved here and blocking if it is a host name (for
/// binds, made once at start-up); the last error if none works.
pub(crate) fn each_addr<T>(
    addr: impl ToSocketAddrs,
    mut f: impl FnMut(SocketAddr) -> io::Result<T>,
) -> io::Result<T> {
    let addrs = match target_of(addr) {
        Target::Ready(addrs) => addrs,
        Target::Lookup(host) => lookup(host.as_str())?,
        Target::LookupPair(host, port) => lookup((host.as_str(), port))?,
    };
    let mut last = None;
    for addr in addrs {
        match f(addr) {
            Ok(done) => return Ok(done),
            Err(err) => last = Some(err),
        }
    }
    Err(last.unwrap_or_else(no_address))
}

/// The error for an empty list of addresses.
fn no_address() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "no address to bind or connect to: the list was empty, or the name resolved to nothing",
    )
}

/// std's blocking lookup, collected.
fn lookup(target: impl std::net::ToSocketAddrs) -> io::Result<Vec<SocketAddr>> {
    Ok(target.to_socket_addrs()?.collect())
}

/// A string that parses as an address needs no lookup.
fn parse_or_lookup(text: &str) -> Target {
    match text.parse::<SocketAddr>() {
        Ok(addr) => Target::Ready(vec![addr]),
        Err(_) => Target::Lookup(text.to_owned()),
    }
}

/// A host that parses as an IP address needs no lookup.
fn pair_or_lookup(host: &str, port: u16) -> Target {
    match host.parse::<IpAddr>() {
        Ok(ip) => Target::Ready(vec![SocketAddr::new(ip, port)]),
        Err(_) => Target::LookupPair(host.to_owned(), port),
    }
}

macro_rules! known {
    ($($ty:ty => |$value:ident| $addr:expr;)+) => {
        $(
            impl ToSocketAddrs for $ty {}
            impl sealed::Sealed for $ty {
                fn target(self) -> Target {
                    let $value = self;
                    Target::Ready(vec![$addr])
                }
            }
        )+
    };
}

known! {
    SocketAddr => |addr| addr;
    SocketAddrV4 => |addr| SocketAddr::V4(addr);
    SocketAddrV6 => |addr| SocketAddr::V6(addr);
    (IpAddr, u16) => |pair| SocketAddr::new(pair.0, pair.1);
    (Ipv4Addr, u16) => |pair| SocketAddr::new(IpAddr::V4(pair.0), pair.1);
    (Ipv6Addr, u16) => |pair| SocketAddr::new(IpAddr::V6(pair.0), pair.1);
    ([u8; 4], u16) => |pair| SocketAddr::new(IpAddr::from(pair.0), pair.1);
}

impl ToSocketAddrs for &SocketAddr {}
impl sealed::Sealed for &SocketAddr {
    fn target(self) -> Target {
        Target::Ready(vec![*self])
    }
}

impl ToSocketAddrs for &[SocketAddr] {}
impl sealed::Sealed for &[SocketAddr] {
    fn target(self) -> Target {
        Target::Ready(self.to_vec())
    }
}

impl ToSocketAddrs for Vec<SocketAddr> {}
impl sealed::Sealed for Vec<SocketAddr> {
    fn target(self) -> Target {
        Target::Ready(self)
    }
}

impl ToSocketAddrs for &str {}
impl sealed::Sealed for &str {
    fn target(self) -> Target {
        parse_or_lookup(self)
    }
}

impl ToSocketAddrs for String {}
impl sealed::Sealed for String {
    fn target(self) -> Target {
        parse_or_lookup(&self)
    }
}

impl ToSocketAddrs for &String {}
impl sealed::Sealed for &String {
    fn target(self) -> Target {
        parse_or_lookup(self)
    }
}

impl ToSocketAddrs for (&str, u16) {}
impl sealed::Sealed for (&str, u16) {
    fn target(self) -> Target {
        pair_or_lookup(self.0, self.1)
    }
}

impl ToSocketAddrs for (String, u16) {}
impl sealed::Sealed for (String, u16) {
    fn target(self) -> Target {
        pair_or_lookup(&self.0, self.1)
    }
}

/// Sorts `target` into known addresses or a lookup (the crate's way to call the sealed
/// method).
pub(crate) fn target_of(target: impl ToSocketAddrs) -> Target {
    sealed::Sealed::target(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready(target: impl ToSocketAddrs) -> Option<Vec<SocketAddr>> {
        match target_of(target) {
            Target::Ready(addrs) => Some(addrs),
            _ => None,
        }
    }

    #[test]
    fn addresses_need_no_lookup_and_names_do() {
        let v4: SocketAddr = "127.0.0.1:80".parse().unwrap();
        let v6: SocketAddr = "[::1]:443".parse().unwrap();
        assert_eq!(ready("127.0.0.1:80"), Some(vec![v4]));
        assert_eq!(ready(String::from("[::1]:443")), Some(vec![v6]));
        assert_eq!(ready(("127.0.0.1", 80)), Some(vec![v4]));
        assert_eq!(ready(("::1".to_string(), 443)), Some(vec![v6]));
        assert_eq!(ready(([127, 0, 0, 1], 80)), Some(vec![v4]));
        assert_eq!(ready(&[v4, v6][..]), Some(vec![v4, v6]));
        assert!(
            matches!(target_of("localhost:80"), Target::Lookup(host) if host == "localhost:80")
        );
        assert!(matches!(
            target_of(("localhost", 80)),
            Target::LookupPair(host, 80) if host == "localhost"
        ));
    }
}
