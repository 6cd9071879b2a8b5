// A human agent in headless Chromium: signs in, opens the agent console, becomes available,
// and takes the first call that rings, with a WAV file as the microphone.
//
// usage: node agent.mjs --url URL --who NAME:PASSWORD --wav FILE --out RESULT.json
//                       --ready FILE --shots DIR [--timeout-ms N] [--on-call-ms N] [--warm]
//
// Steps: sign in (next=/agent); wait for the console's socket (state away); click Available;
// write --ready (the caller may dial now); wait for the ring and screenshot the screen-pop;
// accept; with --warm, wait for the spoken summary to play (screenshot) and connect the
// caller; stay on the call --on-call-ms (screenshot with the live transcript); wait for the
// call to end; save a disposition. The result JSON records what the page saw; the Rust test
// makes the assertions.
import { launch, signIn } from "./browser.mjs";
import { writeFileSync } from "node:fs";

function args() {
  const out = { timeoutMs: 90000, onCallMs: 20000 };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const key = argv[i];
    const next = () => argv[++i];
    if (key === "--url") out.url = next();
    else if (key === "--who") out.who = next();
    else if (key === "--wav") out.wav = next();
    else if (key === "--out") out.out = next();
    else if (key === "--ready") out.ready = next();
    else if (key === "--shots") out.shots = next();
    else if (key === "--timeout-ms") out.timeoutMs = Number(next());
    else if (key === "--on-call-ms") out.onCallMs = Number(next());
    else if (key === "--warm") out.warm = true;
    else throw new Error(`unknown argument ${key}`);
  }
  for (const k of ["url", "who", "wav", "out", "ready", "shots"]) if (!out[k]) throw new Error(`--${k} is required`);
  return out;
}

const opts = args();
const started = Date.now();
const result = { steps: [], console: [] };
const step = (name, extra) => { result.steps.push({ name, at_ms: Date.now() - started, ...extra }); };
const browser = await launch(opts.wav);
const seen = (page) => page.evaluate(() => JSON.parse(JSON.stringify(window.agentConsole)));

try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.on("console", (m) => result.console.push(`${m.type()}: ${m.text()}`));
  await signIn(page, opts.url, opts.who, "/agent");
  step("signed_in", { url: page.url() });
  await page.waitForFunction(() => window.agentConsole && window.agentConsole.state === "away", null, { timeout: 10000 });
  await page.click("#available");
  await page.waitForFunction(() => window.agentConsole.state === "available", null, { timeout: 10000 });
  step("available");
  writeFileSync(opts.ready, "ready");

  await page.waitForFunction(() => window.agentConsole.ringing !== null, null, { timeout: opts.timeoutMs });
  step("ringing");
  await page.screenshot({ path: `${opts.shots}/agent-ringing.png`, fullPage: true });
  result.ring = (await seen(page)).ringing;
  await page.click("#accept");
  step("accepted");
  await page.waitForFunction(() => window.agentConsole.connected, null, { timeout: 15000 });
  step("connected");
  if (opts.warm) {
    await page.waitForFunction(() => window.agentConsole.briefingDone, null, { timeout: 30000 });
    step("briefed");
    await page.screenshot({ path: `${opts.shots}/agent-briefing.png`, fullPage: true });
    await page.click("#connect");
    step("caller_connected");
  }
  // On the call: the caller's next words arrive as live transcript and assist.
  await page.waitForFunction(
    () => window.agentConsole.assist.length > 0 || window.agentConsole.ended !== null,
    null, { timeout: opts.onCallMs },
  ).catch(() => {});
  step("on_call");
  await page.screenshot({ path: `${opts.shots}/agent-on-call.png`, fullPage: true });
  await page.waitForFunction(() => window.agentConsole.ended !== null, null, { timeout: opts.timeoutMs });
  step("ended");
  await page.selectOption("#disposition", "resolved");
  await page.click("#wrapup-form button[type=submit]");
  await page.waitForFunction(() => window.agentConsole.saved.length > 0 || window.agentConsole.errors.length > 0, null, { timeout: 10000 });
  step("wrapped_up");
  await page.screenshot({ path: `${opts.shots}/agent-wrap-up.png`, fullPage: true });
  Object.assign(result, { seen: await seen(page) });
} catch (e) {
  result.error = String(e && e.stack || e);
} finally {
  writeFileSync(opts.out, JSON.stringify(result, null, 2));
  await browser.close();
}
