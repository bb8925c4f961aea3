//! CPU time and memory of this process, from `/proc/self` (Linux; zero
//! elsewhere), for the per-agent table of a distributed report.

/// CPU seconds (user + system) this process has used.
pub fn cpu_secs() -> f64 {
    // Fields 14 and 15 of /proc/self/stat, after the parenthesised command name,
    // in clock ticks (USER_HZ, 100 on Linux's supported architectures).
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return 0.0 };
    let Some((_, rest)) = stat.rsplit_once(')') else { return 0.0 };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // `rest` starts at field 3 (state), so field n is at n - 3.
    (ticks(14 - 3) + ticks(15 - 3)) / 100.0
}

/// (resident now, peak resident) in bytes.
pub fn rss_bytes() -> (u64, u64) {
    proto::rtc::resident_memory().map_or((0, 0), |r| (r.now, r.peak))
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(target_os = "linux")]
    fn reads_this_process() {
        let before = super::cpu_secs();
        let mut x = 0u64;
        for i in 0..30_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(super::cpu_secs() >= before);
        let (rss, peak) = super::rss_bytes();
        assert!(rss > 0 && peak >= rss, "{rss} {peak}");
    }
}
