// The supervisor's console: live calls, agents and queues (a snapshot every 2 s over
// /supervisor/ws), and joining a call over WebRTC to listen, whisper to the agent, or barge in.
// window.supervisorConsole exposes what the page saw, for tests.
(() => {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const sup = window.supervisorConsole = {
    snapshot: null, joined: null, mode: null, connected: false, left: null, maxLevel: 0, errors: [],
  };
  let ws = null, pc = null, mic = null, audioCtx = null, meter = null;
  const el = (tag, text, cls) => { const e = document.createElement(tag); if (text !== undefined) e.textContent = text; if (cls) e.className = cls; return e; };
  const send = (m) => { if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(m)); };
  const status = (t) => { $("status").textContent = t; };

  function render(s) {
    sup.snapshot = s;
    const calls = $("calls");
    calls.replaceChildren();
    if (!s.calls.length) {
      const tr = el("tr"); const td = el("td", "No call in progress.", "quiet"); td.colSpan = 6; tr.append(td); calls.append(tr);
    }
    for (const c of s.calls) {
      const tr = el("tr");
      tr.dataset.call = c.id;
      const last = c.lines.length ? c.lines[c.lines.length - 1] : null;
      tr.append(el("td", c.id), el("td", c.from), el("td", c.flow), el("td", c.agent || "bot"),
        el("td", last ? `${last.who}: ${last.text}` : ""));
      const td = el("td");
      for (const mode of ["listen", "whisper", "barge"]) {
        const b = el("button", mode === "barge" ? "Barge in" : mode[0].toUpperCase() + mode.slice(1));
        b.type = "button"; b.className = `join ${mode}`;
        b.disabled = !!sup.joined || (mode !== "listen" && !c.agent);
        b.onclick = () => join(c.id, mode).catch((e) => status(String(e)));
        td.append(b);
      }
      tr.append(td);
      calls.append(tr);
    }
    const agents = $("agents"); agents.replaceChildren();
    for (const a of s.agents) { const tr = el("tr"); tr.append(el("td", a.agent), el("td", a.state), el("td", a.call_id || "")); agents.append(tr); }
    const waiting = $("waiting"); waiting.replaceChildren();
    for (const w of s.waiting) { const tr = el("tr"); tr.append(el("td", w.queue), el("td", w.caller), el("td", `${w.waited_s} s`)); waiting.append(tr); }
  }

  function waitForIce(peer, ms) {
    if (peer.iceGatheringState === "complete") return Promise.resolve();
    return new Promise((resolve) => {
      const check = () => { if (peer.iceGatheringState === "complete") done(); };
      const done = () => { peer.removeEventListener("icegatheringstatechange", check); resolve(); };
      peer.addEventListener("icegatheringstatechange", check);
      setTimeout(done, ms);
    });
  }

  async function join(callId, mode) {
    if (sup.joined) return;
    mic = await navigator.mediaDevices.getUserMedia({ audio: true });
    audioCtx = audioCtx || new AudioContext();
    if (audioCtx.state === "suspended") await audioCtx.resume().catch(() => {});
    pc = new RTCPeerConnection({ bundlePolicy: "max-bundle" });
    for (const t of mic.getAudioTracks()) pc.addTrack(t, mic);
    pc.ontrack = (e) => {
      const stream = e.streams[0] || new MediaStream([e.track]);
      $("audio").srcObject = stream; $("audio").play().catch(() => {});
      const node = audioCtx.createAnalyser(); node.fftSize = 1024;
      audioCtx.createMediaStreamSource(stream).connect(node);
      const buf = new Float32Array(1024);
      meter = setInterval(() => {
        node.getFloatTimeDomainData(buf);
        let sum = 0; for (let i = 0; i < buf.length; i++) sum += buf[i] * buf[i];
        const rms = Math.sqrt(sum / buf.length);
        sup.maxLevel = Math.max(sup.maxLevel, rms); $("level").value = rms;
      }, 50);
    };
    pc.onconnectionstatechange = () => { if (pc && pc.connectionState === "connected") { sup.connected = true; status("Connected"); } };
    await pc.setLocalDescription(await pc.createOffer());
    await waitForIce(pc, 1000);
    sup.joined = callId; sup.mode = mode; sup.left = null;
    $("joined").hidden = false; $("joined-call").textContent = callId; $("joined-mode").textContent = mode;
    send({ type: "join", call_id: callId, mode, sdp: pc.localDescription.sdp });
  }

  function teardown() {
    if (pc) { pc.ontrack = null; pc.close(); pc = null; }
    if (mic) { mic.getTracks().forEach((t) => t.stop()); mic = null; }
    clearInterval(meter); meter = null;
    sup.joined = null; sup.connected = false;
    $("joined").hidden = true;
  }

  function onMessage(m) {
    switch (m.type) {
      case "snapshot": render(m); break;
      case "answer": if (pc) pc.setRemoteDescription({ type: "answer", sdp: m.sdp }).catch((e) => status(String(e))); break;
      case "mode": sup.mode = m.mode; $("joined-mode").textContent = m.mode; break;
      case "left": sup.left = m.reason; teardown(); status(`Left the call (${m.reason})`); break;
      case "error": sup.errors.push(m); status(m.message); if (m.code === "console.media") teardown(); break;
      default: break;
    }
  }

  for (const b of document.querySelectorAll("#joined button[data-mode]")) b.onclick = () => send({ type: "mode", mode: b.dataset.mode });
  $("leave").onclick = () => send({ type: "leave" });
  const proto = location.protocol === "https:" ? "wss" : "ws";
  ws = new WebSocket(`${proto}://${location.host}/supervisor/ws`);
  ws.onopen = () => status("Watching");
  ws.onmessage = (e) => { try { onMessage(JSON.parse(e.data)); } catch (err) { console.warn(err); } };
  ws.onclose = () => status("Disconnected");
})();
