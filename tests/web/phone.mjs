// Drives the hotline web phone in headless Chromium, with a WAV file as the microphone.
//
// usage: node phone.mjs --url URL --wav FILE --out RESULT.json [--screenshot PNG]
//                       [--mode call|close-tab] [--expect-final] [--timeout-ms N]
//                       [--chrome-arg ARG]...
//
// mode `call` (default): click Call, wait until connected, wait for a final caller transcript
// and a bot reply, take a screenshot, click hang up and wait for the page to go idle.
// mode `close-tab`: click Call, wait until connected, then crash the tab (no goodbye at all).
// mode `human`: click Call, wait until the call is put through to a human (`transfer_result`
// answered), stay --stay-ms on the line with them (screenshot), then hang up.
// Playwright gives the browser a fresh temporary profile (the --user-data-dir of DESIGN.md).
// The result JSON records what the page saw; the Rust test makes the assertions.
import { chromium } from "playwright-core";
import { writeFileSync } from "node:fs";

function args() {
  const out = { mode: "call", timeoutMs: 60000, chromeArgs: [] };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const key = argv[i];
    const next = () => argv[++i];
    if (key === "--url") out.url = next();
    else if (key === "--wav") out.wav = next();
    else if (key === "--out") out.out = next();
    else if (key === "--screenshot") out.screenshot = next();
    else if (key === "--mode") out.mode = next();
    else if (key === "--timeout-ms") out.timeoutMs = Number(next());
    else if (key === "--chrome-arg") out.chromeArgs.push(next());
    else if (key === "--stay-ms") out.stayMs = Number(next());
    else throw new Error(`unknown argument ${key}`);
  }
  for (const k of ["url", "wav", "out"]) if (!out[k]) throw new Error(`--${k} is required`);
  return out;
}

const opts = args();
// Resolves with the promise, or after `ms` whatever happened (a crashed page never answers).
const withTimeout = (promise, ms) =>
  Promise.race([promise.catch(() => {}), new Promise((resolve) => setTimeout(resolve, ms))]);
const result = { mode: opts.mode, steps: [], console: [] };
const step = (name, extra) => { result.steps.push({ name, at_ms: Date.now() - started, ...extra }); };
const started = Date.now();

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--no-sandbox", "--disable-gpu", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
    `--use-file-for-fake-audio-capture=${opts.wav}`, "--autoplay-policy=no-user-gesture-required",
    "--allow-loopback-in-peer-connection", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", ...opts.chromeArgs,
  ],
});

async function snapshot(page) {
  return page.evaluate(() => ({
    state: window.hotline.state,
    callId: window.hotline.callId,
    connectMs: window.hotline.connectMs,
    answerMs: window.hotline.answerMs,
    maxBotLevel: window.hotline.maxBotLevel,
    maxMicLevel: window.hotline.maxMicLevel,
    humanAt: window.hotline.humanAt,
    human: window.hotline.human,
    maxHumanLevel: window.hotline.maxHumanLevel,
    endReason: window.hotline.endReason,
    latenciesMs: window.hotline.latenciesMs,
    events: window.hotline.events,
    callerBubbles: [...document.querySelectorAll(".msg.caller .bubble")].map((e) => e.textContent),
    botBubbles: [...document.querySelectorAll(".msg.bot .bubble")].map((e) => e.textContent),
    stateText: document.getElementById("call-state").textContent,
  }));
}

// A watchdog: whatever hangs, the result is written and the process ends.
const watchdog = setTimeout(() => {
  result.error = result.error || "watchdog: the harness took too long";
  writeFileSync(opts.out, JSON.stringify(result, null, 2));
  process.exit(2);
}, opts.timeoutMs * 3);

