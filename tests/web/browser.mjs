// What the console scripts share: headless Chromium with a WAV file as the microphone, and the
// dashboard's sign-in.
import { chromium } from "playwright-core";

/// Chromium with `wav` as its fake microphone (it loops the file) and media allowed.
export function launch(wav) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox", "--disable-gpu", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
      `--use-file-for-fake-audio-capture=${wav}`, "--autoplay-policy=no-user-gesture-required",
      "--allow-loopback-in-peer-connection", "--disable-background-networking", "--disable-component-update",
      "--disable-sync", "--no-first-run",
    ],
  });
}

/// Signs `who` (NAME:PASSWORD) in at `url` and lands on `next`.
export async function signIn(page, url, who, next) {
  const [name, password] = who.split(":");
  await page.goto(`${url}/login?next=${encodeURIComponent(next)}`);
  await page.fill("#user", name);
  await page.fill("#password", password);
  await Promise.all([page.waitForURL(`**${next}`), page.click("#sign-in")]);
}
