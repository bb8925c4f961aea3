//! Giving the memory of closed peer connections back to the system.
//!
//! A peer connection allocates on every thread of the runtime (SCTP, DTLS,
//! SRTP, interceptors); glibc's malloc keeps a thread's freed memory in that
//! thread's arena for reuse, so a long-lived sender's resident memory creeps
//! up join after join although its heap does not (heaptrack of mock-streamer
//! after 1,560 joins: 8.8 MB live, 7.6 MB of it the H.264 encoder, ~20 KB
//! per-join sites; RSS grew 0.62 MB per 1,000 joins). `malloc_trim` returns
//! the arenas' free pages. It walks every arena, so it runs at most once a
//! second, on a thread of its own, and only after a peer connection closed.
//!
//! [`allocator_usage`] says how much of the process's memory is live heap and
//! how much the allocator holds freed, so a bench can tell a growing heap
//! (a leak) from a growing allocator (fragmentation) without a profiler.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Something closed since the last trim.
static PENDING: AtomicBool = AtomicBool::new(false);

/// Ask for the process's free heap pages to be returned to the system soon
/// (call when a peer connection closed). Cheap: sets a flag.
pub fn release_freed_memory() {
    PENDING.store(true, Ordering::Relaxed);
    static TRIMMER: OnceLock<()> = OnceLock::new();
    TRIMMER.get_or_init(|| {
        let spawned = std::thread::Builder::new().name("malloc-trim".into()).spawn(|| loop {
            std::thread::sleep(Duration::from_secs(1));
            if PENDING.swap(false, Ordering::Relaxed) {
                trim();
            }
        });
        if let Err(e) = spawned {
            tracing::debug!(error = %e, "no malloc-trim thread: freed memory stays with the allocator");
        }
    });
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim only inspects and releases glibc's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}

/// What the allocator holds at one moment, in bytes (glibc's `mallinfo2`, summed over
/// every arena).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocatorUsage {
    /// Allocated and not yet freed: the live heap, wherever it lies.
    pub in_use: u64,
    /// Freed, and kept by the allocator in its arenas for reuse. Resident only where its
    /// pages are still touched: `malloc_trim` gives whole free pages back.
    pub free_held: u64,
}

/// The process's memory in one line for a periodic stats log, so an operator who leaves a
/// streamer or an SFU running for days sees whether it grows and whether it is live heap:
/// `memory: resident 24.6 MB, live heap 9.0 MB, allocator's free lists 24.2 MB` (free lists
/// count what a trim gave back to the system too: they are resident only in part).
pub fn memory_line() -> String {
    let mb = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    let mut parts = Vec::new();
    if let Some(rss) = resident_memory() {
        parts.push(format!("resident {:.1} MB", mb(rss.now)));
    }
    if let Some(a) = allocator_usage() {
        parts.push(format!("live heap {:.1} MB, allocator's free lists {:.1} MB", mb(a.in_use), mb(a.free_held)));
    }
    if parts.is_empty() {
        "memory: not available on this platform".to_string()
    } else {
        format!("memory: {}", parts.join(", "))
    }
}

/// This process's resident memory, now and at its peak, in bytes (`VmRSS` and `VmHWM` of
/// `/proc/self/status`; `None` off Linux). For the stats' memory line and a load agent's usage.
pub fn resident_memory() -> Option<ResidentMemory> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let bytes = |key: &str| -> Option<u64> {
        let kib: u64 = status.lines().find_map(|l| l.strip_prefix(key))?.split_whitespace().next()?.parse().ok()?;
        Some(kib * 1024)
    };
    Some(ResidentMemory { now: bytes("VmRSS:")?, peak: bytes("VmHWM:")? })
}

/// See [`resident_memory`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResidentMemory {
    pub now: u64,
    pub peak: u64,
}

/// The allocator's figures now; `None` where the allocator is not glibc's.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn allocator_usage() -> Option<AllocatorUsage> {
    // SAFETY: mallinfo2 only reads glibc's arena counters (taking each arena's lock).
    let m = unsafe { libc::mallinfo2() };
    // Blocks mapped on their own (`hblkhd`) are live heap too.
    Some(AllocatorUsage { in_use: (m.uordblks + m.hblkhd) as u64, free_held: m.fordblks as u64 })
}

/// The allocator's figures now; `None` where the allocator is not glibc's.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn allocator_usage() -> Option<AllocatorUsage> {
    None
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::*;

    #[test]
    fn a_live_allocation_shows_in_use_until_freed() {
        let before = allocator_usage().expect("glibc").in_use;
        // Above glibc's mmap threshold, so its own mapping: counted exactly, whatever other
        // test threads allocate meanwhile in small chunks.
        let block = vec![1u8; 64 << 20];
        let during = allocator_usage().expect("glibc").in_use;
        assert!(during >= before + (60 << 20), "in use {before} → {during} with 64 MiB live");
        drop(std::hint::black_box(block));
        let after = allocator_usage().expect("glibc").in_use;
        assert!(after + (60 << 20) <= during, "in use {during} → {after} after freeing 64 MiB");
    }

    #[test]
    fn the_memory_line_has_every_figure() {
        let line = memory_line();
        assert!(line.starts_with("memory: resident "), "{line}");
        assert!(line.contains(" MB, live heap ") && line.contains("free lists"), "{line}");
        assert!(resident_memory().is_some_and(|r| r.now > 1 << 20 && r.peak >= r.now));
    }
}