try {
  const context = await browser.newContext({ viewport: { width: 1200, height: 880 }, deviceScaleFactor: 1 });
  const page = await context.newPage();
  page.on("console", (m) => result.console.push(`${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => result.console.push(`pageerror: ${e.message}`));
  await page.goto(opts.url, { waitUntil: "load" });
  result.title = await page.title();
  step("loaded");
  if (opts.mode === "call") {
    // The WebSocket signalling route answers a bad offer with a clear error, not a dropped socket.
    result.wsBadOffer = await page.evaluate(() => new Promise((resolve) => {
      const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/api/ws`);
      ws.onopen = () => ws.send(JSON.stringify({ type: "offer", sdp: "this is not SDP" }));
      ws.onmessage = (m) => resolve(JSON.parse(m.data));
      ws.onerror = () => resolve({ error: "socket error" });
      setTimeout(() => resolve({ error: "no reply" }), 5000);
    }));
  }
  await page.click("#call-btn");
  step("clicked");
  await page.waitForFunction(() => window.hotline.state === "connected" || window.hotline.state === "failed",
    null, { timeout: opts.timeoutMs });
  step("connect_settled", { state: await page.evaluate(() => window.hotline.state) });
  result.connected = (await page.evaluate(() => window.hotline.state)) === "connected";
  result.callId = await page.evaluate(() => window.hotline.callId);

  if (result.connected && opts.mode === "close-tab") {
    // Let media flow a moment, then vanish without hanging up: crash the tab's renderer, so
    // no unload handler, DTLS close or HTTP hang-up reaches the server; only ICE notices.
    await page.waitForTimeout(1500);
    result.beforeClose = await snapshot(page);
    const cdp = await context.newCDPSession(page);
    await withTimeout(cdp.send("Page.crash"), 2000);
    await withTimeout(context.close(), 3000);
    step("tab_closed");
  } else if (result.connected && opts.mode === "human") {
    await page.waitForFunction(() => window.hotline.humanAt !== null, null, { timeout: opts.timeoutMs });
    step("with_a_human");
    await page.waitForTimeout(opts.stayMs || 8000);
    if (opts.screenshot) await page.screenshot({ path: opts.screenshot });
    result.midCall = await snapshot(page);
    await page.click("#hangup-btn");
    await page.waitForFunction(() => window.hotline.events.some((e) => e.type === "call_ended"), null, { timeout: 15000 })
      .catch((e) => step("hangup_wait_failed", { error: String(e) }));
    result.end = await snapshot(page);
    step("ended");
    await context.close();
  } else if (result.connected) {
    // A final caller transcript, then the bot's answer to it.
    try {
      await page.waitForFunction(() => {
        const ev = window.hotline.events;
        const i = ev.findIndex((e) => e.type === "transcript" && e.final && e.text);
        return i >= 0 && ev.slice(i).some((e) => e.type === "bot_reply");
      }, null, { timeout: opts.timeoutMs });
      step("heard_and_answered");
    } catch (e) {
      step("no_answer", { error: String(e) });
    }
    // The keypad: open it and press 1; the server echoes the key as a dtmf event.
    try {
      await page.click("#keypad-btn");
      await page.click('#keypad button[data-key="1"]');
      await page.waitForFunction(() => window.hotline.events.some((e) => e.type === "dtmf"), null, { timeout: 5000 });
      step("dtmf_echoed");
    } catch (e) {
      step("dtmf_failed", { error: String(e) });
    }
    // The bot's audio, measured in the page.
    try {
      await page.waitForFunction(() => window.hotline.maxBotLevel > 0.01, null, { timeout: 15000 });
    } catch (_) { /* reported through maxBotLevel */ }
    // Wait for the turn's latency badge so the screenshot shows it.
    await page.waitForFunction(() => window.hotline.latenciesMs.length > 0, null, { timeout: 8000 }).catch(() => {});
    await page.waitForTimeout(300);
    if (opts.screenshot) await page.screenshot({ path: opts.screenshot });
    result.midCall = await snapshot(page);
    step("mid_call");
    if (result.midCall.state === "connected") {
      await page.click("#hangup-btn");
      step("hangup_clicked");
    }
    await page.waitForFunction(() => ["ended", "idle"].includes(window.hotline.state)
      && window.hotline.events.some((e) => e.type === "call_ended"), null, { timeout: 15000 })
      .catch((e) => step("hangup_wait_failed", { error: String(e) }));
    result.end = await snapshot(page);
    step("ended");
    await context.close();
  } else {
    result.failed = await snapshot(page);
  }
} catch (e) {
  result.error = String(e && e.stack || e);
} finally {
  await withTimeout(browser.close(), 5000);
  writeFileSync(opts.out, JSON.stringify(result, null, 2));
  clearTimeout(watchdog);
  process.exit(0);
}
