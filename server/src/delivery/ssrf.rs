//! The SSRF guard of SPEC §7: endpoints resolving to loopback, private, link-local (incl.
//! cloud metadata), CGNAT, multicast, unspecified or IPv6 ULA addresses are refused at save
//! and at every attempt, and the addresses checked are the addresses connected to.
//!
//! Pieces:
//! - [`classify`]: pure, says why an address is refused (or `None` when it is public).
//! - [`AllowList`]: the `WEBHOOKS_ALLOW_HOSTS` setting (hosts or CIDRs exempt from the guard,
//!   for tests and local development).
//! - [`Guard`]: resolves an [`EndpointUrl`] and checks every address; a host's checked
//!   answer is reused for [`ANSWER_REUSE`] (one second), never a failed or refused one.
//! - [`GuardedResolver`]: the same check inside reqwest's DNS step, so a name that resolved
//!   to a public address at save time and to `127.0.0.1` at attempt time (DNS rebinding) is
//!   refused before any connection is opened.
//!
//! Using it for a delivery attempt (both steps are needed):
//! 1. build the client with [`guarded_client_builder`] (guarded DNS, no proxy, no redirects);
//! 2. call [`Guard::resolve`] on the endpoint URL before each request: reqwest never calls a
//!    DNS resolver for IP-literal URLs (`https://10.0.0.1/`), so only this call checks them.

use std::{
    collections::HashSet,
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::Arc,
    time::{Duration, Instant},
};

use entity::endpoint_url::{EndpointHost, EndpointUrl};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::ttl_cache::TtlCache;

/// Why an address is refused. Each variant carries the matched network so the message can
/// name it; an address embedded in IPv6 (`::ffff:10.0.0.1`, `64:ff9b::a00:1`) reports the
/// IPv4 network it falls in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlockedRange {
    /// 127.0.0.0/8, ::1.
    Loopback(IpNet),
    /// RFC 1918 (10/8, 172.16/12, 192.168/16) and the deprecated IPv6 site-local fec0::/10.
    Private(IpNet),
    /// 169.254.0.0/16, fe80::/10.
    LinkLocal(IpNet),
    /// Instance metadata services (169.254.169.254 and friends): the classic SSRF target, kept
    /// apart from link-local so logs and messages say what was aimed at.
    CloudMetadata(IpNet),
    /// 100.64.0.0/10, shared address space (RFC 6598).
    Cgnat(IpNet),
    /// 224.0.0.0/4, ff00::/8.
    Multicast(IpNet),
    /// 0.0.0.0, :: (connecting to them reaches this host on most systems).
    Unspecified(IpNet),
    /// 0.0.0.0/8, "this network" (RFC 791).
    ThisNetwork(IpNet),
    /// 255.255.255.255.
    Broadcast(IpNet),
    /// 240.0.0.0/4 and other ranges that are not routed on the internet.
    Reserved(IpNet),
    /// fc00::/7, IPv6 unique local addresses (RFC 4193).
    UniqueLocal(IpNet),
}

impl BlockedRange {
    /// The network the address fell in (a /32 or /128 for single addresses).
    pub fn network(&self) -> IpNet {
        match *self {
            BlockedRange::Loopback(net)
            | BlockedRange::Private(net)
            | BlockedRange::LinkLocal(net)
            | BlockedRange::CloudMetadata(net)
            | BlockedRange::Cgnat(net)
            | BlockedRange::Multicast(net)
            | BlockedRange::Unspecified(net)
            | BlockedRange::ThisNetwork(net)
            | BlockedRange::Broadcast(net)
            | BlockedRange::Reserved(net)
            | BlockedRange::UniqueLocal(net) => net,
        }
    }

    fn phrase(&self) -> &'static str {
        match self {
            BlockedRange::Loopback(_) => "a loopback address",
            BlockedRange::Private(_) => "a private network address",
            BlockedRange::LinkLocal(_) => "a link-local address",
            BlockedRange::CloudMetadata(_) => "a cloud metadata service address",
            BlockedRange::Cgnat(_) => "a carrier-grade NAT address",
            BlockedRange::Multicast(_) => "a multicast address",
            BlockedRange::Unspecified(_) => "the unspecified address",
            BlockedRange::ThisNetwork(_) => "a \"this network\" address",
            BlockedRange::Broadcast(_) => "the broadcast address",
            BlockedRange::Reserved(_) => "a reserved address",
            BlockedRange::UniqueLocal(_) => "a unique local IPv6 address",
        }
    }
}

/// User-facing phrase, e.g. "a private network address (10.0.0.0/8)".
impl fmt::Display for BlockedRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let net = self.network();
        if net.prefix_len() == net.max_prefix_len() {
            write!(f, "{} ({})", self.phrase(), net.addr())
        } else {
            write!(f, "{} ({net})", self.phrase())
        }
    }
}

type Rule<N> = (N, fn(IpNet) -> BlockedRange);

const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> Ipv4Net {
    Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), prefix)
}

const fn v6(segments: [u16; 8], prefix: u8) -> Ipv6Net {
    let [a, b, c, d, e, f, g, h] = segments;
    Ipv6Net::new_assert(Ipv6Addr::new(a, b, c, d, e, f, g, h), prefix)
}

