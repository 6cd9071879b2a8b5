// The agent console: state, the ringing call's screen-pop, two-way WebRTC audio with the
// caller, the live transcript with knowledge-base assist, and the wrap-up.
// One WebSocket, /agent/ws, carries everything (see src/web/agent.rs for the messages).
// window.agentConsole exposes what the page saw, for tests.
(() => {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const ui = {
    state: $("state"), status: $("status"), ringing: $("ringing"), pop: $("pop"), ringTimer: $("ring-timer"),
    oncall: $("oncall"), oncallCaller: $("oncall-caller"), oncallPop: $("oncall-pop"), live: $("live"),
    assist: $("assist"), assistSaid: $("assist-said"), level: $("caller-level"), audio: $("audio"),
    wrapup: $("wrapup"), wrapupCall: $("wrapup-call"), notes: $("notes"), disposition: $("disposition"),
    wrapupStatus: $("wrapup-status"), mute: $("mute"), hold: $("hold"),
    warm: $("warm"), warmStatus: $("warm-status"),
  };
  const agent = window.agentConsole = {
    state: null, ringing: null, callId: null, connected: false, events: [], assist: [],
    maxCallerLevel: 0, ended: null, draft: null, saved: [], errors: [],
    // Warm transfers: the briefing's loudness as heard, and whether the caller is connected.
    warm: false, briefingDone: false, briefingLevel: 0, callerConnected: false,
  };
  let ws = null, pc = null, mic = null, audioCtx = null, meter = null, ringClock = null;
  let muted = false, held = false;

  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const send = (m) => { if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(m)); };
  const status = (text) => { ui.status.textContent = text; };

  function renderPop(pop, into) {
    into.replaceChildren();
    into.append(el("p", "pop-summary", pop.summary));
    const meta = el("dl", "meta");
    const row = (k, v) => { meta.append(el("dt", "", k)); const d = el("dd", "", v); meta.append(d); return d; };
    row("Caller", pop.caller || "unknown");
    row("Queue", pop.queue);
    row("Reason", pop.reason);
    row("Mood", `${pop.mood} (${pop.sentiment.toFixed(2)})`).className = `mood ${pop.mood}`;
    if (pop.intent) row("Intent", pop.intent);
    for (const [k, v] of Object.entries(pop.slots || {})) row(k, v);
    into.append(meta);
    const list = el("ol", "live");
    for (const line of pop.transcript) {
      const li = el("li", `line ${line.who}`);
      li.append(el("b", "", line.who === "caller" ? "Caller: " : "Bot: "), document.createTextNode(line.text));
      list.append(li);
    }
    into.append(list);
  }

  function ring(m) {
    agent.ringing = m;
    ui.ringing.hidden = false;
    renderPop(m.pop, ui.pop);
    let left = m.ring_timeout_s;
    ui.ringTimer.textContent = `${left} s`;
    clearInterval(ringClock);
    ringClock = setInterval(() => { left -= 1; ui.ringTimer.textContent = `${Math.max(0, left)} s`; }, 1000);
  }

  function stopRinging() {
    agent.ringing = null;
    ui.ringing.hidden = true;
    clearInterval(ringClock);
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

  async function accept() {
    const m = agent.ringing;
    if (!m) return;
    stopRinging();
    status("Connecting…");
    try {
      mic = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: true, noiseSuppression: true } });
    } catch (e) {
      status("Microphone blocked: allow it to take calls.");
      send({ type: "decline", call_id: m.call_id });
      return;
    }
    audioCtx = audioCtx || new AudioContext();
    if (audioCtx.state === "suspended") await audioCtx.resume().catch(() => {});
    pc = new RTCPeerConnection({ bundlePolicy: "max-bundle" });
    for (const t of mic.getAudioTracks()) pc.addTrack(t, mic);
    pc.ontrack = (e) => {
      const stream = e.streams[0] || new MediaStream([e.track]);
      ui.audio.srcObject = stream;
      ui.audio.play().catch(() => {});
      const node = audioCtx.createAnalyser();
      node.fftSize = 1024;
      audioCtx.createMediaStreamSource(stream).connect(node);
      const buf = new Float32Array(1024);
      meter = setInterval(() => {
        node.getFloatTimeDomainData(buf);
        let sum = 0;
        for (let i = 0; i < buf.length; i++) sum += buf[i] * buf[i];
        const rms = Math.sqrt(sum / buf.length);
        if (agent.callerConnected) agent.maxCallerLevel = Math.max(agent.maxCallerLevel, rms);
        else agent.briefingLevel = Math.max(agent.briefingLevel, rms);
        ui.level.value = rms;
      }, 50);
    };
    pc.onconnectionstatechange = () => {
      if (!pc) return;
      if (pc.connectionState === "connected") { agent.connected = true; status("Connected"); }
      if (pc.connectionState === "failed") status("The audio connection failed");
    };
    await pc.setLocalDescription(await pc.createOffer());
    await waitForIce(pc, 1000);
    agent.callId = m.call_id;
    agent.pop = m.pop;
    agent.ended = null; agent.draft = null; agent.events = []; agent.assist = [];
    agent.warm = !!m.warm; agent.briefingDone = false; agent.briefingLevel = 0; agent.callerConnected = !m.warm;
    ui.warm.hidden = !m.warm;
    ui.oncall.hidden = false; ui.wrapup.hidden = true;
    ui.oncallCaller.textContent = m.pop.caller;
    renderPop(m.pop, ui.oncallPop);
    ui.live.replaceChildren(); ui.assist.replaceChildren();
    send({ type: "accept", call_id: m.call_id, sdp: pc.localDescription.sdp });
  }

  function onEvent(ev) {
    agent.events.push(ev);
    const line = (who, label, text) => {
      const li = el("li", `line ${who}`);
      li.append(el("b", "", label), document.createTextNode(text));
      ui.live.append(li);
      ui.live.scrollTop = ui.live.scrollHeight;
    };
    if (ev.type === "transcript" && ev.final && ev.text) line("caller", "Caller: ", ev.text);
    if (ev.type === "agent_transcript" && ev.text) line("bot", "You: ", ev.text);
  }

  function onAssist(m) {
    agent.assist.push(m);
    ui.assistSaid.textContent = `For "${m.said}":`;
    ui.assist.replaceChildren();
    if (!m.suggestions.length) ui.assist.append(el("li", "quiet", "No answer in the knowledge base."));
    for (const s of m.suggestions) {
      const li = el("li");
      li.append(el("b", "", s.question), el("br"), document.createTextNode(s.answer),
        el("span", "quiet", ` (${Math.round(s.confidence * 100)} %)`));
      ui.assist.append(li);
    }
  }

  function teardown() {
    if (pc) { pc.ontrack = null; pc.onconnectionstatechange = null; pc.close(); pc = null; }
    if (mic) { mic.getTracks().forEach((t) => t.stop()); mic = null; }
    clearInterval(meter); meter = null;
    muted = false; held = false;
    ui.mute.textContent = "Mute"; ui.hold.textContent = "Hold";
  }

  function callEnded(m) {
    agent.ended = m.reason;
    agent.draft = m.draft;
    teardown();
    ui.oncall.hidden = true;
    ui.wrapup.hidden = false;
    ui.wrapupCall.textContent = m.call_id;
    ui.notes.value = m.draft;
    ui.wrapupStatus.textContent = "";
    status(`Call ended (${m.reason})`);
  }

  function onMessage(m) {
    switch (m.type) {
      case "state": agent.state = m.state; ui.state.textContent = m.state; break;
      case "ring": ring(m); break;
      case "stop_ringing": if (agent.ringing && agent.ringing.call_id === m.call_id) stopRinging(); break;
      case "answer": if (pc) pc.setRemoteDescription({ type: "answer", sdp: m.sdp }).catch((e) => status(String(e))); break;
      case "event": onEvent(m.event); break;
      case "assist": onAssist(m); break;
      case "call_ended": ui.warm.hidden = true; callEnded(m); break;
      case "briefing_done":
        agent.briefingDone = true;
        ui.warmStatus.textContent = "Summary played: connect the caller, or decline to send them back to the assistant.";
        break;
      case "saved": agent.saved.push(m.call_id); ui.wrapupStatus.textContent = "Saved."; break;
      case "replaced": status("Signed in on another page; this one is closed."); break;
      case "error":
        agent.errors.push(m);
        status(m.message);
        if (m.code === "console.accept" || m.code === "console.media") { teardown(); ui.oncall.hidden = true; }
        break;
      default: break;
    }
  }

  function connect() {
    const proto = location.protocol === "https:" ? "wss" : "ws";
    ws = new WebSocket(`${proto}://${location.host}/agent/ws`);
    ws.onmessage = (e) => { try { onMessage(JSON.parse(e.data)); } catch (err) { console.warn(err); } };
    ws.onclose = () => { agent.state = "disconnected"; ui.state.textContent = "disconnected"; };
  }

  $("available").onclick = () => send({ type: "state", state: "available" });
  $("away").onclick = () => send({ type: "state", state: "away" });
  $("accept").onclick = () => { accept().catch((e) => status(String(e))); };
  $("decline").onclick = () => { if (agent.ringing) send({ type: "decline", call_id: agent.ringing.call_id }); stopRinging(); };
  $("hangup").onclick = () => send({ type: "hangup" });
  $("transfer").onclick = () => { const target = $("transfer-target").value.trim(); if (target) send({ type: "transfer", target }); };
  $("connect").onclick = () => { agent.callerConnected = true; ui.warm.hidden = true; send({ type: "connect" }); };
  $("send-back").onclick = () => { ui.warm.hidden = true; send({ type: "decline", call_id: agent.callId }); };
  ui.mute.onclick = () => { muted = !muted; send({ type: "mute", on: muted }); ui.mute.textContent = muted ? "Unmute" : "Mute"; };
  ui.hold.onclick = () => { held = !held; send({ type: "hold", on: held }); ui.hold.textContent = held ? "Resume" : "Hold"; };
  $("wrapup-form").onsubmit = (e) => {
    e.preventDefault();
    send({ type: "disposition", call_id: ui.wrapupCall.textContent, disposition: ui.disposition.value, notes: ui.notes.value });
  };
  connect();
})();
