//! The bench's own child processes: the peers' libraries re-run by this executable
//! (`bench child-…`), each in a process of its own so `/proc/<pid>` shows its cost, and
//! stopped (SIGINT, then SIGKILL) when the bench is done with them.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use anyhow::Context;

use crate::bench::client::wait_listed;
use crate::bench::target::{stop_child, Target};

/// Runs this executable again with `args` (a `child-…` subcommand), its logs at error level.
pub fn spawn_self(args: &[String]) -> anyhow::Result<Child> {
    spawn(args, Stdio::null)
}

/// [`spawn_self`] with stdin and stdout piped, for a child that talks to the bench.
pub fn spawn_self_piped(args: &[String]) -> anyhow::Result<Child> {
    spawn(args, Stdio::piped)
}

fn spawn(args: &[String], io: fn() -> Stdio) -> anyhow::Result<Child> {
    let me = std::env::current_exe().context("locating the bench executable")?;
    Command::new(me)
        .args(args)
        .env("RUST_LOG", "error")
        .stdin(io())
        .stdout(io())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting bench {}", args.first().map(String::as_str).unwrap_or("")))
}

/// Children stopped, last first, when dropped.
pub struct Kids(pub Vec<Child>);
impl Drop for Kids {
    fn drop(&mut self) {
        for c in self.0.iter_mut().rev() {
            stop_child(c, Duration::from_secs(3));
        }
    }
}

/// Picture of a mock streamer child.
#[derive(Debug, Clone, Copy)]
pub struct Picture {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub bitrate: u32,
}

/// A mock streamer child (`bench child-streamer`) registered with `t` as `id`, kept in `kids`;
/// returns once the server lists it.
pub async fn start_streamer(kids: &mut Kids, t: &Target, id: &str, p: Picture) -> anyhow::Result<u32> {
    let args = [
        "child-streamer".to_string(),
        "--url".into(),
        t.streamer_url.clone(),
        "--id".into(),
        id.into(),
        "--width".into(),
        p.width.to_string(),
        "--height".into(),
        p.height.to_string(),
        "--fps".into(),
        p.fps.to_string(),
        "--bitrate".into(),
        p.bitrate.to_string(),
    ];
    start_listed(kids, t, id, &args).await
}

/// An SFU child (`bench child-sfu`) forwarding `streamer` as `id`, kept in `kids`; returns
/// once the server lists it.
pub async fn start_sfu(kids: &mut Kids, t: &Target, id: &str, streamer: &str) -> anyhow::Result<u32> {
    let args = [
        "child-sfu".to_string(),
        "--url".into(),
        t.sfu_url.clone(),
        "--id".into(),
        id.into(),
        "--streamer".into(),
        streamer.into(),
    ];
    start_listed(kids, t, id, &args).await
}

/// Spawn a child (kept in `kids`, so it is stopped on any error) and wait until `t` lists `id`.
/// Its stdin and stdout are piped for a [`HeapProbe`].
async fn start_listed(kids: &mut Kids, t: &Target, id: &str, args: &[String]) -> anyhow::Result<u32> {
    let child = spawn_self_piped(args)?;
    let pid = child.id();
    kids.0.push(child);
    wait_listed(&t.player_url, id, Duration::from_secs(20)).await?;
    Ok(pid)
}

/// Asks a streamer or SFU child for its allocator's figures: a line to its stdin, a
/// `HEAP <json>` line back (`bench child-streamer`/`child-sfu` answer on a thread of their
/// own, at once).
pub struct HeapProbe {
    to: ChildStdin,
    from: BufReader<ChildStdout>,
}

impl HeapProbe {
    /// Takes the pipes of a child started by [`start_streamer`] or [`start_sfu`].
    pub fn take(child: &mut Child) -> Option<HeapProbe> {
        Some(HeapProbe { to: child.stdin.take()?, from: BufReader::new(child.stdout.take()?) })
    }

    /// `None` once the child has gone or when it has no figures (not glibc).
    pub fn read(&mut self) -> Option<proto::rtc::AllocatorUsage> {
        writeln!(self.to).and_then(|()| self.to.flush()).ok()?;
        let mut line = String::new();
        self.from.read_line(&mut line).ok()?;
        heap_from_json(line.strip_prefix("HEAP ")?)
    }
}

/// This process's allocator figures as a child sends them to the bench: JSON of
/// [`proto::rtc::AllocatorUsage`], `null` without glibc.
pub fn heap_json() -> String {
    serde_json::to_string(&proto::rtc::allocator_usage()).unwrap_or_else(|_| "null".into())
}

/// [`heap_json`]'s figures back; `None` for `null` or anything else.
pub fn heap_from_json(json: &str) -> Option<proto::rtc::AllocatorUsage> {
    serde_json::from_str(json.trim()).ok()?
}
