// The notification bell ({% notifications_bell %}): a feed in a dropdown.
import { mountFeed } from "./feed.js";

for (const root of document.querySelectorAll("[data-notifications=bell]")) {
  if (root.dataset.mounted) continue; // the tag used twice loads this once
  root.dataset.mounted = "true";
  const config = JSON.parse(root.querySelector("script[type='application/json']").textContent);
  const toggle = root.querySelector("[data-role=toggle]");
  const panel = root.querySelector("[data-role=panel]");

  function setOpen(open) {
    panel.hidden = !open;
    toggle.setAttribute("aria-expanded", String(open));
    // The panel hangs from the bell's right edge; a bell near the left of
    // the page would push it off screen, so it hangs from the left there.
    if (open) {
      panel.classList.remove("start");
      if (panel.getBoundingClientRect().left < 0) panel.classList.add("start");
    }
  }

  toggle.addEventListener("click", () => setOpen(panel.hidden));
  root.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !panel.hidden) {
      setOpen(false);
      toggle.focus();
    }
  });
  document.addEventListener("click", (event) => {
    if (!root.contains(event.target)) setOpen(false);
  });
  mountFeed(root, config);
}
