// A supervisor in headless Chromium: signs in, opens /supervisor, waits for a live call with
// an agent on it, joins it in one mode (whisper by default) with a WAV file as the microphone,
// stays a while, then leaves.
//
// usage: node supervisor.mjs --url URL --who NAME:PASSWORD --wav FILE --out RESULT.json
//                            --shots DIR [--mode listen|whisper|barge] [--stay-ms N]
//                            [--timeout-ms N]
// The result JSON records what the page saw (the snapshot, levels, steps); the Rust test
// makes the assertions.
import { launch, signIn } from "./browser.mjs";
import { writeFileSync } from "node:fs";

function args() {
  const out = { mode: "whisper", stayMs: 8000, timeoutMs: 90000 };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const key = argv[i];
    const next = () => argv[++i];
    if (key === "--url") out.url = next();
    else if (key === "--who") out.who = next();
    else if (key === "--wav") out.wav = next();
    else if (key === "--out") out.out = next();
    else if (key === "--shots") out.shots = next();
    else if (key === "--mode") out.mode = next();
    else if (key === "--stay-ms") out.stayMs = Number(next());
    else if (key === "--timeout-ms") out.timeoutMs = Number(next());
    else throw new Error(`unknown argument ${key}`);
  }
  for (const k of ["url", "who", "wav", "out", "shots"]) if (!out[k]) throw new Error(`--${k} is required`);
  return out;
}

const opts = args();
const started = Date.now();
const result = { steps: [], console: [] };
const step = (name, extra) => { result.steps.push({ name, at_ms: Date.now() - started, ...extra }); };
const browser = await launch(opts.wav);
const seen = (page) => page.evaluate(() => JSON.parse(JSON.stringify(window.supervisorConsole)));

try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  page.on("console", (m) => result.console.push(`${m.type()}: ${m.text()}`));
  await signIn(page, opts.url, opts.who, "/supervisor");
  step("signed_in");
  // A live call with an agent on it.
  await page.waitForFunction(
    () => { const s = window.supervisorConsole.snapshot; return s && s.calls.some((c) => c.agent); },
    null, { timeout: opts.timeoutMs },
  );
  step("call_with_agent");
  await page.screenshot({ path: `${opts.shots}/supervisor-calls.png`, fullPage: true });
  await page.click(`button.join.${opts.mode}:not([disabled])`);
  await page.waitForFunction(() => window.supervisorConsole.connected, null, { timeout: 15000 });
  step("joined", { mode: opts.mode });
  await page.waitForTimeout(opts.stayMs);
  await page.screenshot({ path: `${opts.shots}/supervisor-${opts.mode}.png`, fullPage: true });
  result.seen = await seen(page);
  await page.click("#leave");
  await page.waitForFunction(() => window.supervisorConsole.left !== null, null, { timeout: 10000 });
  step("left");
} catch (e) {
  result.error = String(e && e.stack || e);
} finally {
  writeFileSync(opts.out, JSON.stringify(result, null, 2));
  await browser.close();
}
