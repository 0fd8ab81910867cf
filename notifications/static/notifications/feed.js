// A live notification feed, on top of live.js: a classic script, no build
// step, that registers LiveNotifications.mountFeed (once, like live.js).
//
// mountFeed() renders a feed inside any element that holds the parts it
// needs, found by data-role (list, unread-count, unread-label, state,
// empty, load-more, toasts, mark-all-read, problem, and optionally desktop):
// the inbox page and the bell's dropdown (in its shadow root) are the same
// code. It loads the first page from the JSON API, then keeps it live over
// the WebSocket. Every event carries an id; the
// feed shows each id once, so the server's at-least-once delivery becomes
// exactly-once on screen. Event data is rendered with textContent only,
// never as HTML, and a link only if links.js allows it. Its words come from
// the catalog in the configuration (`strings`), its numbers and times from
// Intl in the language of the element it renders in (live.js's localize).

(() => {
  const LiveNotifications = (globalThis.LiveNotifications ??= {});
  if (LiveNotifications.mountFeed) return;
  // Looked up when called: an htmx swap loads the scripts in any order.
  const isAllowedLink = (url) => LiveNotifications.isAllowedLink(url);
  const isSignedOut = (response) => LiveNotifications.isSignedOut(response);

  /**
   * Render and keep live the feed inside `root`.
   *
   * @param {Element | ShadowRoot} root
   * @param {object} config the inbox's configuration (live_config and the API URLs)
   * @returns {{close: () => void}} stops the feed: its timers, listeners and
   *   its handle on the connection
   */
  function mountFeed(root, config) {
    const csrfToken = config.csrfToken;
    const part = (role) => root.querySelector(`[data-role=${role}]`);
    const list = part("list");
    const unreadBadge = part("unread-count");
    const unreadLabel = part("unread-label");
    const pageTitle = document.title;
    const stateLabel = part("state");
    const emptyNote = part("empty");
    const loadMoreButton = part("load-more");
    const toasts = part("toasts");
    const markAllButton = part("mark-all-read");
    const problem = part("problem");
    const desktopButton = part("desktop");
    const settingsButton = part("settings"); // the bell's menu that holds desktopButton
    const words = LiveNotifications.localize(config.strings, root.host ?? root);

    const items = new Map(); // event id -> <li>
    let unreadCount = 0; // the badge shows "99+" past 99
    let lastId = 0; // highest event id shown ("mark all read" goes up to it)
    let nextBefore = null; // cursor for older pages
    let live = null; // set once the first page is loaded
    let changes = 0; // frames applied: tells a reconcile its page went stale
    let closed = false;
    // Focus inside a shadow root is the root's to tell.
    const focused = () => root.getRootNode().activeElement;

    // The badge is for eyes; screen readers hear the sentence, and the tab title
    // carries the count to other tabs of the taskbar.
    function setUnread(count) {
      unreadCount = count;
      unreadBadge.textContent = count > 99 ? `${words.number(99)}+` : words.number(count);
      unreadBadge.dataset.count = String(count);
      unreadLabel.textContent = words.plural("unread-count", count);
      document.title = count > 0 ? words.text("title-unread", { count, title: pageTitle }) : pageTitle;
    }

    function render(notification) {
      const item = document.createElement("li");
      item.className = "notification";
      item.dataset.id = notification.id;
      item.dataset.level = notification.level;
      const title = document.createElement("h2");
      title.textContent = notification.title;
      if (isAllowedLink(notification.url)) {
        const link = document.createElement("a");
        link.href = notification.url;
        link.rel = "noopener";
        link.textContent = notification.title;
        // Following the link is reading it. Over the socket the command is out
        // before the page unloads; over HTTP, keepalive lets it finish.
        link.addEventListener("click", () => {
          if (item.classList.contains("unread")) markRead(notification.id).catch(() => {});
        });
        title.replaceChildren(link);
      }
      const body = document.createElement("p");
      body.textContent = notification.body;
      const time = document.createElement("time");
      time.dateTime = notification.created_at;
      time.title = words.dateTime(notification.created_at);
      time.textContent = words.ago(notification.created_at);
      // After the text, in reading order, and named after the notification they
      // act on: a list of bare "Dismiss" buttons says nothing to a screen reader.
      // The name starts with the visible text, for voice control ("click Mark read").
      const named = { title: notification.title };
      const readButton = button("mark-read", words.text("mark-read"), words.text("mark-read-label", named), () =>
        reporting(markRead)(notification.id),
      );
      const dismissButton = button("dismiss", words.text("dismiss"), words.text("dismiss-label", named), () =>
        reporting(dismiss)(notification.id),
      );
      const actions = document.createElement("div");
      actions.className = "actions";
      actions.append(readButton, dismissButton);
      item.append(levelMark(notification.level), title, body, time, actions);
      setRead(item, Boolean(notification.read));
      return item;
    }

    function button(className, text, label, onClick) {
      const element = document.createElement("button");
      element.type = "button";
      element.className = className;
      element.textContent = text;
      element.setAttribute("aria-label", label);
      element.addEventListener("click", onClick);
      return element;
    }

    // The level is an icon as well as a colour, and words for screen readers,
    // who also hear "Unread" (setRead) before the title.
    function levelMark(level) {
      const mark = document.createElement("span");
      mark.className = "level";
      const said = document.createElement("span");
      said.className = "visually-hidden";
      said.textContent = words.text(`level-${LEVEL_ICONS[level] ? level : "info"}`);
      const unread = document.createElement("span");
      unread.className = "visually-hidden unread-text";
      unread.textContent = words.text("unread");
      mark.append(icon(LEVEL_ICONS[level] ?? LEVEL_ICONS.info), unread, said);
      return mark;
    }

    function setRead(item, read) {
      item.classList.toggle("unread", !read);
      item.querySelector(".unread-text").hidden = read;
      const readButton = item.querySelector(".mark-read");
      // Hiding the focused button would drop focus to the page: keep it here.
      if (read && focused() === readButton) item.querySelector(".dismiss").focus();
      readButton.hidden = read;
    }

    // Focus leaving with a removed item goes to the next one (or the previous,
    // or "Mark all read"), not back to the top of the page.
    function removeItem(item) {
      if (item.contains(focused())) {
        const neighbour = item.nextElementSibling ?? item.previousElementSibling;
        (neighbour?.querySelector("button:not([hidden])") ?? markAllButton).focus();
      }
      item.remove();
    }

    // Insert in id order (newest first), once per id; alert the person of a new
    // one (not a replayed or loaded one) in the one tab that alerts.
    function show(notification, { alert }) {
      if (items.has(notification.id)) return false;
      const item = render(notification);
      items.set(notification.id, item);
      const newer = [...list.children].find((li) => Number(li.dataset.id) < notification.id);
      list.insertBefore(item, newer ?? null);
      lastId = Math.max(lastId, notification.id);
      emptyNote.hidden = true;
      if (alert) announce(notification);
      return true;
    }

    // A burst must not bury the page: at most MAX_TOASTS at once, and one line
    // counting the rest until the visible ones have gone.
    const MAX_TOASTS = 3;
    const TOAST_MS = 5000;
    let hiddenToasts = 0;
    let moreToasts = null;
    const toastTimers = new Set();

    // In a tab nobody looks at, a toast is lost: a desktop notification, if the
    // person asked for them.
    function announce(notification) {
      if (document.visibilityState === "hidden" && desktopWanted()) {
        const shown = new Notification(notification.title, {
          body: notification.body,
          tag: `notification-${notification.id}`,
        });
        shown.addEventListener("click", () => {
          window.focus();
          if (isAllowedLink(notification.url)) location.assign(notification.url);
          shown.close();
        });
      } else {
        toast(notification);
      }
    }

    function toast(notification) {
      if (toasts.querySelectorAll(".toast:not(.more)").length >= MAX_TOASTS) {
        hiddenToasts += 1;
        showMoreToasts();
        return;
      }
      const element = document.createElement("div");
      element.className = "toast";
      element.textContent = notification.title;
      toasts.insertBefore(element, moreToasts);
      const timer = setTimeout(() => {
        toastTimers.delete(timer);
        element.remove();
        if (!toasts.querySelector(".toast:not(.more)")) {
          hiddenToasts = 0;
          showMoreToasts();
        }
      }, TOAST_MS);
      toastTimers.add(timer);
    }

    function showMoreToasts() {
      if (hiddenToasts === 0) {
        moreToasts?.remove();
        moreToasts = null;
        return;
      }
      if (!moreToasts) {
        moreToasts = document.createElement("div");
        moreToasts.className = "toast more";
        toasts.append(moreToasts);
      }
      moreToasts.textContent = words.plural("more-toasts", hiddenToasts);
    }

    // A redirect is not followed: it goes to a login page (an HTML 200 that
    // would look like success), so it means signed out, like a 401.
    async function api(url, { method = "GET", body, keepalive = false } = {}) {
      const response = await fetch(url, {
        method,
        body,
        keepalive,
        redirect: "manual",
        credentials: "same-origin",
        headers: method === "GET" ? {} : { "X-CSRFToken": csrfToken },
      });
      if (!response.ok) {
        const error = new Error(`${method} ${url}: HTTP ${response.status}`);
        error.signedOut = isSignedOut(response);
        throw error;
      }
      return response.json();
    }

    // A command that couldn't be applied says so (role=alert) instead of failing
    // silently; the next one that works clears it.
    function report(error) {
      problem.textContent = words.text(error.signedOut ? "problem-signed-out" : "problem-not-saved");
      problem.hidden = false;
    }

    function clearProblem() {
      problem.hidden = true;
      problem.textContent = "";
    }

    function reporting(action) {
      return (...args) => action(...args).then(clearProblem, report);
    }

    // After an outage the frames this tab missed (a dismissal in another tab,
    // read state) are gone: make the first page agree with the server again.
    // A frame that lands while the page is on its way makes it stale (it would
    // undo that frame): fetch again, a bounded number of times. Only items shown
    // before the fetch can be missing from it for a reason: a newer one may have
    // arrived since.
    async function reconcileFirstPage() {
      let page;
      let shownBefore;
      for (let attempt = 1; ; attempt += 1) {
        const seen = changes;
        shownBefore = new Set(items.keys());
        page = await api(new URL(config.listUrl, location.href));
        if (changes === seen || attempt === RECONCILE_ATTEMPTS) break;
      }
      const current = new Map(page.results.map((n) => [n.id, n]));
      const oldest = page.results.length ? Math.min(...current.keys()) : -Infinity;
      for (const [id, item] of items) {
        if (!item.isConnected || id < oldest) continue;
        if (current.has(id)) setRead(item, Boolean(current.get(id).read));
        else if (shownBefore.has(id)) removeItem(item);
      }
      page.results.forEach((n) => show(n, { alert: false }));
      emptyNote.hidden = list.children.length > 0;
      setUnread(page.unread);
    }

    // One reconcile at a time: two would race and the older page could land
    // last. Asked again while one runs, it runs once more after.
    let reconciling = null;
    let reconcileAgain = false;
    function reconcile() {
      if (reconciling) {
        reconcileAgain = true;
        return reconciling;
      }
      reconciling = (async () => {
        try {
          do {
            reconcileAgain = false;
            await reconcileFirstPage();
          } while (reconcileAgain);
        } finally {
          reconciling = null;
        }
      })();
      return reconciling;
    }

    async function loadPage(before) {
      const url = new URL(config.listUrl, location.href);
      if (before) url.searchParams.set("before", before);
      const page = await api(url);
      page.results.forEach((n) => show(n, { alert: false }));
      nextBefore = page.next_before;
      loadMoreButton.hidden = nextBefore === null;
      emptyNote.hidden = items.size > 0;
      setUnread(page.unread);
    }

    function applyRead({ ids, up_to: upTo, unread }) {
      for (const [id, item] of items) {
        if ((ids && ids.includes(id)) || (upTo !== null && upTo !== undefined && id <= upTo)) {
          setRead(item, true);
        }
      }
      setUnread(unread);
    }

    function applyDismissed({ ids, unread }) {
      for (const id of ids) {
        const item = items.get(id);
        if (item) removeItem(item);
      }
      setUnread(unread);
      emptyNote.hidden = list.children.length > 0;
    }

    // A retracted event leaves the page; the push carries no per-user count, so
    // the badge drops by the unread ones this page shows (the next load corrects
    // it for ones on pages not loaded).
    function applyRetracted({ ids }) {
      let unread = unreadCount;
      for (const id of ids) {
        const item = items.get(id);
        if (item?.isConnected) {
          if (item.classList.contains("unread")) unread -= 1;
          removeItem(item);
        }
      }
      setUnread(Math.max(unread, 0));
      emptyNote.hidden = list.children.length > 0;
    }

    // Over the socket when it is live (every tab then hears of it), else HTTP.
    async function send(message) {
      return live !== null && (await live.send(message));
    }

    async function markRead(id) {
      if (await send({ type: "mark_read", id })) return;
      const readUrl = config.readUrlTemplate.replace("{id}", String(id));
      applyRead({ ids: [id], ...(await api(readUrl, { method: "POST", keepalive: true })) });
    }

    async function dismiss(id) {
      if (await send({ type: "dismiss", id })) return;
      const dismissUrl = config.dismissUrlTemplate.replace("{id}", String(id));
      applyDismissed({ ids: [id], ...(await api(dismissUrl, { method: "POST" })) });
    }

    async function markAllRead() {
      if (await send({ type: "mark_all_read", up_to: lastId })) return;
      const body = new FormData();
      body.set("up_to", String(lastId));
      applyRead({ up_to: lastId, ...(await api(config.readAllUrl, { method: "POST", body })) });
    }

    function goLive() {
      if (closed) return;
      live = LiveNotifications.connect({
        wsUrl: config.wsUrl,
        ticketUrl: config.ticketUrl,
        sessionCheckUrl: config.sessionCheckUrl,
        csrfToken,
        user: config.user,
        strings: config.strings,
        // A function, so a reconnect before the first cursor resumes after
        // whatever this page has shown by then, not just the first page.
        lastId: () => lastId,
      });
      live.onState((state, text) => {
        stateLabel.dataset.state = state;
        stateLabel.textContent = text;
      });
      // The welcome ends a replay: its count is exact, and it names the replayed
      // notifications already read. Any welcome after the first one this page
      // heard ends an outage, and a tab that joined another tab's socket
      // (`sync`) missed what came before it joined: either way, reload.
      let heardFromServer = false;
      const reconcileReporting = reporting(reconcile);
      live.onFrame("welcome", (frame) => {
        for (const id of frame.read ?? []) {
          const item = items.get(id);
          if (item) setRead(item, true);
        }
        setUnread(frame.unread);
        if (heardFromServer) reconcileReporting();
        heardFromServer = true;
      });
      live.onFrame("sync", () => {
        heardFromServer = true;
        reconcileReporting();
      });
      live.onFrame("notification", (frame, { primary }) => {
        changes += 1;
        // A replayed frame has no cursor: shown, but no toast for old news.
        if (show(frame, { alert: primary && frame.cursor !== null })) {
          setUnread(unreadCount + 1);
        }
      });
      const counted = (apply) => (frame) => {
        changes += 1;
        apply(frame);
      };
      live.onFrame("read", counted(applyRead));
      live.onFrame("dismissed", counted(applyDismissed));
      live.on("retracted", counted(applyRetracted));
      // Too much was missed to replay: reload the first page over HTTP.
      live.onFrame("resync", () => loadPage(null));
      live.onFrame("error", (frame) => {
        console.warn("notifications:", frame.code, frame.message);
      });
    }

    // Desktop notifications are opt-in: the button asks the browser once, and
    // the choice (kept per browser) can be undone without the browser's settings.
    function desktopWanted() {
      return (
        "Notification" in window &&
        Notification.permission === "granted" &&
        readChoice(DESKTOP_CHOICE) === "on"
      );
    }

    function renderDesktopButton() {
      if (!desktopButton) return;
      desktopButton.hidden = !("Notification" in window) || Notification.permission === "denied";
      // The menu holds nothing else: no menu where there is no choice.
      if (settingsButton) settingsButton.hidden = desktopButton.hidden;
      const on = desktopWanted();
      desktopButton.setAttribute("aria-pressed", String(on));
      desktopButton.textContent = words.text(on ? "desktop-on" : "desktop-off");
    }

    async function toggleDesktop() {
      if (desktopWanted()) {
        writeChoice(DESKTOP_CHOICE, "off");
      } else {
        const permission = await Notification.requestPermission();
        writeChoice(DESKTOP_CHOICE, permission === "granted" ? "on" : "off");
      }
      renderDesktopButton();
    }

    function refreshTimes() {
      for (const time of list.querySelectorAll("time[datetime]")) {
        time.textContent = words.ago(time.dateTime);
      }
      labelDays();
    }

    // The first item of each day carries the day's heading ("Today",
    // "Yesterday", a date), which widget.css shows above it: the list keeps
    // one item per notification, whatever adds or removes them.
    function labelDays() {
      let previous = null;
      for (const item of list.children) {
        const day = words.day(item.querySelector("time").dateTime);
        if (day === previous) item.removeAttribute("data-day");
        else item.dataset.day = day;
        previous = day;
      }
    }
    const days = new MutationObserver(labelDays);
    days.observe(list, { childList: true });

    markAllButton.addEventListener("click", reporting(markAllRead));
    loadMoreButton.addEventListener("click", () => loadPage(nextBefore));
    desktopButton?.addEventListener("click", toggleDesktop);
    // Another tab's choice.
    const onStorage = (event) => {
      if (event.key === DESKTOP_CHOICE) renderDesktopButton();
    };
    window.addEventListener("storage", onStorage);
    renderDesktopButton();
    const clock = setInterval(refreshTimes, TIME_REFRESH_MS);

    loadPage(null).finally(goLive);
    return {
      close() {
        closed = true;
        clearInterval(clock);
        days.disconnect();
        toastTimers.forEach(clearTimeout);
        window.removeEventListener("storage", onStorage);
        live?.close();
      },
    };
  }

  const DESKTOP_CHOICE = "notifications.desktop";
  const RECONCILE_ATTEMPTS = 3;
  const TIME_REFRESH_MS = 30_000;

  // Storage can be off (a privacy mode): then the choice lasts as long as the page.
  const choices = new Map();

  function readChoice(key) {
    try {
      return localStorage.getItem(key);
    } catch (error) {
      return choices.get(key) ?? null;
    }
  }

  function writeChoice(key, value) {
    choices.set(key, value);
    try {
      localStorage.setItem(key, value);
    } catch (error) {
      // kept in `choices`
    }
  }

  // Each level's icon (24 px strokes), drawn in the level's colour.
  const LEVEL_ICONS = {
    info: ["M12 21a9 9 0 1 0 0-18 9 9 0 0 0 0 18z", "M12 11v5", "M12 8h.01"],
    success: ["M12 21a9 9 0 1 0 0-18 9 9 0 0 0 0 18z", "m8 12.5 3 3 5-6"],
    warning: ["M12 3.5 2.5 20h19z", "M12 10v4", "M12 17h.01"],
    error: ["M12 21a9 9 0 1 0 0-18 9 9 0 0 0 0 18z", "m9 9 6 6", "m15 9-6 6"],
  };
  const SVG = "http://www.w3.org/2000/svg";

  function icon(paths) {
    const svg = document.createElementNS(SVG, "svg");
    for (const [name, value] of Object.entries(ICON_ATTRIBUTES)) svg.setAttribute(name, value);
    for (const d of paths) {
      const path = document.createElementNS(SVG, "path");
      path.setAttribute("d", d);
      svg.append(path);
    }
    return svg;
  }
  const ICON_ATTRIBUTES = {
    "aria-hidden": "true",
    focusable: "false",
    viewBox: "0 0 24 24",
    fill: "none",
    stroke: "currentColor",
    "stroke-width": "2",
    "stroke-linecap": "round",
    "stroke-linejoin": "round",
  };

  LiveNotifications.mountFeed = mountFeed;
  document.dispatchEvent(new Event("live-notifications:loaded"));
})();
