//! Starting the SFU of a topology in-process.

use std::time::Duration;

use sfu_stub::{SfuConfig, SfuHandle};
use signalling::ServerHandle;

use crate::topology::{SfuSpec, TopologyError};

/// A running SFU.
pub struct RunningSfu {
    pub handle: SfuHandle,
}

impl RunningSfu {
    pub async fn stop(self) {
        self.handle.stop().await;
    }
}

/// Start the SFU against `server`'s SFU port.
pub async fn start(spec: &SfuSpec, server: &ServerHandle) -> Result<RunningSfu, TopologyError> {
    let config = SfuConfig {
        url: format!("ws://{}", server.sfu_addr()),
        id: spec.id.clone(),
        streamer: spec.streamer.clone(),
        default_layer: spec.default_layer,
        list_interval: Duration::from_millis(250),
        reconnect_min: Duration::from_millis(100),
        reconnect_max: Duration::from_secs(2),
        ..SfuConfig::default()
    };
    let handle = sfu_stub::spawn(config).map_err(|e| TopologyError::Sfu(e.to_string()))?;
    Ok(RunningSfu { handle })
}
