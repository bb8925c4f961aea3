//! Small helpers shared by the benches: `/proc` readings, `RLIMIT_NOFILE`,
//! percentiles and medians, loopback source addresses.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// The machine's core count (what the scheduler lets us use).
pub fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// Resident memory of `pid` in KiB (`VmRSS` of `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// CPU seconds (user + system) `pid` has used (`/proc/<pid>/stat`).
pub fn cpu_secs(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime is field 14, stime field 15.
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = if hz > 0 { hz as f64 } else { 100.0 };
    Some((utime + stime) as f64 / hz)
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

/// Median of `v` (NaN when empty).
pub fn median(v: &[f64]) -> f64 {
    let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Nearest-rank percentile `p` (0..=100) of an ascending slice (NaN when empty).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
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

/// Wait until a TCP connect to `addr` succeeds, at most `within`.
pub async fn wait_listening(addr: SocketAddr, within: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    loop {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("nothing listening on {addr} after {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `N` distinct free loopback TCP ports (bound then released) for a server
/// the bench starts. They are taken below the kernel's ephemeral range: a
/// port from that range (what binding port 0 gives) can meanwhile become the
/// local port of one of the bench's own outgoing connections, and the
/// server then fails to listen with "address in use".
pub fn free_ports<const N: usize>() -> anyhow::Result<[u16; N]> {
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let (low, high) = (10_000u16, ephemeral_low.max(10_001));
    // Start somewhere different each time, so runs in a row and parallel
    // benches rarely try the same ports.
    let span = u32::from(high - low);
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let start = (seed ^ std::process::id().wrapping_mul(2_654_435_761)) % span;
    let mut held: Vec<std::net::TcpListener> = (0..span)
        .filter_map(|i| std::net::TcpListener::bind(("127.0.0.1", low + ((start + i) % span) as u16)).ok())
        .take(N)
        .collect();
    // No room below the ephemeral range (an unusual configuration): ask the kernel.
    while held.len() < N {
        held.push(std::net::TcpListener::bind("127.0.0.1:0").context("binding a free port")?);
    }
    let mut ports = [0u16; N];
    for (port, listener) in ports.iter_mut().zip(&held) {
        *port = listener.local_addr()?.port();
    }
    Ok(ports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_distinct_and_below_the_ephemeral_range() {
        let ports: [u16; 3] = free_ports().unwrap();
        assert!(ports[0] != ports[1] && ports[1] != ports[2] && ports[0] != ports[2], "{ports:?}");
        let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap();
        let low: u16 = low.split_whitespace().next().unwrap().parse().unwrap();
        assert!(low <= 10_001 || ports.iter().all(|p| *p < low), "{ports:?} vs ephemeral from {low}");
        for p in ports {
            std::net::TcpListener::bind(("127.0.0.1", p)).expect("still free");
        }
    }

    #[test]
    fn stats() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert!(loopback_addr("ws://10.0.0.1:80").is_err());
        assert_eq!(loopback_addr("ws://127.0.0.1:81/x").ok().map(|a| a.port()), Some(81));
        assert!(cpu_secs(std::process::id()).is_some());
        assert!(rss_kib(std::process::id()).is_some());
        assert_eq!(SourceIps::fixed(2).get(3), Ipv4Addr::new(127, 0, 0, 3));
    }
}
