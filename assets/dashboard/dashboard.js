// The dashboard's only script: reloads the live calls panel, and lets the call page's player
// play the caller's channel, the bot's, or both.
"use strict";

function refreshLive(panel) {
  fetch(panel.dataset.src, { credentials: "same-origin" })
    .then((r) => (r.ok ? r.text() : Promise.reject(r.status)))
    .then((html) => {
      panel.innerHTML = html;
    })
    .catch(() => {})
    .finally(() => setTimeout(() => refreshLive(panel), 2000));
}

function channelButtons(player) {
  let ctx = null;
  let gains = null;
  const buttons = document.querySelectorAll("[data-channel]");
  buttons.forEach((b) =>
    b.addEventListener("click", () => {
      if (!ctx) {
        ctx = new AudioContext();
        const source = ctx.createMediaElementSource(player);
        const split = ctx.createChannelSplitter(2);
        const merge = ctx.createChannelMerger(2);
        source.connect(split);
        gains = [ctx.createGain(), ctx.createGain()];
        // Each kept channel plays on both ears.
        split.connect(gains[0], 0);
        split.connect(gains[1], 1);
        gains.forEach((g) => {
          g.connect(merge, 0, 0);
          g.connect(merge, 0, 1);
        });
        merge.connect(ctx.destination);
      }
      const which = b.dataset.channel;
      gains[0].gain.value = which === "bot" ? 0 : 1;
      gains[1].gain.value = which === "caller" ? 0 : 1;
      buttons.forEach((x) => x.classList.toggle("on", x === b));
    })
  );
}

document.addEventListener("DOMContentLoaded", () => {
  const live = document.getElementById("live");
  if (live) refreshLive(live);
  const player = document.getElementById("player");
  if (player) channelButtons(player);
});