/// IPv4 rules, most specific first (the first match wins). SPEC §7 lists the families; the
/// metadata addresses come first so they are named as such rather than as link-local.
static V4_RULES: [Rule<Ipv4Net>; 20] = [
    // AWS, GCP, Azure, OCI, DigitalOcean, OpenStack instance metadata.
    (v4(169, 254, 169, 254, 32), BlockedRange::CloudMetadata),
    // AWS ECS task metadata and EKS Pod Identity agent.
    (v4(169, 254, 170, 2, 32), BlockedRange::CloudMetadata),
    (v4(169, 254, 170, 23, 32), BlockedRange::CloudMetadata),
    // Alibaba Cloud metadata (inside CGNAT space).
    (v4(100, 100, 100, 200, 32), BlockedRange::CloudMetadata),
    // Azure WireServer: a public-range address that only answers from inside Azure.
    (v4(168, 63, 129, 16, 32), BlockedRange::CloudMetadata),
    // Oracle Cloud legacy metadata.
    (v4(192, 0, 0, 192, 32), BlockedRange::CloudMetadata),
    (v4(0, 0, 0, 0, 32), BlockedRange::Unspecified),
    (v4(0, 0, 0, 0, 8), BlockedRange::ThisNetwork),
    (v4(127, 0, 0, 0, 8), BlockedRange::Loopback),
    (v4(10, 0, 0, 0, 8), BlockedRange::Private),
    (v4(172, 16, 0, 0, 12), BlockedRange::Private),
    (v4(192, 168, 0, 0, 16), BlockedRange::Private),
    (v4(169, 254, 0, 0, 16), BlockedRange::LinkLocal),
    (v4(100, 64, 0, 0, 10), BlockedRange::Cgnat),
    // IETF protocol assignments (RFC 6890) and benchmarking (RFC 2544): never on the internet.
    (v4(192, 0, 0, 0, 24), BlockedRange::Reserved),
    (v4(198, 18, 0, 0, 15), BlockedRange::Reserved),
    (v4(224, 0, 0, 0, 4), BlockedRange::Multicast),
    (v4(255, 255, 255, 255, 32), BlockedRange::Broadcast),
    (v4(240, 0, 0, 0, 4), BlockedRange::Reserved),
    // 6to4 relay anycast (RFC 7526, deprecated): would forward to an embedded address.
    (v4(192, 88, 99, 0, 24), BlockedRange::Reserved),
];

/// IPv6 rules, most specific first. Forms embedding an IPv4 address are handled by
/// [`embedded_ipv4`] after these (only `::` and `::1` overlap, and they must win).
static V6_RULES: [Rule<Ipv6Net>; 11] = [
    // AWS instance metadata and EKS Pod Identity over IPv6 (inside fc00::/7).
    (v6([0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254], 128), BlockedRange::CloudMetadata),
    (v6([0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0023], 128), BlockedRange::CloudMetadata),
    (v6([0, 0, 0, 0, 0, 0, 0, 0], 128), BlockedRange::Unspecified),
    (v6([0, 0, 0, 0, 0, 0, 0, 1], 128), BlockedRange::Loopback),
    (v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7), BlockedRange::UniqueLocal),
    (v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10), BlockedRange::LinkLocal),
    // Site-local, deprecated (RFC 3879) but still routed like a private range by some stacks.
    (v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10), BlockedRange::Private),
    (v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8), BlockedRange::Multicast),
    // Local-use NAT64 (RFC 8215): the embedded IPv4 position depends on the local setup, so
    // the whole prefix is refused rather than guessed at.
    (v6([0x0064, 0xff9b, 0x0001, 0, 0, 0, 0, 0], 48), BlockedRange::Reserved),
    // Discard-only prefix (RFC 6666): nothing legitimate listens there.
    (v6([0x0100, 0, 0, 0, 0, 0, 0, 0], 64), BlockedRange::Reserved),
    // Teredo (RFC 4380) hides an obfuscated IPv4 address and a relay; refuse it outright.
    (v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 32), BlockedRange::Reserved),
];

/// Why `ip` must not be connected to, or `None` when it is a public address (SPEC §7).
pub fn classify(ip: IpAddr) -> Option<BlockedRange> {
    match ip {
        IpAddr::V4(ip) => classify_v4(ip),
        IpAddr::V6(ip) => classify_v6(ip),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<BlockedRange> {
    V4_RULES.iter().find(|(net, _)| net.contains(&ip)).map(|(net, kind)| kind(IpNet::V4(*net)))
}

fn classify_v6(ip: Ipv6Addr) -> Option<BlockedRange> {
    let direct = V6_RULES.iter().find(|(net, _)| net.contains(&ip)).map(|(net, kind)| kind(IpNet::V6(*net)));
    // An IPv6 form that carries an IPv4 address reaches that IPv4 address (dual-stack
    // sockets, NAT64 gateways), so it is judged by it.
    direct.or_else(|| embedded_ipv4(ip).and_then(classify_v4))
}

/// The IPv4 address inside the IPv6 forms that lead to it:
/// IPv4-mapped `::ffff:a.b.c.d`, IPv4-translated `::ffff:0:a.b.c.d` (RFC 2765),
/// IPv4-compatible `::a.b.c.d` (deprecated), NAT64 `64:ff9b::a.b.c.d` (RFC 6052) and
/// 6to4 `2002:AABB:CCDD::/48` (RFC 3056).
fn embedded_ipv4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let tail = Ipv4Addr::from((u32::from(s[6]) << 16) | u32::from(s[7]));
    match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(tail),
        [0, 0, 0, 0, 0xffff, 0, _, _] => Some(tail),
        [0, 0, 0, 0, 0, 0, _, _] => Some(tail),
        [0x0064, 0xff9b, 0, 0, 0, 0, _, _] => Some(tail),
        [0x2002, hi, lo, ..] => Some(Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo))),
        _ => None,
    }
}

