//! Starting the SFU of a topology in-process.

use signalling::ServerHandle;

use crate::topology::{SfuSpec, TopologyError};

/// A running SFU.
pub struct RunningSfu {}

impl RunningSfu {
    pub async fn stop(self) {}
}

pub async fn start(_spec: &SfuSpec, _server: &ServerHandle) -> Result<RunningSfu, TopologyError> {
    Err(TopologyError::Sfu("the SFU is not available in this build yet".into()))
}
