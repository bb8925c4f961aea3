//! Load generation across machines: `mock-player agent` processes wait for
//! runs; a coordinator (`mock-player --redis-url … --agents N`) splits the
//! players over them by capacity, starts every ramp at one agreed moment,
//! shows live progress and merges every player's result into one
//! single-run [`LoadReport`](crate::LoadReport). Everything travels over Redis.
//!
//! - [`plan`]: who runs which players (pure).
//! - [`clock`]: each agent's clock offset from the coordinator (pure).
//! - [`merge`]: one report from many agents, "agent lost" accounting (pure).
//! - [`bus`]: Redis keys and the versioned JSON messages.
//! - [`wire`]: player configuration and results across the bus.
//! - [`agent`], [`coordinator`]: the two processes' loops.
//! - [`metrics`], [`process`]: Prometheus endpoint; CPU and memory of this process.

pub mod agent;
pub mod bus;
pub mod clock;
pub mod coordinator;
pub mod merge;
pub mod metrics;
pub mod plan;
pub mod process;
pub mod wire;

pub use agent::{run_agent, AgentConfig};
pub use coordinator::{run_coordinator, CoordinatorConfig};
pub use merge::DistributedReport;