/// An entry of `WEBHOOKS_ALLOW_HOSTS` that is neither a host name, an IP address nor a CIDR.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "WEBHOOKS_ALLOW_HOSTS entry \"{entry}\" is not a host name, an IP address or a CIDR range (like 127.0.0.0/8); ports and wildcards are not supported."
)]
pub struct AllowListError {
    pub entry: String,
}

/// Hosts and networks exempt from the guard (SPEC §7, §11 `WEBHOOKS_ALLOW_HOSTS`), so tests
/// and local development can deliver to `localhost` or a receiver on a private network.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    /// Normalised like [`EndpointUrl::host`]: lower-case ASCII, no trailing dot.
    hosts: Vec<String>,
    nets: Vec<IpNet>,
}

impl AllowList {
    /// Parses entries that are host names (`localhost`, `receiver.test`), IP addresses
    /// (`127.0.0.1`, `::1`, `[::1]`) or CIDRs (`10.0.0.0/8`, `fd00::/8`). Blank entries are
    /// skipped, so an empty setting gives an empty list.
    pub fn parse(entries: &[String]) -> Result<AllowList, AllowListError> {
        let mut list = AllowList::default();
        for entry in entries.iter().map(|entry| entry.trim()).filter(|e| !e.is_empty()) {
            list.add(entry)?;
        }
        Ok(list)
    }

    /// Parses the comma-separated form of the environment variable.
    pub fn from_setting(value: &str) -> Result<AllowList, AllowListError> {
        let entries: Vec<String> = value.split(',').map(str::to_owned).collect();
        AllowList::parse(&entries)
    }

    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty() && self.nets.is_empty()
    }

    fn add(&mut self, entry: &str) -> Result<(), AllowListError> {
        if let Ok(net) = entry.parse::<IpNet>() {
            self.nets.push(net.trunc());
            return Ok(());
        }
        if let Ok(ip) = entry.parse::<IpAddr>() {
            self.nets.push(IpNet::from(ip));
            return Ok(());
        }
        // Same host rules as endpoint URLs, so `Example.COM.` matches `example.com`.
        match EndpointHost::parse(entry) {
            Ok(EndpointHost::Domain(host)) => self.hosts.push(host),
            Ok(EndpointHost::Ipv4(ip)) => self.nets.push(IpNet::from(IpAddr::V4(ip))),
            Ok(EndpointHost::Ipv6(ip)) => self.nets.push(IpNet::from(IpAddr::V6(ip))),
            Err(_) => return Err(AllowListError { entry: entry.to_owned() }),
        }
        Ok(())
    }

    /// True when `host` (a name, or an IP literal with or without brackets) is listed.
    pub fn allows_host(&self, host: &str) -> bool {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return self.allows_ip(ip);
        }
        match EndpointHost::parse(host) {
            Ok(EndpointHost::Domain(name)) => self.hosts.contains(&name),
            Ok(EndpointHost::Ipv4(ip)) => self.allows_ip(IpAddr::V4(ip)),
            Ok(EndpointHost::Ipv6(ip)) => self.allows_ip(IpAddr::V6(ip)),
            Err(_) => false,
        }
    }

    /// True when `ip` is inside a listed network. `::ffff:127.0.0.1` counts as `127.0.0.1`.
    pub fn allows_ip(&self, ip: IpAddr) -> bool {
        let canonical = ip.to_canonical();
        self.nets.iter().any(|net| net.contains(&ip) || net.contains(&canonical))
    }
}

/// Why the guard refused an endpoint. The messages are shown to users as they are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    #[error("{}", blocked_message(.host, .ip, .range))]
    Blocked { host: String, ip: IpAddr, range: BlockedRange },
    #[error("The host {host} could not be resolved ({message}). Check the host name.")]
    Dns { host: String, message: String },
}

fn blocked_message(host: &str, ip: &IpAddr, range: &BlockedRange) -> String {
    const WHY: &str = "Webhooks can only be sent to public internet addresses.";
    if host == ip.to_string() {
        format!("{ip} is {range}. {WHY}")
    } else {
        format!("{host} resolves to {ip}, {range}. {WHY}")
    }
}

