//! Readings from Linux `/proc`: resident memory, CPU seconds of a process
//! or of its threads with a given name, open file descriptors.

use std::path::Path;

/// Resident memory of `pid` in KiB (`VmRSS` of `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Resident memory of this process in bytes.
pub fn self_rss_bytes() -> Option<u64> {
    rss_kib(std::process::id()).map(|kib| kib * 1024)
}

/// CPU seconds (user + system) `pid` has used (`/proc/<pid>/stat`).
pub fn cpu_secs(pid: u32) -> Option<f64> {
    stat_cpu_secs(&Path::new("/proc").join(pid.to_string()).join("stat"))
}

/// CPU seconds used so far by this process's threads named `name`
/// (`/proc/self/task/*/comm`); 0 when there are none.
pub fn thread_cpu_secs(name: &str) -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else { return 0.0 };
    dir.flatten()
        .filter(|entry| std::fs::read_to_string(entry.path().join("comm")).is_ok_and(|c| c.trim() == name))
        .filter_map(|entry| stat_cpu_secs(&entry.path().join("stat")))
        .sum()
}

/// Open file descriptors of this process (`/proc/self/fd`).
pub fn open_fds() -> Option<usize> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count())
}

/// utime + stime of a `stat` file, in seconds.
fn stat_cpu_secs(path: &Path) -> Option<f64> {
    let s = std::fs::read_to_string(path).ok()?;
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime is field 14, stime field 15.
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / clock_ticks_per_sec())
}

fn clock_ticks_per_sec() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        hz as f64
    } else {
        100.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_of_this_process() {
        assert!(cpu_secs(std::process::id()).is_some());
        assert!(rss_kib(std::process::id()).is_some_and(|k| k > 0));
        assert!(self_rss_bytes().is_some_and(|b| b > 0));
        assert!(open_fds().is_some_and(|n| n >= 3));
        assert_eq!(thread_cpu_secs("no-such-thread-name"), 0.0);
    }
}
