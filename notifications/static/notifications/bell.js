// The notification bell ({% notifications_bell %}): a feed in a dropdown.
// A classic script, like the others the tag renders: it mounts every bell
// of the page once the scripts it needs (links.js, live.js, feed.js) have
// registered, whatever order they arrived in (an htmx swap loads them async).
(() => {
  const LiveNotifications = (globalThis.LiveNotifications ??= {});
  const LOADED = "live-notifications:loaded"; // links.js, live.js and feed.js say so

  function mountBell(root) {
    if (root.dataset.mounted) return; // the tag used twice loads this once
    root.dataset.mounted = "true";
    root.querySelector("[data-role=load-problem]")?.remove();
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
    LiveNotifications.mountFeed(root, config);
  }

  function mountAll() {
    const { connect, isAllowedLink, mountFeed } = LiveNotifications;
    if (!connect || !isAllowedLink || !mountFeed) return;
    document.removeEventListener(LOADED, mountAll);
    document.querySelectorAll("[data-notifications=bell]").forEach(mountBell);
  }

  document.addEventListener(LOADED, mountAll);
  mountAll();
})();