/// How long a host's checked addresses are reused. Every attempt resolved its host again:
/// a blocking-pool hop and a `getaddrinfo` (33 µs of CPU each for `localhost` here, a DNS
/// round trip for a real name), about a fifth of a core at 6,800 attempts/s. A second
/// keeps SPEC §7's "checked at every attempt" to within a second of the answer, and the
/// connection still goes only to checked addresses.
pub const ANSWER_REUSE: Duration = Duration::from_secs(1);
/// Hosts remembered at once; past it the memory starts over (`TtlCache`).
const ANSWERS_KEPT: usize = 10_000;

/// Resolves endpoint hosts and refuses internal addresses (SPEC §7).
#[derive(Debug, Clone, Default)]
pub struct Guard {
    allow: AllowList,
    recent: RecentAnswers,
}

/// Checked answers by (host, port), shared by a guard's clones. Failures are not kept: a
/// host that did not resolve is tried again at the next attempt.
#[derive(Clone)]
struct RecentAnswers(Arc<TtlCache<(String, u16), Vec<SocketAddr>>>);

impl Default for RecentAnswers {
    fn default() -> Self {
        RecentAnswers(Arc::new(TtlCache::new(ANSWER_REUSE, ANSWERS_KEPT)))
    }
}

impl fmt::Debug for RecentAnswers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RecentAnswers")
    }
}

impl Guard {
    pub fn new(allow: AllowList) -> Guard {
        Guard { allow, recent: RecentAnswers::default() }
    }

    /// Refuses `ip` (reached through `host`) when it is internal and neither the host nor the
    /// address is on the allow-list.
    pub fn check_ip(&self, host: &str, ip: IpAddr) -> Result<(), GuardError> {
        if self.allow.allows_host(host) || self.allow.allows_ip(ip) {
            return Ok(());
        }
        match classify(ip) {
            Some(range) => Err(GuardError::Blocked { host: host.to_owned(), ip, range }),
            None => Ok(()),
        }
    }

    /// The addresses to connect to for `url`, all checked. IP literals are checked without
    /// DNS; names are resolved and refused if ANY address is internal (an attacker controls
    /// which one a client picks). Callers add their own timeout (SPEC §7: 10 s at save).
    pub async fn resolve(&self, url: &EndpointUrl) -> Result<Vec<SocketAddr>, GuardError> {
        let port = url.port_or_default();
        let ip = match url.host() {
            EndpointHost::Domain(name) => return self.resolve_host(&name, port).await,
            EndpointHost::Ipv4(ip) => IpAddr::V4(ip),
            EndpointHost::Ipv6(ip) => IpAddr::V6(ip),
        };
        self.check_ip(&ip.to_string(), ip)?;
        Ok(vec![SocketAddr::new(ip, port)])
    }

