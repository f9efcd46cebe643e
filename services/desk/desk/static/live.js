// Live pages: a page that shows what another service may still change (an event on its way) asks the desk
// for its fingerprint every few seconds and reloads when it changed, unless the person is at or typing in a form.
const main = document.querySelector("main[data-live-url]");
let edited = false;
document.addEventListener("input", () => { edited = true; });
// Leaving for another page: a reload now would cancel that navigation. A download (a printed PDF) fires this
// too and stays on the page, so the checks resume after a while.
let leaving = false;
window.addEventListener("beforeunload", () => {
  leaving = true;
  window.setTimeout(() => { leaving = false; }, 10000);
});

// A person at a form's control (reached with Tab, say) would lose their place: the reload waits until they leave it.
function inForm() {
  const focused = document.activeElement;
  return Boolean(focused && focused !== document.body && focused.closest("form"));
}

async function check() {
  try {
    const response = await fetch(main.dataset.liveUrl, { credentials: "same-origin", cache: "no-store" });
    if (response.status === 401) { window.location.assign("/sign-in"); return; }
    if (response.ok) {
      const { fingerprint } = await response.json();
      if (fingerprint !== main.dataset.fingerprint && !edited && !leaving && !inForm()) {
        window.location.reload();
        return;
      }
    }
  } catch (error) {
    // The desk is restarting or the network hiccuped: ask again next round.
  }
  window.setTimeout(check, Number(main.dataset.pollMs) || 2000);
}

if (main) {
  window.setTimeout(check, Number(main.dataset.pollMs) || 2000);
}
