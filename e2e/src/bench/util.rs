//! Small helpers shared by the benches: `RLIMIT_NOFILE`, loopback URLs and
//! source addresses, process samples; the `/proc` readers, medians,
//! percentiles and free ports come from `testkit`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{bail, Context};

pub use testkit::procfs::{cpu_secs, rss_kib};
pub use testkit::stats::{median, percentile};

/// Wait until a TCP connect to `addr` succeeds, at most `within`.
pub async fn wait_listening(addr: SocketAddr, within: Duration) -> anyhow::Result<()> {
    Ok(testkit::ports::wait_listening(addr, within).await?)
}

/// `N` distinct free loopback TCP ports below the ephemeral range (see
/// [`testkit::ports::free_ports`]).
pub fn free_ports<const N: usize>() -> anyhow::Result<[u16; N]> {
    testkit::ports::free_ports().context("binding a free port")
}

/// The machine's core count (what the scheduler lets us use).
pub fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// Raise `RLIMIT_NOFILE` (soft and, as root, hard) to at least `want`.
/// Returns the soft limit now in force. Children inherit it.
pub fn raise_nofile(want: u64) -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `lim` is a valid rlimit the call writes into.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 1024;
    }
    if lim.rlim_cur >= want {
        return lim.rlim_cur;
    }
    let raised = libc::rlimit { rlim_cur: want, rlim_max: lim.rlim_max.max(want) };
    // SAFETY: plain value argument.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
        return want;
    }
    // Not allowed to raise the hard limit: take what the hard limit allows.
    let capped = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
    // SAFETY: plain value argument.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &capped) } == 0 {
        return lim.rlim_max;
    }
    lim.rlim_cur
}

/// The address of a `ws://host:port/...` URL; only loopback (127.0.0.0/8) is allowed.
pub fn loopback_addr(url: &str) -> anyhow::Result<SocketAddr> {
    let u = url::Url::parse(url).with_context(|| format!("bad URL {url:?}"))?;
    if u.scheme() != "ws" {
        bail!("{url}: only ws:// URLs are supported by the benches");
    }
    let host = match u.host() {
        Some(url::Host::Ipv4(ip)) => ip,
        Some(url::Host::Domain("localhost")) => Ipv4Addr::LOCALHOST,
        _ => bail!("{url}: the benches only target loopback IPv4 addresses (127.0.0.0/8)"),
    };
    if !host.is_loopback() {
        bail!("{url}: the benches only target loopback addresses (127.0.0.0/8)");
    }
    let port = u.port().unwrap_or(80);
    Ok(SocketAddr::new(IpAddr::V4(host), port))
}

/// Loopback source addresses 127.0.0.2, 127.0.0.3, … handed out round-robin,
/// so that more client sockets fit than one address has ephemeral ports.
#[derive(Debug, Clone)]
pub struct SourceIps {
    count: u32,
}

impl SourceIps {
    /// Enough addresses for `sockets` sockets at about 4,000 each (at least 2): the kernel's
    /// search for a free port in `bind` slows down as an address fills up.
    pub fn for_sockets(sockets: usize) -> SourceIps {
        SourceIps { count: (sockets / 4_000 + 2).clamp(2, 250) as u32 }
    }
    /// A fixed number of addresses (1..=250).
    pub fn fixed(count: u32) -> SourceIps {
        SourceIps { count: count.clamp(1, 250) }
    }
    pub fn get(&self, i: usize) -> Ipv4Addr {
        let k = (i as u32) % self.count;
        Ipv4Addr::new(127, 0, 0, 2 + k as u8)
    }
}

/// Samples CPU seconds and peak RSS of a few processes until stopped.
#[derive(Debug, Clone, Default)]
pub struct ProcSample {
    pub cpu_secs: Option<f64>,
    pub rss_kib: Option<u64>,
    pub peak_rss_kib: Option<u64>,
}

impl ProcSample {
    pub fn read(pid: u32) -> ProcSample {
        let rss = rss_kib(pid);
        ProcSample { cpu_secs: cpu_secs(pid), rss_kib: rss, peak_rss_kib: rss }
    }
    /// Update with a fresh reading (keeps the last good values if the process is gone).
    pub fn update(&mut self, pid: u32) {
        if let Some(c) = cpu_secs(pid) {
            self.cpu_secs = Some(c);
        }
        if let Some(r) = rss_kib(pid) {
            self.rss_kib = Some(r);
            self.peak_rss_kib = Some(self.peak_rss_kib.unwrap_or(0).max(r));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // free_ports, median, percentile, cpu_secs and rss_kib are tested in testkit.
    #[test]
    fn loopback_urls_and_source_addresses() {
        assert!(loopback_addr("ws://10.0.0.1:80").is_err());
        assert_eq!(loopback_addr("ws://127.0.0.1:81/x").ok().map(|a| a.port()), Some(81));
        assert_eq!(SourceIps::fixed(2).get(3), Ipv4Addr::new(127, 0, 0, 3));
    }
}