    /// Resolves `host` with the system resolver and checks every address, or gives the
    /// addresses it checked for `host` less than `ANSWER_REUSE` ago.
    pub async fn resolve_host(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, GuardError> {
        self.resolve_host_at(host, port, Instant::now()).await
    }

    async fn resolve_host_at(&self, host: &str, port: u16, now: Instant) -> Result<Vec<SocketAddr>, GuardError> {
        let key = (host.to_owned(), port);
        if let Some(addrs) = self.recent.0.get(&key, now) {
            return Ok(addrs);
        }
        let addrs = self.lookup(host, port).await?;
        self.recent.0.put(key, addrs.clone(), now);
        Ok(addrs)
    }

    async fn lookup(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, GuardError> {
        let resolved =
            tokio::net::lookup_host((host, port)).await.map_err(|error| dns_error(host, &error.to_string()))?;
        let addrs = dedup(resolved);
        if addrs.is_empty() {
            return Err(dns_error(host, "it has no addresses"));
        }
        for addr in &addrs {
            self.check_ip(host, addr.ip())?;
        }
        Ok(addrs)
    }
}

fn dns_error(host: &str, message: &str) -> GuardError {
    // The io error reads "failed to lookup address information: Name or service not known";
    // the user only needs the second half.
    let message = message.strip_prefix("failed to lookup address information: ").unwrap_or(message);
    GuardError::Dns { host: host.to_owned(), message: message.to_owned() }
}

/// Keeps the resolver's order (it encodes address preference) and drops repeats.
fn dedup(addrs: impl Iterator<Item = SocketAddr>) -> Vec<SocketAddr> {
    let mut seen = HashSet::new();
    addrs.filter(|addr| seen.insert(*addr)).collect()
}

/// reqwest DNS resolver that runs the guard at connect time: the addresses it returns are the
/// checked ones and the only ones reqwest connects to, so DNS rebinding between the check and
/// the connection is impossible (SPEC §7).
///
/// reqwest does not call a resolver for IP-literal URLs: call [`Guard::resolve`] on the URL
/// before each request as well (it checks literals).
#[derive(Debug, Clone)]
pub struct GuardedResolver(pub Arc<Guard>);

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = Arc::clone(&self.0);
        let host = name.as_str().to_owned();
        Box::pin(async move {
            // Port 0: reqwest substitutes the URL's port, or 443 for https.
            let addrs = guard.resolve_host(&host, 0).await?;
            let addrs: Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// A reqwest client builder with the guard in place: guarded DNS, no proxy (a proxy would
/// resolve and connect on our behalf, unchecked) and no redirects (SPEC §6; a redirect to an
/// IP literal would skip the resolver). Callers add timeouts and TLS roots.
pub fn guarded_client_builder(guard: Arc<Guard>) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .dns_resolver(GuardedResolver(guard))
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap_or_else(|_| panic!("{text} is not an IP"))
    }

    fn net(text: &str) -> IpNet {
        text.parse().unwrap_or_else(|_| panic!("{text} is not a CIDR"))
    }

    fn url(text: &str) -> EndpointUrl {
        EndpointUrl::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn allow(entries: &[&str]) -> AllowList {
        let entries: Vec<String> = entries.iter().map(|e| e.to_string()).collect();
        AllowList::parse(&entries).expect("valid allow-list")
    }

    #[tokio::test]
    async fn a_checked_answer_is_reused_for_a_second_then_resolved_again() {
        let guard = Guard::new(allow(&["localhost"]));
        let t0 = Instant::now();
        let earlier: SocketAddr = "192.0.2.7:443".parse().unwrap();
        guard.recent.0.put(("localhost".to_owned(), 443), vec![earlier], t0);
        let reused = guard.resolve_host_at("localhost", 443, t0 + ANSWER_REUSE - Duration::from_millis(1)).await;
        assert_eq!(reused.unwrap(), vec![earlier], "within the second: the remembered answer");
        let fresh = guard.resolve_host_at("localhost", 443, t0 + ANSWER_REUSE).await.unwrap();
        assert!(!fresh.contains(&earlier) && fresh.iter().all(|a| a.ip().is_loopback()), "{fresh:?}");
        let other_port = guard.resolve_host_at("localhost", 8443, t0).await.unwrap();
        assert!(other_port.iter().all(|a| a.port() == 8443), "answers are kept per port: {other_port:?}");
    }

    #[tokio::test]
    async fn a_refused_answer_is_not_remembered() {
        let guard = Guard::default();
        let t0 = Instant::now();
        let refused = guard.resolve_host_at("localhost", 443, t0).await;
        assert!(matches!(refused, Err(GuardError::Blocked { .. })), "{refused:?}");
        assert_eq!(guard.recent.0.get(&("localhost".to_owned(), 443), t0), None);
    }

    fn assert_blocked(addresses: &[&str], expected: BlockedRange) {
        for address in addresses {
            assert_eq!(classify(ip(address)), Some(expected), "{address}");
        }
    }

    #[test]
    fn ipv4_loopback_is_refused() {
        assert_blocked(
            &["127.0.0.1", "127.0.0.0", "127.255.255.255", "127.1.2.3"],
            BlockedRange::Loopback(net("127.0.0.0/8")),
        );
    }

    #[test]
    fn the_three_private_ipv4_ranges_are_refused() {
        assert_blocked(&["10.0.0.0", "10.1.2.3", "10.255.255.255"], BlockedRange::Private(net("10.0.0.0/8")));
        assert_blocked(&["172.16.0.1", "172.31.255.255"], BlockedRange::Private(net("172.16.0.0/12")));
        assert_blocked(&["192.168.0.1", "192.168.255.255"], BlockedRange::Private(net("192.168.0.0/16")));
    }

    #[test]
    fn ipv4_link_local_is_refused() {
        assert_blocked(
            &["169.254.0.1", "169.254.169.253", "169.254.255.255"],
            BlockedRange::LinkLocal(net("169.254.0.0/16")),
        );
    }

    #[test]
    fn the_instance_metadata_address_is_refused_as_cloud_metadata() {
        assert_blocked(&["169.254.169.254"], BlockedRange::CloudMetadata(net("169.254.169.254/32")));
    }

    #[test]
    fn the_ecs_task_metadata_address_is_refused_as_cloud_metadata() {
        assert_blocked(&["169.254.170.2"], BlockedRange::CloudMetadata(net("169.254.170.2/32")));
    }

    #[test]
    fn other_cloud_metadata_addresses_are_named_as_such() {
        for address in ["169.254.170.23", "100.100.100.200", "168.63.129.16", "192.0.0.192"] {
            assert!(matches!(classify(ip(address)), Some(BlockedRange::CloudMetadata(_))), "{address}");
        }
    }

    #[test]
    fn cgnat_shared_address_space_is_refused() {
        assert_blocked(&["100.64.0.1", "100.127.255.255"], BlockedRange::Cgnat(net("100.64.0.0/10")));
    }

    #[test]
    fn ipv4_multicast_is_refused() {
        assert_blocked(&["224.0.0.1", "239.255.255.250", "230.1.2.3"], BlockedRange::Multicast(net("224.0.0.0/4")));
    }

    #[test]
    fn the_unspecified_ipv4_address_is_refused() {
        assert_blocked(&["0.0.0.0"], BlockedRange::Unspecified(net("0.0.0.0/32")));
    }

    #[test]
    fn the_this_network_range_is_refused() {
        assert_blocked(&["0.0.0.1", "0.255.255.255"], BlockedRange::ThisNetwork(net("0.0.0.0/8")));
    }

    #[test]
    fn the_broadcast_address_is_refused() {
        assert_blocked(&["255.255.255.255"], BlockedRange::Broadcast(net("255.255.255.255/32")));
    }

    #[test]
    fn the_reserved_class_e_range_is_refused() {
        assert_blocked(&["240.0.0.1", "250.1.2.3", "255.255.255.254"], BlockedRange::Reserved(net("240.0.0.0/4")));
    }

    #[test]
    fn other_non_internet_ipv4_ranges_are_refused_as_reserved() {
        assert_blocked(&["192.0.0.8"], BlockedRange::Reserved(net("192.0.0.0/24")));
        assert_blocked(&["198.18.0.1", "198.19.255.255"], BlockedRange::Reserved(net("198.18.0.0/15")));
    }

    #[test]
    fn ipv6_loopback_is_refused() {
        assert_blocked(&["::1"], BlockedRange::Loopback(net("::1/128")));
    }

    #[test]
    fn the_unspecified_ipv6_address_is_refused() {
        assert_blocked(&["::"], BlockedRange::Unspecified(net("::/128")));
    }

    #[test]
    fn ipv6_unique_local_addresses_are_refused() {
        assert_blocked(
            &["fc00::1", "fd12:3456:789a::1", "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"],
            BlockedRange::UniqueLocal(net("fc00::/7")),
        );
    }

    #[test]
    fn the_aws_ipv6_metadata_address_is_refused_as_cloud_metadata() {
        assert_blocked(&["fd00:ec2::254"], BlockedRange::CloudMetadata(net("fd00:ec2::254/128")));
    }

    #[test]
    fn ipv6_link_local_is_refused() {
        assert_blocked(&["fe80::1", "febf:ffff::1"], BlockedRange::LinkLocal(net("fe80::/10")));
    }

    #[test]
    fn ipv6_site_local_is_refused_as_private() {
        assert_blocked(&["fec0::1"], BlockedRange::Private(net("fec0::/10")));
    }

    #[test]
    fn ipv6_multicast_is_refused() {
        assert_blocked(&["ff02::1", "ff05::1:3", "ff0e::101"], BlockedRange::Multicast(net("ff00::/8")));
    }

    #[test]
    fn ipv4_mapped_addresses_are_judged_by_their_ipv4_address() {
        assert_blocked(&["::ffff:127.0.0.1"], BlockedRange::Loopback(net("127.0.0.0/8")));
        assert_blocked(&["::ffff:10.0.0.1"], BlockedRange::Private(net("10.0.0.0/8")));
        assert_blocked(&["::ffff:169.254.169.254"], BlockedRange::CloudMetadata(net("169.254.169.254/32")));
        assert_eq!(classify(ip("::ffff:93.184.216.34")), None);
    }

    #[test]
    fn nat64_addresses_are_judged_by_their_ipv4_address() {
        assert_blocked(&["64:ff9b::127.0.0.1", "64:ff9b::7f00:1"], BlockedRange::Loopback(net("127.0.0.0/8")));
        assert_blocked(&["64:ff9b::192.168.1.1"], BlockedRange::Private(net("192.168.0.0/16")));
        assert_eq!(classify(ip("64:ff9b::93.184.216.34")), None);
    }

    #[test]
    fn local_use_nat64_addresses_are_refused_outright() {
        assert_blocked(&["64:ff9b:1::8.8.8.8"], BlockedRange::Reserved(net("64:ff9b:1::/48")));
    }

    #[test]
    fn ipv4_compatible_addresses_are_judged_by_their_ipv4_address() {
        assert_blocked(&["::127.0.0.1"], BlockedRange::Loopback(net("127.0.0.0/8")));
        assert_blocked(&["::10.0.0.1"], BlockedRange::Private(net("10.0.0.0/8")));
        assert_blocked(&["::0.0.0.2"], BlockedRange::ThisNetwork(net("0.0.0.0/8")));
    }

    #[test]
    fn ipv4_translated_addresses_are_judged_by_their_ipv4_address() {
        assert_blocked(&["::ffff:0:127.0.0.1"], BlockedRange::Loopback(net("127.0.0.0/8")));
    }

    #[test]
    fn six_to_four_addresses_are_judged_by_their_embedded_ipv4_address() {
        assert_blocked(&["2002:7f00:1::1"], BlockedRange::Loopback(net("127.0.0.0/8")));
        assert_blocked(&["2002:a9fe:a9fe::"], BlockedRange::CloudMetadata(net("169.254.169.254/32")));
        assert_eq!(classify(ip("2002:5db8:d822::1")), None);
    }

    #[test]
    fn teredo_and_discard_only_ipv6_are_refused_as_reserved() {
        assert!(matches!(classify(ip("2001:0:4136:e378::1")), Some(BlockedRange::Reserved(_))));
        assert!(matches!(classify(ip("100::1")), Some(BlockedRange::Reserved(_))));
    }

    #[test]
    fn public_addresses_pass() {
        for address in [
            "93.184.216.34",
            "8.8.8.8",
            "1.1.1.1",
            "11.0.0.1",
            "172.15.255.255",
            "172.32.0.1",
            "100.63.255.255",
            "100.128.0.1",
            "169.253.255.255",
            "169.255.0.1",
            "192.167.255.255",
            "192.169.0.1",
            "223.255.255.255",
            "2606:4700::1",
            "2001:4860:4860::8888",
            "2a00:1450:4001:80b::200e",
        ] {
            assert_eq!(classify(ip(address)), None, "{address}");
        }
    }

    #[test]
    fn the_range_is_described_in_a_user_facing_phrase() {
        assert_eq!(
            classify(ip("10.1.2.3")).map(|r| r.to_string()).as_deref(),
            Some("a private network address (10.0.0.0/8)")
        );
        assert_eq!(
            classify(ip("169.254.169.254")).map(|r| r.to_string()).as_deref(),
            Some("a cloud metadata service address (169.254.169.254)")
        );
        assert_eq!(
            classify(ip("fd00::1")).map(|r| r.to_string()).as_deref(),
            Some("a unique local IPv6 address (fc00::/7)")
        );
    }

    #[test]
    fn a_blocked_literal_is_explained_without_repeating_the_host() {
        let error = Guard::default().check_ip("127.0.0.1", ip("127.0.0.1")).expect_err("loopback");
        assert_eq!(
            error.to_string(),
            "127.0.0.1 is a loopback address (127.0.0.0/8). \
             Webhooks can only be sent to public internet addresses."
        );
    }

    #[test]
    fn a_blocked_name_says_what_it_resolved_to() {
        let error = Guard::default().check_ip("internal.example", ip("10.0.0.5")).expect_err("private");
        assert_eq!(
            error.to_string(),
            "internal.example resolves to 10.0.0.5, a private network address (10.0.0.0/8). \
             Webhooks can only be sent to public internet addresses."
        );
    }

    #[test]
    fn a_dns_failure_is_explained_in_a_sentence() {
        let error = dns_error("nope.example", "failed to lookup address information: Name or service not known");
        assert_eq!(
            error.to_string(),
            "The host nope.example could not be resolved (Name or service not known). Check the host name."
        );
    }

    #[test]
    fn an_allow_list_entry_can_be_a_host_an_ip_or_a_cidr() {
        let list = allow(&["localhost", " Receiver.Test. ", "10.0.0.0/8", "192.168.1.7", "::1", "[fd00::1]", ""]);
        assert!(list.allows_host("localhost"));
        assert!(list.allows_host("receiver.test"));
        assert!(list.allows_host("RECEIVER.test."));
        assert!(!list.allows_host("other.test"));
        assert!(list.allows_ip(ip("10.9.8.7")));
        assert!(list.allows_ip(ip("192.168.1.7")));
        assert!(!list.allows_ip(ip("192.168.1.8")));
        assert!(list.allows_ip(ip("::1")));
        assert!(list.allows_ip(ip("fd00::1")));
        assert!(list.allows_host("[::1]"));
    }

    #[test]
    fn a_cidr_with_host_bits_set_covers_its_whole_network() {
        assert!(allow(&["127.0.0.1/8"]).allows_ip(ip("127.9.9.9")));
    }

    #[test]
    fn an_allowed_ipv4_address_also_admits_its_mapped_form() {
        assert!(allow(&["127.0.0.1"]).allows_ip(ip("::ffff:127.0.0.1")));
    }

    #[test]
    fn an_empty_setting_gives_an_empty_allow_list() {
        let list = AllowList::from_setting("").expect("empty is valid");
        assert!(list.is_empty());
        assert!(!list.allows_host("localhost"));
    }

    #[test]
    fn the_comma_separated_setting_is_split_and_trimmed() {
        let list = AllowList::from_setting("localhost, 127.0.0.0/8 ,").expect("valid");
        assert!(list.allows_host("localhost"));
        assert!(list.allows_ip(ip("127.0.0.1")));
    }

    #[test]
    fn an_invalid_allow_list_entry_is_named_in_the_error() {
        for entry in ["localhost:8443", "*.example.com", "10.0.0.0/33", "https://x.test/"] {
            let error = AllowList::parse(&["localhost".into(), entry.into()]).expect_err(entry);
            assert_eq!(error.entry, entry);
            assert!(error.to_string().contains(&format!("\"{entry}\"")), "{error}");
        }
    }

    #[test]
    fn the_guard_admits_127_0_0_1_allowed_by_host() {
        let guard = Guard::new(allow(&["localhost"]));
        assert_eq!(guard.check_ip("localhost", ip("127.0.0.1")), Ok(()));
        assert!(guard.check_ip("127.0.0.1", ip("127.0.0.1")).is_err());
    }

    #[test]
    fn the_guard_admits_127_0_0_1_allowed_as_an_address() {
        let guard = Guard::new(allow(&["127.0.0.1"]));
        assert_eq!(guard.check_ip("127.0.0.1", ip("127.0.0.1")), Ok(()));
        assert!(guard.check_ip("127.0.0.2", ip("127.0.0.2")).is_err());
    }

    #[test]
    fn the_guard_admits_127_0_0_1_allowed_by_cidr() {
        let guard = Guard::new(allow(&["127.0.0.0/8"]));
        assert_eq!(guard.check_ip("anything.test", ip("127.0.0.1")), Ok(()));
        assert!(guard.check_ip("anything.test", ip("10.0.0.1")).is_err());
    }

    #[test]
    fn an_allowed_host_admits_whatever_it_resolves_to() {
        let guard = Guard::new(allow(&["receiver.test"]));
        assert_eq!(guard.check_ip("receiver.test", ip("10.0.0.1")), Ok(()));
        assert!(guard.check_ip("other.test", ip("10.0.0.1")).is_err());
    }

    #[test]
    fn the_guard_passes_public_addresses_without_an_allow_list() {
        let guard = Guard::default();
        assert_eq!(guard.check_ip("example.com", ip("93.184.216.34")), Ok(()));
        assert_eq!(guard.check_ip("example.com", ip("2606:4700::1")), Ok(()));
    }

    #[tokio::test]
    async fn resolving_a_loopback_literal_is_refused() {
        let error = Guard::default().resolve(&url("https://127.0.0.1/")).await.expect_err("loopback");
        assert!(matches!(error, GuardError::Blocked { range: BlockedRange::Loopback(_), .. }));
    }

    #[tokio::test]
    async fn resolving_obfuscated_ipv4_literals_is_refused() {
        for text in ["https://2130706433/", "https://0x7f.0.0.1/", "https://0177.0.0.1/", "https://[::ffff:7f00:1]/"] {
            let result = Guard::default().resolve(&url(text)).await;
            assert!(
                matches!(result, Err(GuardError::Blocked { range: BlockedRange::Loopback(_), .. })),
                "{text}: {result:?}"
            );
        }
    }

    #[tokio::test]
    async fn resolving_an_ipv6_loopback_literal_is_refused() {
        let result = Guard::default().resolve(&url("https://[::1]:8443/x")).await;
        assert!(matches!(result, Err(GuardError::Blocked { .. })));
    }

    #[tokio::test]
    async fn resolving_an_allowed_literal_returns_it_with_the_url_port() {
        let guard = Guard::new(allow(&["127.0.0.0/8"]));
        let addrs = guard.resolve(&url("https://127.0.0.1:8443/hook")).await.expect("allowed");
        assert_eq!(addrs, vec![SocketAddr::new(ip("127.0.0.1"), 8443)]);
    }

    #[tokio::test]
    async fn resolving_a_public_literal_needs_no_dns() {
        let addrs = Guard::default().resolve(&url("https://93.184.216.34/")).await.expect("public");
        assert_eq!(addrs, vec![SocketAddr::new(ip("93.184.216.34"), 443)]);
    }

    #[tokio::test]
    async fn resolving_localhost_is_refused_without_an_allow_list() {
        let error = Guard::default().resolve(&url("https://localhost/")).await.expect_err("loopback");
        match error {
            GuardError::Blocked { host, range, .. } => {
                assert_eq!(host, "localhost");
                assert!(matches!(range, BlockedRange::Loopback(_)));
            }
            other => panic!("expected Blocked, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn resolving_localhost_succeeds_when_the_host_is_allowed() {
        let guard = Guard::new(allow(&["localhost"]));
        let addrs = guard.resolve(&url("https://localhost:8443/")).await.expect("allowed");
        assert!(!addrs.is_empty());
        assert!(addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 8443), "{addrs:?}");
    }

    #[tokio::test]
    async fn the_reqwest_resolver_refuses_localhost() {
        let resolver = GuardedResolver(Arc::new(Guard::default()));
        let name: Name = "localhost".parse().expect("valid name");
        let error = match resolver.resolve(name).await {
            Ok(addrs) => panic!("expected a refusal, got {:?}", addrs.collect::<Vec<_>>()),
            Err(error) => error,
        };
        let guard_error = error.downcast_ref::<GuardError>().expect("a GuardError");
        assert!(matches!(guard_error, GuardError::Blocked { .. }));
    }

    #[tokio::test]
    async fn the_reqwest_resolver_returns_the_checked_addresses_when_allowed() {
        let resolver = GuardedResolver(Arc::new(Guard::new(allow(&["localhost"]))));
        let name: Name = "localhost".parse().expect("valid name");
        let addrs: Vec<SocketAddr> = match resolver.resolve(name).await {
            Ok(addrs) => addrs.collect(),
            Err(error) => panic!("expected addresses, got {error}"),
        };
        assert!(!addrs.is_empty());
        assert!(addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 0), "{addrs:?}");
    }

    #[tokio::test]
    async fn a_guarded_client_fails_before_connecting_to_localhost() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = guarded_client_builder(Arc::new(Guard::default())).build().expect("client");
        // Refused in the DNS step: no connection is opened.
        let error = client.get("https://localhost:9/").send().await.expect_err("refused");
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&error);
        let mut found = None;
        while let Some(current) = source {
            if let Some(guard_error) = current.downcast_ref::<GuardError>() {
                found = Some(guard_error.clone());
            }
            source = current.source();
        }
        assert!(matches!(found, Some(GuardError::Blocked { .. })), "{error:?}");
    }
}
