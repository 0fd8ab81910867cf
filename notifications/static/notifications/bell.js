// The notification bell ({% notifications_bell %}): <notifications-bell>, a
// feed in a dropdown, in a shadow root of its own. A classic script, like the
// others the tag renders: it defines the element once the scripts it needs
// (links.js, live.js, feed.js) have registered, whatever order they arrived
// in (scripts an htmx swap inserts load asynchronously).
//
// Set up in connectedCallback, torn down in disconnectedCallback: an htmx
// hx-boost or Turbo page swap takes the old bell out and puts a new one in,
// and the page's one client (live.js) keeps its socket across the swap.
(() => {
  const LiveNotifications = (globalThis.LiveNotifications ??= {});
  const LOADED = "live-notifications:loaded"; // links.js, live.js and feed.js say so

  // The markup the server rendered for the page's first bell. A copy of the
  // page that htmx or Turbo kept for Back has the bell without its shadow
  // root (the parser attached it, so it is not cloned): it renders this.
  let rendered = null;

  class NotificationsBell extends HTMLElement {
    connectedCallback() {
      const root = this.shadowRoot ?? this.attachShadow({ mode: "open" });
      // A declarative shadow root is attached by the HTML parser only: markup
      // an htmx or Turbo swap inserts keeps it as a <template>.
      const template = this.querySelector(":scope > template[shadowrootmode]");
      if (template) {
        root.replaceChildren(template.content);
        template.remove();
      }
      // The markup as rendered, for a fresh start each time the bell is
      // inserted again (moved, or put back by a page swap).
      this.pristine ??= root.hasChildNodes() ? cloneAll(root.childNodes) : rendered;
      rendered ??= this.pristine;
      if (!this.pristine) return;
      root.replaceChildren(...cloneAll(this.pristine));
      root.querySelector("[data-role=load-problem]")?.remove();
      this.stop = mountBell(this, root);
    }

    disconnectedCallback() {
      this.stop?.();
      this.stop = null;
    }
  }

  function cloneAll(nodes) {
    return [...nodes].map((node) => node.cloneNode(true));
  }

  /** Wire the dropdown up; returns what undoes it. */
  function mountBell(host, root) {
    const config = JSON.parse(root.querySelector("script[type='application/json']").textContent);
    const toggle = root.querySelector("[data-role=toggle]");
    const panel = root.querySelector("[data-role=panel]");
    const settings = root.querySelector("[data-role=settings]");
    const settingsMenu = root.querySelector("[data-role=settings-menu]");
    const listening = new AbortController();
    const { signal } = listening;

    function setOpen(open) {
      panel.hidden = !open;
      toggle.setAttribute("aria-expanded", String(open));
      if (!open) setSettingsOpen(false);
      // The panel hangs from the bell's inline end (its right edge, or its
      // left one right to left); a bell near the other side of the page
      // would push it off screen, so it hangs from the inline start there.
      if (open) {
        panel.classList.remove("start");
        const { left, right } = panel.getBoundingClientRect();
        if (left < 0 || right > document.documentElement.clientWidth) panel.classList.add("start");
      }
    }

    // The settings menu is a disclosure: a button that shows what it holds.
    function setSettingsOpen(open) {
      settingsMenu.hidden = !open;
      settings.setAttribute("aria-expanded", String(open));
    }

    toggle.addEventListener("click", () => setOpen(panel.hidden), { signal });
    settings.addEventListener("click", () => setSettingsOpen(settingsMenu.hidden), { signal });
    // Escape closes the innermost thing open, and focus goes to what opened it.
    root.addEventListener(
      "keydown",
      (event) => {
        if (event.key !== "Escape") return;
        if (!settingsMenu.hidden) {
          setSettingsOpen(false);
          settings.focus();
        } else if (!panel.hidden) {
          setOpen(false);
          toggle.focus();
        }
      },
      { signal },
    );
    // A click inside the shadow root reaches the document retargeted to the
    // host: the event's path says whether it was in this bell, or its menu.
    document.addEventListener(
      "click",
      (event) => {
        const path = event.composedPath();
        if (!path.includes(host)) setOpen(false);
        else if (!path.includes(settingsMenu) && !path.includes(settings)) setSettingsOpen(false);
      },
      { signal },
    );
    const feed = LiveNotifications.mountFeed(root, config);
    return () => {
      listening.abort();
      feed.close();
    };
  }

  function define() {
    const { connect, isAllowedLink, mountFeed } = LiveNotifications;
    if (!connect || !isAllowedLink || !mountFeed) return;
    document.removeEventListener(LOADED, define);
    if (!customElements.get("notifications-bell")) {
      customElements.define("notifications-bell", NotificationsBell);
    }
  }

  document.addEventListener(LOADED, define);
  define();
})();
