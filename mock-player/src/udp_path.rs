//! The player's UDP path: what its peer connection's sockets go through.
//!
//! webrtc-rs 0.21 creates every socket of a connection through its
//! [`Runtime`]; [`PlayerRuntime`] is tokio's runtime with each UDP socket
//! wrapped in a [`PlayerSocket`], which
//! - applies the player's [`Impairment`] (`--impair`) to each direction,
//!   datagram by datagram ([`ImpairedLink`] decides, the socket holds and
//!   releases): outgoing datagrams wait in a queue a task drains, incoming
//!   ones wait in the socket until due;
//! - shows every datagram to [`TurnAllocations`], which notices a TURN
//!   server refusing our credentials.
//!
//! Connections without impairment and without ICE servers use tokio's
//! runtime unwrapped (no cost for the common case).

use std::collections::VecDeque;
use std::future::Future;
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use proto::impairment::{ImpairedLink, Impairment};
use tokio::sync::mpsc;
use webrtc::runtime::{
    AsyncInterval, AsyncTcpListener, AsyncTcpStream, AsyncUdpSocket, JoinHandle, RecvMeta, Runtime, TokioRuntime,
    Transmit,
};

use crate::turn_allocations::TurnAllocations;

/// tokio's runtime with the player's sockets (see the module doc).
#[derive(Debug)]
pub struct PlayerRuntime {
    tokio: TokioRuntime,
    impairment: Option<Impairment>,
    turn: Arc<Mutex<TurnAllocations>>,
}

impl PlayerRuntime {
    pub fn new(impairment: Option<Impairment>, turn: Arc<Mutex<TurnAllocations>>) -> Self {
        PlayerRuntime { tokio: TokioRuntime, impairment: impairment.filter(|i| !i.is_none()), turn }
    }
}

impl Runtime for PlayerRuntime {
    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) -> Box<dyn JoinHandle> {
        self.tokio.spawn(future)
    }

    fn spawn_reactor(&self, pool: usize, future: Pin<Box<dyn Future<Output = ()> + Send>>) -> Box<dyn JoinHandle> {
        self.tokio.spawn_reactor(pool, future)
    }

    fn wrap_udp_socket(&self, socket: std::net::UdpSocket) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        let inner = self.tokio.wrap_udp_socket(socket)?;
        Ok(Arc::new(PlayerSocket::new(inner, self.impairment, self.turn.clone())))
    }

    fn wrap_tcp_listener(&self, listener: std::net::TcpListener) -> io::Result<Arc<dyn AsyncTcpListener>> {
        self.tokio.wrap_tcp_listener(listener)
    }

    fn connect_tcp<'a>(
        &'a self,
        remote_addr: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = io::Result<Arc<dyn AsyncTcpStream>>> + Send + 'a>> {
        self.tokio.connect_tcp(remote_addr)
    }

    fn resolve_host<'a>(
        &'a self,
        host: &'a str,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'a>> {
        self.tokio.resolve_host(host)
    }

    fn now(&self) -> std::time::Instant {
        self.tokio.now()
    }

    fn sleep(&self, duration: std::time::Duration) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        self.tokio.sleep(duration)
    }

    fn interval(&self, period: std::time::Duration) -> Box<dyn AsyncInterval> {
        self.tokio.interval(period)
    }

    fn block_on(&self, future: Pin<Box<dyn Future<Output = ()> + '_>>) {
        self.tokio.block_on(future)
    }

    fn yield_now(&self) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        self.tokio.yield_now()
    }

    fn name(&self) -> &'static str {
        "tokio (mock-player UDP path)"
    }
}

/// A datagram held until `at`.
#[derive(Debug)]
struct Held {
    at: Instant,
    data: Vec<u8>,
    addr: SocketAddr,
    dst_ip: Option<IpAddr>,
}

/// The receive side's state.
struct Receiving {
    link: Option<ImpairedLink>,
    held: VecDeque<Held>,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    /// One read of the inner socket (room for GRO-coalesced datagrams).
    buf: Vec<u8>,
}

/// A UDP socket on the player's path (see the module doc).
pub struct PlayerSocket {
    inner: Arc<dyn AsyncUdpSocket>,
    turn: Arc<Mutex<TurnAllocations>>,
    /// With impairment: the outgoing link and the queue its task drains.
    sending: Option<(Mutex<ImpairedLink>, mpsc::UnboundedSender<Held>)>,
    receiving: Mutex<Receiving>,
}

