// rmas console: the scanner flow and the live status page. Plain JavaScript, no dependencies.
"use strict";

// A zone is complete when its lines have one of the ICAO 9303 shapes: 3 x 30 (TD1),
// 2 x 36 (TD2, MRV-B) or 2 x 44 (TD3, MRV-A). Spaces are ignored, as the hub ignores them.
function zoneComplete(text) {
  const lines = text.split(/\r?\n/).map((l) => l.replace(/\s+/g, "")).filter((l) => l.length);
  const widths = lines.map((l) => l.length);
  const all = (n) => widths.every((w) => w === n);
  return (lines.length === 3 && all(30)) || (lines.length === 2 && (all(36) || all(44)));
}

function scannerFlow(area) {
  area.addEventListener("keydown", (event) => {
    if (event.key !== "Enter") return;
    // Ctrl+Enter checks what is typed; Enter checks once the zone is complete (a keyboard-wedge
    // scanner types each line and Enter), and otherwise starts the next line.
    if (event.ctrlKey || event.metaKey || zoneComplete(area.value)) {
      event.preventDefault();
      area.form.requestSubmit();
    }
  });
}

function liveStatus(live) {
  const state = document.getElementById("stream-state");
  const source = new EventSource(live.dataset.events);
  source.onmessage = (event) => {
    live.innerHTML = JSON.parse(event.data).html;
    live.dataset.updated = String(Date.now());
    if (state) state.textContent = "";
  };
  source.onerror = () => {
    if (state) state.textContent = "(connection lost; retrying)";
  };
}

document.addEventListener("DOMContentLoaded", () => {
  const area = document.getElementById("mrz");
  if (area) scannerFlow(area);
  const live = document.getElementById("live");
  if (live) liveStatus(live);
});
