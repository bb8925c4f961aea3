//! The bench's own child processes: the peers' libraries re-run by this executable
//! (`bench child-…`), each in a process of its own so `/proc/<pid>` shows its cost, and
//! stopped (SIGINT, then SIGKILL) when the bench is done with them.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context;

use crate::bench::target::stop_child;

/// Runs this executable again with `args` (a `child-…` subcommand), its logs at error level.
pub fn spawn_self(args: &[String]) -> anyhow::Result<Child> {
    let me = std::env::current_exe().context("locating the bench executable")?;
    Command::new(me)
        .args(args)
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting bench {}", args.first().map(String::as_str).unwrap_or("")))
}

/// [`spawn_self`] with stdin and stdout piped, for a child that talks to the bench.
pub fn spawn_self_piped(args: &[String]) -> anyhow::Result<Child> {
    let me = std::env::current_exe().context("locating the bench executable")?;
    Command::new(me)
        .args(args)
        .env("RUST_LOG", "error")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
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
