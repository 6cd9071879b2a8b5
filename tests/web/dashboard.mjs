// Drives the hotline dashboard in headless Chromium: signs in as each role, opens every page,
// saves screenshots, answers the first knowledge gap, and records what it saw.
//
// usage: node dashboard.mjs --url ORIGIN --out RESULT.json --shots DIR --call CALL_ID
//                           --admin NAME:PASSWORD --supervisor NAME:PASSWORD --agent NAME:PASSWORD
//                           --answer TEXT --search TEXT
//
// The result JSON records statuses, URLs and page texts; the Rust test makes the assertions.
import { chromium } from "playwright-core";
import { writeFileSync } from "node:fs";

function args() {
  const out = {};
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) out[argv[i].replace(/^--/, "")] = argv[i + 1];
  for (const k of ["url", "out", "shots", "call", "admin", "supervisor", "agent", "answer", "search"]) {
    if (!out[k]) throw new Error(`--${k} is required`);
  }
  return out;
}

const opts = args();
const result = { steps: [] };
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run"],
});
const watchdog = setTimeout(() => {
  result.error = result.error || "watchdog: the harness took too long";
  writeFileSync(opts.out, JSON.stringify(result, null, 2));
  process.exit(2);
}, 180000);

async function fresh() {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, deviceScaleFactor: 1 });
  const page = await context.newPage();
  page.on("console", (m) => result.steps.push({ console: `${m.type()}: ${m.text()}` }));
  return { context, page };
}

async function open(page, path) {
  const response = await page.goto(opts.url + path);
  return { status: response ? response.status() : 0, url: page.url(), text: await page.innerText("body") };
}

async function signIn(page, who, next) {
  const [name, password] = who.split(":");
  await page.goto(opts.url + "/login" + (next ? `?next=${encodeURIComponent(next)}` : ""));
  await page.fill("#user", name);
  await page.fill("#password", password);
  await Promise.all([page.waitForLoadState("load"), page.click("#sign-in")]);
  await page.waitForLoadState("load");
  return { url: page.url(), text: await page.innerText("body") };
}

async function shot(page, name) {
  await page.screenshot({ path: `${opts.shots}/dashboard-${name}.png`, fullPage: true });
}

try {
  // Nobody signed in: every page sends the browser to the login form.
  {
    const { context, page } = await fresh();
    result.anonymous = await open(page, "/dashboard/calls");
    await shot(page, "login");
    const [name] = opts.admin.split(":");
    result.wrongPassword = await signIn(page, `${name}:not-the-password`);
    // A form posted without this session's CSRF token changes nothing.
    await context.close();
  }
  // An agent: no dashboard pages.
  {
    const { context, page } = await fresh();
    result.agentLogin = await signIn(page, opts.agent);
    result.agentDashboard = await open(page, "/dashboard");
    result.agentAdmin = await open(page, "/dashboard/admin");
    await context.close();
  }
  // A supervisor: the dashboard, but not the admin page.
  {
    const { context, page } = await fresh();
    result.supervisorLogin = await signIn(page, opts.supervisor, "/dashboard/analytics");
    result.supervisorAdmin = await open(page, "/dashboard/admin");
    const forged = await page.request.post(opts.url + "/dashboard/gaps/answer", {
      form: { csrf: "forged", key: "x", flow: "telecom_en", question: "q", answer: "a" },
      maxRedirects: 0,
    });
    result.forgedAnswer = { status: forged.status(), text: await forged.text() };
    await context.close();
  }
  // An admin: every page.
  {
    const { context, page } = await fresh();
    result.adminLogin = await signIn(page, opts.admin);
    // The live panel is filled in by the page's script.
    await page.waitForFunction(() => !document.getElementById("live").textContent.includes("Loading"), null, { timeout: 10000 });
    result.overview = { url: page.url(), text: await page.innerText("body") };
    await shot(page, "overview");
    result.calls = await open(page, "/dashboard/calls");
    await shot(page, "calls");
    await page.fill("#text", opts.search);
    await Promise.all([page.waitForLoadState("load"), page.click("#search")]);
    result.search = { url: page.url(), count: await page.innerText("#count") };
    result.call = await open(page, `/dashboard/calls/${opts.call}`);
    result.call.recording = await page.evaluate(async () => {
      const player = document.getElementById("player");
      if (!player) return null;
      const r = await fetch(player.src);
      const bytes = (await r.arrayBuffer()).byteLength;
      return { status: r.status, type: r.headers.get("content-type"), bytes };
    });
    await shot(page, "call");
    result.analytics = await open(page, "/dashboard/analytics");
    result.analytics.charts = await page.locator("svg.chart").count();
    await shot(page, "analytics");
    result.gaps = await open(page, "/dashboard/gaps");
    await shot(page, "gaps");
    const form = page.locator("form.answer").first();
    result.gapQuestion = await form.locator("input[name=question]").inputValue();
    await form.locator("textarea[name=answer]").fill(opts.answer);
    await Promise.all([page.waitForLoadState("load"), form.locator("button").click()]);
    await page.waitForLoadState("load");
    result.answered = { url: page.url(), text: await page.innerText("body") };
    result.answeredAll = await open(page, "/dashboard/gaps?show=all");
    await shot(page, "gaps-answered");
    const csv = await page.request.get(opts.url + "/dashboard/gaps.csv");
    result.csv = { status: csv.status(), type: csv.headers()["content-type"], text: await csv.text() };
    result.admin = await open(page, "/dashboard/admin");
    await shot(page, "admin");
    // Signing out ends the session: the dashboard asks for a login again.
    await Promise.all([page.waitForLoadState("load"), page.click(".signout button")]);
    result.afterSignOut = await open(page, "/dashboard");
    await context.close();
  }
} catch (e) {
  result.error = String(e && e.stack ? e.stack : e);
} finally {
  clearTimeout(watchdog);
  writeFileSync(opts.out, JSON.stringify(result, null, 2));
  await browser.close();
}
