// Hotline web phone: WebRTC audio to the hotline server, a live transcript from its call
// events, a DTMF keypad, mute and hang-up. Plain JS, no build step.
//
// Signalling is WHIP-style: POST the SDP offer (gathered, non-trickle) to /api/call, get the
// answer. Events arrive on the WebSocket /api/call/<id>/events, the same JSON as the call's
// events.jsonl. `window.hotline` exposes the call's state for tests and support.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const ui = {
    state: $("call-state"), timer: $("call-timer"), avatar: $("avatar"),
    call: $("call-btn"), mute: $("mute-btn"), keypadBtn: $("keypad-btn"), hangup: $("hangup-btn"),
    keypad: $("keypad"), notice: $("notice"), audio: $("remote-audio"),
    micLevel: $("mic-level"), botLevel: $("bot-level"),
    transcript: $("transcript"), empty: $("transcript-empty"),
    latencyLast: $("latency-last"), latencyAvg: $("latency-avg"),
    choiceRow: $("choice-row"), flow: $("flow-select"),
  };

  // Public state, read by the end-to-end test.
  const hotline = (window.hotline = {
    state: "idle", callId: null, connectMs: null, answerMs: null,
    maxBotLevel: 0, maxMicLevel: 0, events: [], latenciesMs: [], endReason: null,
    // Put through to a human: when (call time), to whom, and the loudest they were heard since.
    humanAt: null, human: null, maxHumanLevel: 0,
  });

  let pc = null, ws = null, micStream = null, audioCtx = null, timerId = null, meterId = null;
  let clickedAt = 0, connectedAt = 0, ended = false;
  const callerBubbles = new Map(); // turn -> bubble element
  const botMessages = new Map(); // turn -> message element (latest reply of that turn)

  function setState(state, text) {
    hotline.state = state;
    ui.state.dataset.state = state;
    ui.state.textContent = text;
    const live = state === "connecting" || state === "connected";
    ui.call.hidden = live;
    ui.call.disabled = live;
    ui.hangup.disabled = !live;
    ui.mute.disabled = state !== "connected";
    ui.keypadBtn.disabled = state !== "connected";
    ui.flow.disabled = live;
    if (!live) {
      ui.keypad.hidden = true;
      ui.keypadBtn.setAttribute("aria-expanded", "false");
      ui.mute.setAttribute("aria-pressed", "false");
      ui.mute.querySelector("span").textContent = "Mute";
    }
  }

  function notice(text, isError) {
    ui.notice.textContent = text || "";
    ui.notice.classList.toggle("error", !!isError);
  }

  // ---- flows / languages -------------------------------------------------------------
  const LANGUAGE_NAMES = { en: "English", zh: "中文 (Mandarin)" };
  // "telecom_en" -> "Telecom"
  function prettyFlow(name) {
    const base = name.replace(/_(en|zh)$/, "").replace(/[_-]+/g, " ");
    return base.charAt(0).toUpperCase() + base.slice(1);
  }
  async function loadFlows() {
    try {
      const res = await fetch("/api/flows");
      if (!res.ok) return;
      const data = await res.json();
      const options = [];
      // The configured default flow first, so a plain click on Call uses it.
      const flows = [...(data.flows || [])].sort((a, b) =>
        (b.name === data.default_flow) - (a.name === data.default_flow) || a.name.localeCompare(b.name));
      for (const f of flows) {
        options.push({ value: JSON.stringify({ flow: f.name, language: f.language }),
          label: `${prettyFlow(f.name)} · ${LANGUAGE_NAMES[f.language] || f.language}` });
      }
      if (options.length === 0) {
        for (const lang of data.languages || []) {
          options.push({ value: JSON.stringify({ language: lang }), label: LANGUAGE_NAMES[lang] || lang });
        }
      }
      ui.flow.replaceChildren(...options.map((o) => {
        const el = document.createElement("option");
        el.value = o.value; el.textContent = o.label; return el;
      }));
      ui.choiceRow.hidden = options.length < 2;
    } catch (_) { /* the default line is used */ }
  }

  // ---- transcript --------------------------------------------------------------------
  function scrollDown() { ui.transcript.scrollTop = ui.transcript.scrollHeight; }
  function clearEmpty() { if (ui.empty.isConnected) ui.empty.remove(); }

  function message(kind, who, text) {
    clearEmpty();
    const li = document.createElement("li");
    li.className = `msg ${kind}`;
    const whoEl = document.createElement("span");
    whoEl.className = "who"; whoEl.textContent = who;
    const bubble = document.createElement("div");
    bubble.className = "bubble"; bubble.textContent = text;
    const meta = document.createElement("div");
    meta.className = "meta";
    li.append(whoEl, bubble, meta);
    ui.transcript.append(li);
    scrollDown();
    return li;
  }

  function systemNote(text, extraClass) {
    clearEmpty();
    const li = document.createElement("li");
    li.className = `system ${extraClass || ""}`;
    li.textContent = text;
    ui.transcript.append(li);
    scrollDown();
  }

  function callerText(turn, text, isFinal) {
    let li = callerBubbles.get(turn);
    if (!li) {
      if (!text) return;
      li = message("caller partial", "You", text);
      callerBubbles.set(turn, li);
    }
    li.querySelector(".bubble").textContent = text || (isFinal ? "(not understood)" : "");
    li.classList.toggle("partial", !isFinal);
    if (isFinal) scrollDown();
  }

  function showLatency(turn, totalMs) {
    hotline.latenciesMs.push(totalMs);
    const secs = (totalMs / 1000).toFixed(2);
    ui.latencyLast.textContent = `${secs} s`;
    const avg = hotline.latenciesMs.reduce((a, b) => a + b, 0) / hotline.latenciesMs.length;
    ui.latencyAvg.textContent = hotline.latenciesMs.length > 1 ? `avg ${(avg / 1000).toFixed(2)} s` : "";
    const li = botMessages.get(turn);
    if (li) {
      const badge = document.createElement("span");
      badge.className = totalMs > 1500 ? "badge slow" : "badge";
      badge.title = "Response time for this turn";
      badge.textContent = `⚡ ${secs} s`;
      li.querySelector(".meta").append(badge);
    }
  }

  function clock(tMs) {
    const s = Math.floor((tMs || 0) / 1000);
    return `${String(Math.floor(s / 60)).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
  }

  function onEvent(ev) {
    hotline.events.push(ev);
    switch (ev.type) {
      case "transcript": callerText(ev.turn, ev.text, ev.final); break;
      case "bot_reply": {
        const li = message("bot", "Assistant", ev.text);
        li.querySelector(".meta").textContent = clock(ev.t_ms);
        botMessages.set(ev.turn, li);
        break;
      }
      case "bot_audio_start": ui.avatar.dataset.speaking = "true"; break;
      case "bot_audio_end": ui.avatar.dataset.speaking = "false"; break;
      case "turn_latency": showLatency(ev.turn, ev.total_ms); break;
      case "dtmf": systemNote(`You pressed ${ev.digit}`); break;
      case "transfer": systemNote(`Transferring you to ${ev.target}…`, "transfer"); break;
      case "transfer_ringing": systemNote("Ringing an agent…", "transfer"); break;
      case "transfer_result":
        if (ev.outcome === "answered") {
          hotline.humanAt = ev.t_ms; hotline.human = ev.agent || "an agent";
          systemNote(`You're through to ${hotline.human}`, "transfer");
          document.querySelector(".agent-name").textContent = "Customer agent";
        } else {
          systemNote("No agent could take the call", "transfer");
        }
        break;
      case "peer_state":
        if (ev.state === "disconnected") notice("Connection unstable — reconnecting…");
        if (ev.state === "connected") notice("");
        break;
      case "error": if (ev.code) console.warn("call error", ev.code, ev.message); break;
      case "hangup": hotline.endReason = ev.reason; break;
      case "call_ended": finish(ev.reason, true); break;
      default: break;
    }
  }

  // ---- audio levels ------------------------------------------------------------------
  function analyser(stream) {
    const node = audioCtx.createAnalyser();
    node.fftSize = 1024;
    audioCtx.createMediaStreamSource(stream).connect(node);
    return node;
  }
  function rms(node, buf) {
    node.getFloatTimeDomainData(buf);
    let sum = 0;
    for (let i = 0; i < buf.length; i++) sum += buf[i] * buf[i];
    return Math.sqrt(sum / buf.length);
  }
  function startMeters(micNode, getBotNode) {
    const buf = new Float32Array(1024);
    meterId = setInterval(() => {
      const mic = micNode ? rms(micNode, buf) : 0;
      const botNode = getBotNode();
      const bot = botNode ? rms(botNode, buf) : 0;
      hotline.maxMicLevel = Math.max(hotline.maxMicLevel, mic);
      hotline.maxBotLevel = Math.max(hotline.maxBotLevel, bot);
      if (hotline.humanAt !== null) hotline.maxHumanLevel = Math.max(hotline.maxHumanLevel, bot);
      ui.micLevel.style.width = `${Math.min(100, mic * 400)}%`;
      ui.botLevel.style.width = `${Math.min(100, bot * 400)}%`;
    }, 50);
  }

  // ---- the call ----------------------------------------------------------------------
  function waitForIce(peer, ms) {
    if (peer.iceGatheringState === "complete") return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => { peer.removeEventListener("icegatheringstatechange", check); resolve(); };
      const check = () => { if (peer.iceGatheringState === "complete") done(); };
      peer.addEventListener("icegatheringstatechange", check);
      setTimeout(done, ms);
    });
  }

  async function call() {
    ended = false;
    hotline.maxBotLevel = 0; hotline.maxMicLevel = 0; hotline.events = []; hotline.endReason = null;
    hotline.humanAt = null; hotline.human = null; hotline.maxHumanLevel = 0;
    document.querySelector(".agent-name").textContent = "Virtual assistant";
    hotline.latenciesMs = []; hotline.connectMs = null; hotline.callId = null;
    callerBubbles.clear(); botMessages.clear();
    ui.transcript.replaceChildren(ui.empty);
    ui.latencyLast.textContent = "–"; ui.latencyAvg.textContent = "";
    notice("");
    clickedAt = performance.now();
    setState("connecting", "Connecting…");
    try {
      micStream = await navigator.mediaDevices.getUserMedia({
        audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
      });
    } catch (e) {
      setState("failed", "Microphone blocked");
      notice("Allow microphone access in your browser to call us.", true);
      return;
    }
    audioCtx = audioCtx || new AudioContext();
    if (audioCtx.state === "suspended") await audioCtx.resume().catch(() => {});
    const micNode = analyser(micStream);
    let botNode = null;
    startMeters(micNode, () => botNode);

    pc = new RTCPeerConnection({ bundlePolicy: "max-bundle" });
    for (const track of micStream.getAudioTracks()) pc.addTrack(track, micStream);
    pc.ontrack = (e) => {
      const stream = e.streams[0] || new MediaStream([e.track]);
      ui.audio.srcObject = stream;
      ui.audio.play().catch(() => {});
      botNode = analyser(stream);
    };
    pc.onconnectionstatechange = () => {
      if (!pc) return;
      if (pc.connectionState === "connected" && hotline.state === "connecting") {
        connectedAt = performance.now();
        hotline.connectMs = Math.round(connectedAt - clickedAt);
        setState("connected", "Connected");
        startTimer();
      } else if (pc.connectionState === "failed") {
        finish("webrtc.ice_failed", false);
      }
    };

    try {
      await pc.setLocalDescription(await pc.createOffer());
      await waitForIce(pc, 1000);
      const params = new URLSearchParams();
      if (ui.flow.value) {
        const choice = JSON.parse(ui.flow.value);
        if (choice.flow) params.set("flow", choice.flow);
        if (choice.language) params.set("language", choice.language);
      }
      for (const [k, v] of new URLSearchParams(location.search)) if (!params.has(k)) params.set(k, v);
      const sentAt = performance.now();
      const res = await fetch(`/api/call?${params}`, {
        method: "POST", headers: { "Content-Type": "application/sdp" }, body: pc.localDescription.sdp,
      });
      if (!res.ok) {
        let msg = `The line is unavailable (${res.status}).`;
        try { const err = await res.json(); msg = err.message || msg; } catch (_) {}
        throw new Error(msg);
      }
      hotline.answerMs = Math.round(performance.now() - sentAt);
      hotline.callId = res.headers.get("X-Call-Id");
      openEvents(hotline.callId);
      await pc.setRemoteDescription({ type: "answer", sdp: await res.text() });
    } catch (e) {
      teardown();
      setState("failed", "Call failed");
      notice(e.message || String(e), true);
    }
  }

  function openEvents(callId) {
    const proto = location.protocol === "https:" ? "wss" : "ws";
    ws = new WebSocket(`${proto}://${location.host}/api/call/${encodeURIComponent(callId)}/events`);
    ws.onmessage = (m) => { try { onEvent(JSON.parse(m.data)); } catch (_) {} };
  }

  function startTimer() {
    ui.timer.classList.add("on");
    const tick = () => { ui.timer.textContent = clock(performance.now() - connectedAt); };
    tick();
    timerId = setInterval(tick, 500);
  }

  function teardown() {
    if (pc) { pc.ontrack = null; pc.onconnectionstatechange = null; pc.close(); pc = null; }
    if (micStream) { micStream.getTracks().forEach((t) => t.stop()); micStream = null; }
    if (meterId) { clearInterval(meterId); meterId = null; }
    if (timerId) { clearInterval(timerId); timerId = null; }
    ui.micLevel.style.width = "0"; ui.botLevel.style.width = "0";
    ui.avatar.dataset.speaking = "false";
  }

  const END_TEXT = {
    "caller.hangup": "You ended the call",
    "webrtc.ice_failed": "The connection was lost",
    "webrtc.connect_timeout": "Could not connect",
    "server.shutdown": "The service is restarting",
  };

  function finish(reason, fromServer) {
    if (ended) return;
    ended = true;
    hotline.endReason = hotline.endReason || reason;
    teardown();
    if (ws && !fromServer) ws.close();
    ws = null;
    const text = END_TEXT[reason] || "Call ended";
    systemNote(`${text} · ${ui.timer.textContent}`);
    setState("ended", "Call ended");
    setTimeout(() => { if (hotline.state === "ended") { setState("idle", "Ready to call"); ui.timer.classList.remove("on"); } }, 2500);
  }

  async function hangup() {
    const id = hotline.callId;
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "hangup" }));
    else if (id) fetch(`/api/call/${encodeURIComponent(id)}`, { method: "DELETE" }).catch(() => {});
    // The server confirms with call_ended; if it cannot, end locally after a moment.
    setTimeout(() => finish("caller.hangup", false), 1500);
    teardown();
    setState("connecting", "Ending call…");
    ui.hangup.disabled = true;
  }

  // ---- keypad ------------------------------------------------------------------------
  const DTMF_HZ = { 1: [697, 1209], 2: [697, 1336], 3: [697, 1477], 4: [770, 1209], 5: [770, 1336],
    6: [770, 1477], 7: [852, 1209], 8: [852, 1336], 9: [852, 1477], "*": [941, 1209], 0: [941, 1336], "#": [941, 1477] };
  function beep(key) {
    if (!audioCtx || !DTMF_HZ[key]) return;
    const gain = audioCtx.createGain();
    gain.gain.value = 0.08;
    gain.connect(audioCtx.destination);
    for (const hz of DTMF_HZ[key]) {
      const osc = audioCtx.createOscillator();
      osc.frequency.value = hz; osc.connect(gain);
      osc.start(); osc.stop(audioCtx.currentTime + 0.12);
    }
  }
  function press(key) {
    if (hotline.state !== "connected" || !ws || ws.readyState !== WebSocket.OPEN) return;
    ws.send(JSON.stringify({ type: "dtmf", digit: key }));
    beep(key);
  }

  // ---- wiring ------------------------------------------------------------------------
  ui.call.addEventListener("click", call);
  ui.hangup.addEventListener("click", hangup);
  ui.mute.addEventListener("click", () => {
    if (!micStream) return;
    const muted = ui.mute.getAttribute("aria-pressed") !== "true";
    micStream.getAudioTracks().forEach((t) => { t.enabled = !muted; });
    ui.mute.setAttribute("aria-pressed", String(muted));
    ui.mute.querySelector("span").textContent = muted ? "Unmute" : "Mute";
    notice(muted ? "You are muted" : "");
  });
  ui.keypadBtn.addEventListener("click", () => {
    const open = ui.keypad.hidden;
    ui.keypad.hidden = !open;
    ui.keypadBtn.setAttribute("aria-expanded", String(open));
  });
  ui.keypad.addEventListener("click", (e) => {
    const btn = e.target.closest("button[data-key]");
    if (btn) press(btn.dataset.key);
  });
  document.addEventListener("keydown", (e) => {
    if (hotline.state === "connected" && /^[0-9*#]$/.test(e.key) && e.target.tagName !== "SELECT") press(e.key);
  });
  window.addEventListener("pagehide", () => {
    if (hotline.callId && hotline.state === "connected") {
      fetch(`/api/call/${encodeURIComponent(hotline.callId)}`, { method: "DELETE", keepalive: true }).catch(() => {});
    }
  });

  setState("idle", "Ready to call");
  loadFlows();
})();