impl std::fmt::Debug for PlayerSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlayerSocket").field("inner", &self.inner).field("impaired", &self.sending.is_some()).finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl PlayerSocket {
    fn new(inner: Arc<dyn AsyncUdpSocket>, impairment: Option<Impairment>, turn: Arc<Mutex<TurnAllocations>>) -> Self {
        let sending = impairment.map(|profile| {
            let (tx, mut rx) = mpsc::unbounded_channel::<Held>();
            let out = inner.clone();
            // Ends when the socket (the queue's sender) is dropped.
            tokio::spawn(async move {
                while let Some(h) = rx.recv().await {
                    tokio::time::sleep_until(tokio::time::Instant::from_std(h.at)).await;
                    if let Err(e) = out.send_to(&h.data, h.addr).await {
                        tracing::trace!(error = %e, "impaired send");
                    }
                }
            });
            (Mutex::new(ImpairedLink::new(profile)), tx)
        });
        let receiving = Receiving {
            link: impairment.map(ImpairedLink::new),
            held: VecDeque::new(),
            timer: None,
            buf: vec![0; 64 * 1024],
        };
        PlayerSocket { inner, turn, sending, receiving: Mutex::new(receiving) }
    }
}

impl AsyncUdpSocket for PlayerSocket {
    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn poll_send(&self, cx: &mut Context<'_>, transmit: &Transmit<'_>) -> Poll<io::Result<usize>> {
        lock(&self.turn).on_sent(transmit.contents);
        let Some((link, queue)) = &self.sending else { return self.inner.poll_send(cx, transmit) };
        let len = transmit.contents.len();
        let at = lock(link).admit(Instant::now(), len, rand::random(), rand::random());
        if let Some(at) = at {
            let held = Held { at, data: transmit.contents.to_vec(), addr: transmit.destination, dst_ip: None };
            if queue.send(held).is_err() {
                return Poll::Ready(Err(io::Error::other("impaired send queue closed")));
            }
        }
        // Lost datagrams are "sent": the network dropped them, not the socket.
        Poll::Ready(Ok(len))
    }

    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let mut r = lock(&self.receiving);
        if r.link.is_none() {
            drop(r);
            let polled = self.inner.poll_recv(cx, bufs, meta);
            if let Poll::Ready(Ok(n)) = &polled {
                let mut turn = lock(&self.turn);
                for (buf, m) in bufs.iter().zip(meta.iter()).take(*n) {
                    let stride = m.stride.max(1);
                    buf[..m.len].chunks(stride).for_each(|d| turn.on_received(d));
                }
            }
            return polled;
        }
        loop {
            let now = Instant::now();
            if r.held.front().is_some_and(|h| h.at <= now) {
                let (Some(h), Some(buf), Some(m)) = (r.held.pop_front(), bufs.first_mut(), meta.first_mut()) else {
                    return Poll::Ready(Ok(0));
                };
                let n = h.data.len().min(buf.len());
                buf[..n].copy_from_slice(&h.data[..n]);
                *m = RecvMeta::default();
                m.addr = h.addr;
                m.len = n;
                m.stride = n.max(1);
                m.dst_ip = h.dst_ip;
                return Poll::Ready(Ok(1));
            }
            let mut read = [RecvMeta::default()];
            let polled = {
                let Receiving { buf, .. } = &mut *r;
                let mut slices = [IoSliceMut::new(buf)];
                self.inner.poll_recv(cx, &mut slices, &mut read)
            };
            match polled {
                Poll::Ready(Ok(0)) => continue,
                Poll::Ready(Ok(_)) => {
                    let m = read[0];
                    let stride = m.stride.max(1);
                    let Receiving { buf, link, held, .. } = &mut *r;
                    let mut turn = lock(&self.turn);
                    for d in buf[..m.len.min(buf.len())].chunks(stride) {
                        turn.on_received(d);
                        let Some(link) = link.as_mut() else { continue };
                        if let Some(at) = link.admit(now, d.len(), rand::random(), rand::random()) {
                            held.push_back(Held { at, data: d.to_vec(), addr: m.addr, dst_ip: m.dst_ip });
                        }
                    }
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => break,
            }
        }
        // Nothing due: wake when the first held datagram is.
        let Some(at) = r.held.front().map(|h| h.at) else { return Poll::Pending };
        let deadline = tokio::time::Instant::from_std(at);
        match r.timer.as_mut() {
            Some(t) => t.as_mut().reset(deadline),
            None => r.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
        }
        if let Some(t) = r.timer.as_mut() {
            if t.as_mut().poll(cx).is_ready() {
                cx.waker().wake_by_ref();
            }
        }
        Poll::Pending
    }
}
