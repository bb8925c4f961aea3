//! The SFU of a topology: its description and starting it in-process.
//! (It knows nothing of the rest of a topology: `topology` uses it.)

use std::time::Duration;

use serde::Deserialize;
use sfu_stub::{SfuConfig, SfuError, SfuHandle};
use signalling::ServerHandle;

/// The SFU, when there is one.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SfuSpec {
    pub id: String,
    /// The streamer it forwards; `None` = the first one listed.
    pub streamer: Option<String>,
    /// The simulcast layer (0 = lowest resolution) players get until they
    /// ask for another; `None` = the highest.
    pub default_layer: Option<usize>,
    /// `sfu-stub --renew-upstream-after`; `None`: its default.
    pub renew_upstream_after: Option<usize>,
}

impl Default for SfuSpec {
    fn default() -> Self {
        SfuSpec { id: "SFU".into(), streamer: None, default_layer: None, renew_upstream_after: None }
    }
}

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
pub async fn start(spec: &SfuSpec, server: &ServerHandle) -> Result<RunningSfu, SfuError> {
    let config = SfuConfig {
        url: format!("ws://{}", server.sfu_addr()),
        id: spec.id.clone(),
        streamer: spec.streamer.clone(),
        default_layer: spec.default_layer,
        list_interval: Duration::from_millis(250),
        reconnect_min: Duration::from_millis(100),
        reconnect_max: Duration::from_secs(2),
        renew_upstream_after: spec.renew_upstream_after.unwrap_or(SfuConfig::default().renew_upstream_after),
        ..SfuConfig::default()
    };
    let handle = sfu_stub::spawn(config)?;
    Ok(RunningSfu { handle })
}
