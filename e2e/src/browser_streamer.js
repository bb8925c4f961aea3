// A Pixel Streaming streamer in a browser page: libwebrtc (Chromium's) sends
// a canvas to every player, so the sender's rate control and encoder are ones
// nobody here wrote. It speaks the streamer side of the signalling protocol
// (identify, config, playerConnected → offer, answer, iceCandidate,
// playerDisconnected, streamerDataChannels from an SFU) and only ever offers
// 127.0.0.1 candidates. The picture is per-frame noise, hard to compress, so
// that congestion control, not the content, sets the bitrate.
//
// Injected by `browser_streamer.rs` with `__URL__`, `__ID__`, `__WIDTH__`,
// `__HEIGHT__` and `__FPS__` replaced. State for the test is on `window.ps`.
(() => {
  const url = "__URL__", id = "__ID__", width = __WIDTH__, height = __HEIGHT__, fps = __FPS__;
  const ps = (window.ps = { registered: false, peers: new Map(), offers: 0, answers: 0, errors: [], frames: 0 });
  const fail = (what, e) => ps.errors.push(`${what}: ${e && e.message ? e.message : e}`);

  // ---- the picture: noise, redrawn every frame, with a frame counter ----
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  document.body.appendChild(canvas);
  const ctx = canvas.getContext("2d");
  const image = ctx.createImageData(width, height);
  const pixels = new Uint32Array(image.data.buffer);
  let seed = 0x9e3779b9;
  function draw() {
    // xorshift32: cheap enough for every pixel of every frame.
    let x = seed;
    for (let i = 0; i < pixels.length; i++) {
      x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
      pixels[i] = x | 0xff000000;
    }
    seed = x;
    ctx.putImageData(image, 0, 0);
    ctx.fillStyle = "#fff";
    ctx.font = "32px monospace";
    ctx.fillText(`frame ${ps.frames++}`, 16, 48);
  }
  draw();
  setInterval(draw, 1000 / fps);
  const track = canvas.captureStream(fps).getVideoTracks()[0];
  // "detail": keep the resolution and let the frame rate give (libwebrtc's
  // quality scaler would otherwise halve noise to 320x180, where the content
  // and not the estimate sets the bitrate).
  track.contentHint = "detail";

  // ---- signalling ----
  const ws = new WebSocket(url);
  const send = (m) => ws.readyState === WebSocket.OPEN && ws.send(JSON.stringify(m));
  const loopback = (c) => c.candidate.split(" ")[4] === "127.0.0.1";

  async function playerConnected(m) {
    const playerId = m.playerId;
    closePeer(playerId);
    const pc = new RTCPeerConnection({ iceServers: [] });
    ps.peers.set(playerId, { pc, sfu: !!m.sfu, channels: [] });
    pc.addTransceiver(track, { direction: "sendonly", sendEncodings: [{ maxBitrate: 3_000_000 }] });
    if (m.dataChannel) ps.peers.get(playerId).channels.push(pc.createDataChannel("datachannel"));
    pc.onicecandidate = (e) => {
      if (e.candidate && e.candidate.candidate && loopback(e.candidate)) {
        send({ type: "iceCandidate", playerId, candidate: e.candidate.toJSON() });
      }
    };
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    send({ type: "offer", playerId, sdp: offer.sdp });
    ps.lastOffer = offer.sdp;
    ps.offers++;
  }

  function closePeer(playerId) {
    const peer = ps.peers.get(playerId);
    if (peer) peer.pc.close();
    ps.peers.delete(playerId);
  }

  ws.onmessage = async (event) => {
    let m;
    try { m = JSON.parse(event.data); } catch (e) { return fail("message", e); }
    try {
      switch (m.type) {
        case "identify": send({ type: "endpointId", id, protocolVersion: "1.3.0" }); break;
        case "endpointIdConfirm": ps.registered = true; ps.committedId = m.committedId; break;
        case "ping": send({ type: "pong", time: m.time }); break;
        case "playerConnected": await playerConnected(m); break;
        case "playerDisconnected": closePeer(m.playerId); break;
        case "answer": {
          const peer = ps.peers.get(m.playerId);
          ps.lastAnswer = m.sdp;
          if (peer) { await peer.pc.setRemoteDescription({ type: "answer", sdp: m.sdp }); ps.answers++; }
          break;
        }
        case "iceCandidate": {
          const peer = ps.peers.get(m.playerId);
          if (peer && m.candidate && m.candidate.candidate && loopback(m.candidate)) await peer.pc.addIceCandidate(m.candidate);
          break;
        }
        case "streamerDataChannels": {
          // The SFU's player's channels, pre-negotiated on the SFU's connection.
          const peer = ps.peers.get(m.sfuId);
          if (!peer) break;
          const ids = m.sendStreamId === m.recvStreamId ? [m.sendStreamId] : [m.sendStreamId, m.recvStreamId];
          for (const channelId of ids) {
            peer.channels.push(peer.pc.createDataChannel(`datachannel-${m.playerId}`, { negotiated: true, id: channelId }));
          }
          break;
        }
      }
    } catch (e) { fail(m.type, e); }
  };
  ws.onerror = () => fail("websocket", "error");
  ws.onclose = (e) => { ps.registered = false; fail("websocket closed", e.code); };

  // What the sender sends each peer: outbound video and the bandwidth estimate.
  ps.senderStats = async () => {
    const out = [];
    for (const [playerId, peer] of ps.peers) {
      const report = await peer.pc.getStats();
      const row = { playerId, sfu: peer.sfu, bytesSent: 0, frameWidth: 0, frameHeight: 0, framesSent: 0, keyFramesEncoded: 0 };
      report.forEach((s) => {
        if (s.type === "outbound-rtp" && s.kind === "video") {
          row.bytesSent += s.bytesSent || 0;
          row.framesSent += s.framesSent || 0;
          row.keyFramesEncoded += s.keyFramesEncoded || 0;
          row.frameWidth = Math.max(row.frameWidth, s.frameWidth || 0);
          row.frameHeight = Math.max(row.frameHeight, s.frameHeight || 0);
          row.qualityLimitationReason = s.qualityLimitationReason;
          row.targetBitrate = s.targetBitrate;
          const codec = s.codecId && report.get(s.codecId);
          if (codec) row.codec = codec.mimeType;
        }
        if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") {
          row.availableOutgoingBitrate = s.availableOutgoingBitrate;
        }
      });
      row.at = performance.now();
      out.push(row);
    }
    return out;
  };
})();
