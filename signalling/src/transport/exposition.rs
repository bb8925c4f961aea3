//! The `GET /metrics` document: the transport's own [`Metrics`](crate::metrics::Metrics),
//! the router's counters and the live state (connections, queues, tasks),
//! rendered on demand in the Prometheus text format.

use std::sync::atomic::Ordering;

use proto::close::Close;

use super::Shared;
use crate::metrics::Exposition;
use crate::registry::Role;

impl Shared {
    /// The Prometheus exposition for `GET /metrics`.
    pub fn render_metrics(&self) -> String {
        let (counters, registry_len) = self.hub.with_router(|r| (r.counters().clone(), r.registry().len()));
        let (queued, deepest) = self.hub.queue_depths();
        let mut e = Exposition::default();
        e.labelled(
            "signalling_connections",
            "gauge",
            "Open WebSocket connections, by role.",
            "role",
            Role::ALL.iter().map(|r| (r.as_str(), self.gate.count(*r) as f64)),
        );
        e.single("signalling_registry_entries", "gauge", "Connections the router knows.", registry_len as f64);
        e.transport(&self.metrics);
        e.single("signalling_messages_received_total", "counter", "Frames received.", counters.received as f64);
        let by_type = |m: &std::collections::BTreeMap<&'static str, u64>| {
            m.iter().map(|(k, v)| (*k, *v as f64)).collect::<Vec<_>>()
        };
        e.labelled(
            "signalling_messages_in_total",
            "counter",
            "Valid messages received, by type.",
            "type",
            by_type(&counters.received_by_type),
        );
        e.labelled(
            "signalling_messages_out_total",
            "counter",
            "Messages sent or forwarded, by type.",
            "type",
            by_type(&counters.sent_by_type),
        );
        e.single(
            "signalling_forwards_total",
            "counter",
            "Messages forwarded between peers.",
            counters.forwarded as f64,
        );
        let mut drops: std::collections::BTreeMap<&'static str, u64> = counters.dropped.clone();
        for (k, v) in self.metrics.drops.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            *drops.entry(k).or_insert(0) += v;
        }
        *drops.entry(Close::QueueFull.label()).or_insert(0) += self.hub.queue_full_closes();
        e.labelled(
            "signalling_drops_total",
            "counter",
            "Frames dropped or connections ended, by reason.",
            "reason",
            by_type(&drops),
        );
        let failed = counters.sent_by_type.get("subscribeFailed").copied().unwrap_or(0);
        e.single("signalling_subscribe_failures_total", "counter", "subscribeFailed answers.", failed as f64);
        e.single("signalling_queued_frames", "gauge", "Frames waiting in send queues, all connections.", queued as f64);
        e.single("signalling_queue_depth_max", "gauge", "Frames waiting in the deepest send queue.", deepest as f64);
        e.single(
            "signalling_tasks",
            "gauge",
            "Live server tasks (listeners and connections).",
            self.tasks.len() as f64,
        );
        e.single(
            "signalling_draining",
            "gauge",
            "1 while draining.",
            f64::from(u8::from(self.refusing_upgrades.load(Ordering::Relaxed))),
        );
        if let Some(link) = &self.cluster {
            let st = &link.stats;
            let n = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed) as f64;
            e.labelled(
                "signalling_cluster_messages_total",
                "counter",
                "Messages between this node and the others over Redis, by direction.",
                "direction",
                [("out", n(&st.sent)), ("in", n(&st.received))],
            );
            e.single(
                "signalling_cluster_lost_messages_total",
                "counter",
                "Messages to other nodes lost (bus queue full, or Redis down when published).",
                n(&st.dropped) + self.hub.to_nodes_dropped() as f64,
            );
            e.single("signalling_cluster_bus_errors_total", "counter", "Failed Redis operations.", n(&st.bus_errors));
            e.single(
                "signalling_cluster_junk_total",
                "counter",
                "Bus messages dropped as junk or of another version.",
                n(&st.junk),
            );
            e.single(
                "signalling_cluster_bus_rtt_seconds",
                "gauge",
                "Round trip of the last heartbeat (one Redis script).",
                n(&st.rtt_micros) / 1e6,
            );
            e.single(
                "signalling_cluster_bus_up",
                "gauge",
                "1 while Redis answers.",
                f64::from(u8::from(link.bus_up())),
            );
            e.single(
                "signalling_cluster_nodes",
                "gauge",
                "Live nodes, this one included.",
                (link.nodes().len().max(1)) as f64,
            );
        }
        e.finish()
    }
}
