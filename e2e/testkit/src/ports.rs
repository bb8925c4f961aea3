//! Free loopback TCP ports for servers a test or bench starts, and waiting
//! until something listens.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// `N` distinct free loopback TCP ports (bound then released). They are
/// taken below the kernel's ephemeral range: a port from that range (what
/// binding port 0 gives) can meanwhile become the local port of one of the
/// caller's own outgoing connections, and the server then fails to listen
/// with "address in use".
pub fn free_ports<const N: usize>() -> std::io::Result<[u16; N]> {
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
        held.push(std::net::TcpListener::bind("127.0.0.1:0")?);
    }
    let mut ports = [0u16; N];
    for (port, listener) in ports.iter_mut().zip(&held) {
        *port = listener.local_addr()?.port();
    }
    Ok(ports)
}

/// Wait until a TCP connect to `addr` succeeds, at most `within`
/// (`TimedOut` after that).
pub async fn wait_listening(addr: SocketAddr, within: Duration) -> std::io::Result<()> {
    let deadline = Instant::now() + within;
    loop {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("nothing listening on {addr} after {within:?}"),
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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

    #[tokio::test]
    async fn wait_listening_sees_a_listener_and_times_out_without_one() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        wait_listening(addr, Duration::from_secs(5)).await.expect("listening");
        drop(listener);
        let err = wait_listening(addr, Duration::from_millis(100)).await.expect_err("nothing listens");
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    }
}
