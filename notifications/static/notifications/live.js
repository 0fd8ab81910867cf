/**
 * Live notifications connection: a dependency-free classic script, no build
 * step, served by `{% static %}` (so hashed by ManifestStaticFilesStorage,
 * and loadable from another origin without CORS headers: docs/widget.md).
 *
 * It owns the WebSocket to runwsserver (docs/protocol.md): authentication,
 * `hello`, the resume cursor, reconnecting, and the connection state. Pages
 * render; this script touches the DOM only to dispatch every push and
 * notification as an event on `document.body` (`live:<name>`,
 * `live:notification`), for htmx and Alpine.
 *
 * One client per page: the script registers `window.LiveNotifications`
 * once (a second copy of the file, hashed or not, does nothing), and
 * `connect()` hands every caller of the page a handle on the same client.
 * `{% live_config %}` and `{% notifications_bell %}` start it.
 *
 * One socket per browser, not per tab: the tabs of one user elect a leader
 * with the Web Locks API, the leader alone holds the WebSocket, and it shares
 * what arrives (and carries the others' commands) over a BroadcastChannel.
 * When the leader tab closes, the browser hands its lock to another tab,
 * which connects and resumes from the newest cursor any tab saw. Where either
 * API is missing (an old browser, a page served over plain http from another
 * host, which is not a secure context) every tab has its own socket.
 *
 * @example
 * const live = LiveNotifications.connect({ wsUrl, ticketUrl, sessionCheckUrl, csrfToken, user, lastId });
 * const stop = live.on("order.status", (data, push, { primary }) => { ... });
 * live.onFrame("notification", (frame, { primary }) => { ... });
 * live.onState((state, text) => { ... });
 * await live.send({ type: "mark_read", id });   // true if sent, false if not live
 * live.reconnect();                       // retry now, while reconnecting
 * live.state;                             // "connecting" | "live" | "offline" | "closed"
 * live.close();                          // this handle; the client outlives it
 *
 * @typedef {"connecting" | "live" | "offline" | "closed"} State
 *
 * @typedef {object} Options
 * @property {string} wsUrl WebSocket URL; may be relative to the page (`/ws`)
 *   or use http(s), which becomes ws(s).
 * @property {string} [ticketUrl] `POST` URL of a one-use ticket. Needed when
 *   wsUrl is on another host, since the browser sends the session cookie only
 *   to the page's own host.
 * @property {string} [sessionCheckUrl] A Django URL that answers 401 to a
 *   signed-out user (a redirect counts as signed out too: see isSignedOut).
 *   Without it, an authentication close (4001, 4003) ends the connection
 *   instead of checking and reconnecting.
 * @property {string} [csrfToken] Django's CSRF token, for the ticket `POST`.
 * @property {string} [user] Who the page is signed in as (`live_config` says):
 *   only tabs of the same user share a socket, and a connection welcomed as
 *   anyone else (someone else signed in in this browser since) is closed
 *   before any of its frames reaches the page.
 * @property {{text: object, plural: object}} [strings] The client's words in
 *   the page's language (`live_config` renders them): the state texts here,
 *   and what feed.js shows; see `localize`.
 * @property {boolean} [share=true] Share the page's client and, between the
 *   tabs, one socket; false gives this caller a client and a socket of its own.
 * @property {number | (() => number | null) | null} [lastId] Where to resume
 *   from before the first frame carries a cursor: the newest event id the page
 *   already shows. A function is asked on every attempt, so a page that keeps
 *   showing events can say how far it got.
 *
 * @typedef {object} Delivery
 * @property {boolean} primary True in exactly one tab of the browser: the
 *   visible one the person used last (or, with none visible, the last used).
 *   Alert there (a toast, a desktop notification); just render elsewhere.
 *
 * @typedef {object} Live
 * @property {(name: string, handler: (data: any, push: object, delivery: Delivery) => void) => () => void} on
 *   Subscribe to a `push` event name; returns a function that unsubscribes.
 *   Each durable push id is delivered once, even when a reconnect replays it.
 * @property {(type: string, handler: (frame: object, delivery: Delivery) => void) => () => void} onFrame
 *   Subscribe to a server frame type other than `push` (`welcome`,
 *   `notification`, `read`, `dismissed`, `resync`, `error`), or to `sync`:
 *   this tab joined a socket another tab holds, so frames sent before it
 *   joined passed it by (reload what the page shows). Returns a function that
 *   unsubscribes.
 * @property {(handler: (state: State, text: string) => void) => () => void} onState
 *   Follow the connection state; the handler is called at once with the
 *   current state. Returns a function that unsubscribes.
 * @property {(message: object) => Promise<boolean>} send Send a command:
 *   resolves true once it went out on the socket (this tab's or, sharing,
 *   the leader's), false (nothing sent, as far as this tab knows) when not
 *   live: then use the HTTP API. Commands are idempotent, so sending one
 *   both ways is harmless.
 * @property {() => void} reconnect While reconnecting, try again now rather
 *   than after the backoff (it also happens on `online` and when a tab
 *   becomes visible). Reconnect delays are capped at 4 s while a tab is visible.
 * @property {State} state
 * @property {boolean} leader Whether this tab holds the socket.
 * @property {() => void} close Let go of this handle: its handlers are
 *   unsubscribed. When no handle of the page is left (for RELEASE_GRACE_MS:
 *   an htmx or Turbo page swap takes a bell out and puts one back), the
 *   client closes for good, and another tab takes the socket over if this
 *   one held it. A client of its own (`share: false`) closes at once.
 */

(() => {
  const LiveNotifications = (globalThis.LiveNotifications ??= {});
  // A second copy of this file (an unhashed URL next to the hashed one, the
  // tag twice): the first one serves the page, so it keeps one client.
  if (LiveNotifications.connect) return;

  // Close codes that mean the credential is no longer good (docs/protocol.md):
  // reconnect only if Django still knows the user (a password change, say,
  // rotates the session key but keeps this browser logged in).
  const AUTH_CLOSE_CODES = new Set([4001, 4003]);

  // Reconnect delays: exponential with full jitter from BASE_DELAY, capped at
  // a few seconds while someone looks at the page and at 30 s in a hidden tab.
  // Coming back online or to the tab retries at once.
  const BASE_DELAY = 500;
  const MAX_DELAY_VISIBLE = 4000;
  const MAX_DELAY_HIDDEN = 30000;
  // Durable pushes and notifications come again when a reconnect resumes below
  // them; remembering this many ids covers any replay the server sends, in
  // bounded memory.
  const SEEN_IDS = 1000;
  // Notifications received are acknowledged (the admin's delivery statistics)
  // in one message per quarter second, within the protocol's 200 ids per
  // message and the rate limit; at most this many wait for a live socket.
  const ACK_DELAY = 250;
  const MAX_ACK_IDS = 200;
  const MAX_UNACKNOWLEDGED = 5000;

  // Sharing a socket: a visible follower sends a heartbeat every HEARTBEAT_MS
  // and the leader answers; with no answer for LEADER_SILENT_MS the leader is
  // taken for frozen and its lock stolen. Hidden tabs' timers are throttled (to
  // once a minute, in Chromium, after five hidden minutes), so they beat every
  // HIDDEN_HEARTBEAT_MS; a tab silent for TAB_GONE_AFTER_HEARTBEATS of its
  // heartbeats is gone. A follower's command waits SEND_TIMEOUT_MS for the
  // leader to say it went out.
  const HEARTBEAT_MS = 1000;
  const LEADER_SILENT_MS = 3000;
  const HIDDEN_HEARTBEAT_MS = 30_000;
  const TAB_GONE_AFTER_HEARTBEATS = 5;
  const SEND_TIMEOUT_MS = 2000;
  // Frames before `welcome` are held until it says whose they are (a browser
  // signed in as someone else since the page loaded must not show their
  // notifications). A replay is bounded by the server's RESUME_LIMIT; past this
  // many, the held ones are dropped and the page told to reload (`resync`).
  const MAX_HELD_FRAMES = 2000;

  // One id per page, shared by every connect() on it (an ES module runs once
  // per page): the page, not each caller, is the tab that may be primary.
  const TAB_ID = globalThis.crypto?.randomUUID?.() ?? `${Date.now()}-${Math.random()}`;

  // Between the tabs and in the client, a state travels with the key of its
  // text ("signed-out" for a "closed" that says why); each page says it in
  // its own words (localize below). A connect() without `strings` (options a
  // page wrote by hand, as before there were any) says these, in English.
  const STATE_TEXT = {
    connecting: "connecting…",
    live: "live",
    offline: "reconnecting…",
    closed: "closed",
    "signed-out": "signed out: log in again",
    "other-user": "signed in as someone else: reload the page",
  };

  /**
   * Whether Django's answer to a `fetch()` means the user is signed out: a
   * 401, or a redirect, which goes to a login page (Django's
   * LoginRequiredMiddleware, a proxy's single sign-on). Ask with
   * `redirect: "manual"`: a redirect that is followed ends in the login page's
   * 200, which looks signed in (`response.redirected` catches that too).
   *
   * @param {Response} response
   * @returns {boolean}
   */
  function isSignedOut(response) {
    return response.status === 401 || response.type === "opaqueredirect" || response.redirected;
  }

  // A page's last handle let go: the client waits this long for the next one
  // before it closes. An htmx or Turbo swap brings a new bell at once, but its
  // feed takes a handle only once its first page has loaded over HTTP.
  const RELEASE_GRACE_MS = 5000;

  // The page's clients, by what they connect to: one per WebSocket URL and
  // user, whatever number of callers (the bells, the page's own scripts).
  const clients = new Map();

  /**
   * A handle on the page's live connection, opened on first use and kept open
   * until every handle is closed.
   *
   * @param {Options} options
   * @returns {Live}
   */
  function connect(options) {
    const share = options.share ?? true;
    if (!share) return openClient(options, null).handle(options);
    const key = `${websocketUrl(options.wsUrl).href} ${options.user ?? ""}`;
    if (!clients.has(key)) clients.set(key, openClient(options, key));
    return clients.get(key).handle(options);
  }

  /** One connection of the page and the handles its callers hold on it. */
  function openClient(options, key) {
    const dispatcher = createDispatcher(localize(options.strings));
    // Resume after the newest event any holder shows.
    const positions = new Set();
    const lastId = () => {
      let newest = null;
      for (const { lastId: value } of positions) {
        const id = typeof value === "function" ? value() : value;
        if (typeof id === "number") newest = Math.max(newest ?? 0, id);
      }
      return newest;
    };
    const linkOptions = { ...options, lastId };
    const link =
      key !== null && canShare() ? shareSocket(linkOptions, dispatcher) : ownSocket(linkOptions, dispatcher);
    let holders = 0;
    let idle = null;

    // A client of its own (`share: false`) closes with its handle.
    function release() {
      holders -= 1;
      if (holders > 0) return;
      if (key === null) return link.close();
      idle = setTimeout(() => {
        clients.delete(key);
        link.close();
      }, RELEASE_GRACE_MS);
    }

    function handle(handleOptions) {
      clearTimeout(idle);
      holders += 1;
      const position = { lastId: handleOptions.lastId ?? null };
      positions.add(position);
      const subscriptions = new Set();
      const track = (unsubscribe) => {
        subscriptions.add(unsubscribe);
        return () => {
          subscriptions.delete(unsubscribe);
          unsubscribe();
        };
      };
      let released = false;
      return {
        on: (name, handler) => track(dispatcher.on(name, handler)),
        onFrame: (type, handler) => track(dispatcher.onFrame(type, handler)),
        onState: (handler) => track(dispatcher.onState(handler)),
        send: link.send,
        reconnect: link.reconnect,
        get state() {
          return dispatcher.state;
        },
        get leader() {
          return link.leader;
        },
        close() {
          if (released) return;
          released = true;
          for (const unsubscribe of [...subscriptions]) unsubscribe();
          positions.delete(position);
          release();
        },
      };
    }

    return { handle };
  }

  function canShare() {
    return typeof BroadcastChannel === "function" && typeof navigator.locks?.request === "function";
  }

  /**
   * The page's side: handlers, the state they follow, de-duplication, and the
   * DOM events: each push and notification this page receives is dispatched
   * once on `document.body` (every tab dispatches in its own document).
   * A state's handlers get its text in the page's words.
   */
  function createDispatcher(words) {
    const pushHandlers = new Map(); // name -> Set of handlers
    const frameHandlers = new Map(); // type -> Set of handlers
    const stateHandlers = new Set();
    const seenPushIds = createSeen();
    const seenNotificationIds = createSeen();
    let state = "connecting";
    let reason = "connecting"; // the key of the state's text
    let joined = false; // a welcome or a sync came: a later subscriber missed frames

    function deliverPush(frame, delivery) {
      // A null id is a live-only push: never replayed, so never a duplicate.
      if (Number.isInteger(frame.id) && !seenPushIds.first(frame.id)) return;
      dispatchDomEvent(`live:${frame.name}`, frame.data);
      for (const handler of [...(pushHandlers.get(frame.name) ?? [])]) {
        safely(handler, frame.data, frame, delivery);
      }
    }

    function deliverFrame(frame, delivery) {
      if (frame.type === "welcome" || frame.type === "sync") joined = true;
      // A replay brings a notification again; the page hears of it once.
      if (frame.type === "notification" && seenNotificationIds.first(frame.id)) {
        dispatchDomEvent("live:notification", frame);
      }
      for (const handler of [...(frameHandlers.get(frame.type) ?? [])]) {
        safely(handler, frame, delivery);
      }
    }

    // Subscribing to `sync` once the page's client has joined: what came
    // before passed this subscriber by (a bell an htmx swap brought in).
    function onFrame(type, handler) {
      const unsubscribe = subscribe(frameHandlers, type, handler);
      if (type === "sync" && joined) {
        setTimeout(() => {
          if (frameHandlers.get(type)?.has(handler)) safely(handler, { type }, { primary: false });
        });
      }
      return unsubscribe;
    }

    return {
      get state() {
        return state;
      },
      setState(next, why = next) {
        state = next;
        reason = why;
        for (const handler of [...stateHandlers]) safely(handler, next, words.text(why));
      },
      deliver(frame, delivery) {
        if (frame.type === "push") deliverPush(frame, delivery);
        else deliverFrame(frame, delivery);
      },
      on: (name, handler) => subscribe(pushHandlers, name, handler),
      onFrame,
      onState(handler) {
        stateHandlers.add(handler);
        safely(handler, state, words.text(reason));
        return () => stateHandlers.delete(handler);
      },
    };
  }

  /** The last SEEN_IDS ids: `first(id)` is true the first time it sees one. */
  function createSeen() {
    const ids = new Set(); // insertion order: oldest first
    return {
      first(id) {
        if (ids.has(id)) return false;
        ids.add(id);
        if (ids.size > SEEN_IDS) ids.delete(ids.values().next().value);
        return true;
      },
    };
  }

  // Bubbling, from the body: htmx listens with `hx-trigger="live:x from:body"`,
  // Alpine with `@live:x.window` (or on any ancestor).
  function dispatchDomEvent(name, detail) {
    const target = document.body ?? document.documentElement;
    target.dispatchEvent(new CustomEvent(name, { bubbles: true, detail }));
  }

  /** A socket of this tab's own: the fallback, and `share: false`. */
  function ownSocket(options, dispatcher) {
    const visible = () => document.visibilityState !== "hidden";
    const socket = openSocket(options, {
      frame: (frame) => dispatcher.deliver(frame, { primary: true }),
      state: dispatcher.setState,
      visible,
    });
    const onVisible = () => visible() && socket.reconnect();
    window.addEventListener("online", socket.reconnect);
    document.addEventListener("visibilitychange", onVisible);
    return {
      send: (message) => Promise.resolve(socket.send(message)),
      reconnect: socket.reconnect,
      leader: true,
      close() {
        window.removeEventListener("online", socket.reconnect);
        document.removeEventListener("visibilitychange", onVisible);
        socket.close();
        dispatcher.setState("closed");
      },
    };
  }

  /**
   * The tabs of one user share one socket, held by the tab that holds the lock.
   *
   * Messages on the channel: the leader sends `leader` when it takes over,
   * `state` (also its answer to every `tab`), `frame` (naming the primary tab)
   * and `sent`; every tab sends `tab` (its visibility and when it was last
   * used) on joining, on a change, as a heartbeat and when a new leader asks,
   * and `bye` when it goes; followers send `send` and `reconnect` for the
   * leader to carry out.
   *
   * A frozen tab (a background tab the browser suspended, a hung script) keeps
   * its lock and its socket but delivers nothing: a visible follower that hears
   * no answer to its heartbeats takes the lock over, and the old leader closes
   * its socket when it wakes to find the lock gone. A tab that goes into the
   * back/forward cache or is frozen with notice steps down at once.
   */
  function shareSocket(options, dispatcher) {
    const name = `notifications-live ${websocketUrl(options.wsUrl).href} ${options.user ?? ""}`;
    const channel = new BroadcastChannel(name);
    const tabId = TAB_ID;
    const tabs = new Map(); // other tabs' id -> {visible, usedAt, seenAt}
    const pendingSends = new Map(); // id of a command handed to the leader -> settle
    let usedAt = document.hasFocus() ? Date.now() : 0;
    let socket = null; // set while this tab leads
    let grant = null; // which lock request this tab leads by
    let release = null; // ends the lock's callback, releasing the lock
    let queue = null; // aborts this tab's place in the lock's queue
    let leaderState = null; // what the leader said last, while following
    let reason = "connecting"; // why this tab's socket is in its state, leading
    let unansweredSince = null; // when this follower's heartbeats went unanswered
    let heartbeat = null;
    let sendIds = 0;
    let joined = false;
    let paused = false; // frozen, or in the back/forward cache
    let closed = false;
    // The highest cursor any tab's socket received: where a new leader resumes.
    let cursor = null;

    const self = () => ({ visible: document.visibilityState === "visible", usedAt });
    const post = (message) => !closed && channel.postMessage(message);

    function announce() {
      if (!socket) unansweredSince ??= Date.now();
      post({ kind: "tab", id: tabId, tab: self() });
    }

    function heardFromLeader() {
      unansweredSince = null;
    }

    function advanceCursor(value) {
      if (typeof value === "number") cursor = Math.max(cursor ?? 0, value);
    }

    // A tab that crashed says no goodbye: one not heard from for a few of its
    // heartbeats is gone.
    function alive(tab) {
      const heartbeats = tab.visible ? HEARTBEAT_MS : HIDDEN_HEARTBEAT_MS;
      return Date.now() - tab.seenAt < TAB_GONE_AFTER_HEARTBEATS * heartbeats;
    }

    // Visible tabs first, then the one used last; the same answer on every tab
    // the leader asks, so exactly one tab alerts the person.
    function primaryTab() {
      let best = [tabId, self()];
      for (const entry of tabs) {
        const [id, tab] = entry;
        if (!alive(tab)) {
          tabs.delete(id);
          continue;
        }
        const [, current] = best;
        if (tab.visible !== current.visible ? tab.visible : tab.usedAt > current.usedAt) best = entry;
      }
      return best[0];
    }

    function request(lockOptions) {
      const mine = {};
      navigator.locks.request(name, lockOptions, () => lead(mine)).catch(() => {
        // Aborted while queued (close, pause, a steal), or stolen while leading.
        if (grant === mine) {
          stepDown();
          join();
        }
      });
    }

    function join() {
      if (closed || paused) return;
      queue = new AbortController();
      request({ signal: queue.signal });
    }

    function steal() {
      queue?.abort();
      queue = null;
      unansweredSince = null;
      request({ steal: true });
    }

    function lead(mine) {
      if (closed || paused) return;
      grant = mine;
      queue = null;
      leaderState = null;
      unansweredSince = null;
      joined = true;
      // Tabs that went while another tab led said goodbye to it: start over.
      tabs.clear();
      post({ kind: "leader" });
      const resumeFrom = options.lastId;
      socket = openSocket(
        {
          ...options,
          lastId: () => cursor ?? (typeof resumeFrom === "function" ? resumeFrom() : resumeFrom),
        },
        {
          frame(frame) {
            advanceCursor(frame.cursor);
            const primary = primaryTab();
            post({ kind: "frame", frame, primary });
            dispatcher.deliver(frame, { primary: primary === tabId });
          },
          state(next, why = next) {
            reason = why;
            post({ kind: "state", state: next, reason });
            dispatcher.setState(next, why);
            if (next === "closed") finish();
          },
          visible: () => self().visible || [...tabs.values()].some((tab) => tab.visible && alive(tab)),
        },
      );
      return new Promise((resolve) => (release = resolve));
    }

    // Give the socket and the lock up; the caller says whether to queue again.
    function stepDown() {
      grant = null;
      unansweredSince = null;
      socket?.close();
      socket = null;
      release?.();
      release = null;
      joined = false; // what the next leader sends before this tab hears it is missed
    }

    function receive({ data }) {
      switch (data.kind) {
        case "tab": {
          const before = tabs.get(data.id);
          tabs.set(data.id, { ...data.tab, seenAt: Date.now() });
          // The answer to a heartbeat is the state (a tab that joined needs it
          // anyway); a tab that became visible is a reason to retry now.
          if (socket) {
            post({ kind: "state", state: dispatcher.state, reason });
            if (data.tab.visible && !before?.visible) socket.reconnect();
          }
          return;
        }
        case "bye":
          tabs.delete(data.id);
          if (data.leader) leaderState = null; // until the next one speaks
          return;
        case "leader":
          heardFromLeader();
          announce();
          return;
        case "send":
          if (socket) post({ kind: "sent", to: data.from, id: data.id, ok: socket.send(data.message) });
          return;
        case "sent":
          heardFromLeader();
          if (data.to === tabId) pendingSends.get(data.id)?.(data.ok);
          return;
        case "reconnect":
          socket?.reconnect();
          return;
        case "frame":
          // Even while this tab leads: the one before may have sent it on its
          // way just before stepping down. Ids make a second copy harmless.
          heardFromLeader();
          advanceCursor(data.frame.cursor);
          dispatcher.deliver(data.frame, { primary: data.primary === tabId });
          return;
        case "state":
          heardFromLeader();
          receiveState(data);
          return;
      }
    }

    function receiveState({ state, reason: why }) {
      if (state === "closed") {
        // Signed out (or in as someone else): every tab is.
        dispatcher.setState("closed", why);
        finish();
        return;
      }
      if (socket) return; // an old leader's last word: this tab leads now
      leaderState = state;
      if (state !== dispatcher.state) dispatcher.setState(state, why);
      if (!joined) {
        joined = true;
        dispatcher.deliver({ type: "sync" }, { primary: false });
      }
    }

    // Visible followers ask often, since they steal from a silent leader;
    // hidden tabs' timers are throttled, so they only say they are still there.
    function beat() {
      const visible = document.visibilityState === "visible";
      if (!socket && !paused) {
        if (visible && unansweredSince !== null && Date.now() - unansweredSince >= LEADER_SILENT_MS) {
          steal();
        } else {
          announce();
        }
      }
      heartbeat = setTimeout(beat, visible ? HEARTBEAT_MS : HIDDEN_HEARTBEAT_MS);
    }

    function onUse() {
      if (document.visibilityState === "visible") usedAt = Date.now();
      announce();
      clearTimeout(heartbeat);
      beat();
    }

    // Resolves once the socket took the command, or false (nothing sent); a
    // follower's command goes out on the leader's socket, which answers.
    function send(message) {
      if (socket) return Promise.resolve(socket.send(message));
      if (leaderState !== "live") return Promise.resolve(false);
      const id = ++sendIds;
      post({ kind: "send", from: tabId, id, message });
      return new Promise((resolve) => {
        const settle = (ok) => {
          clearTimeout(timer);
          pendingSends.delete(id);
          resolve(ok);
        };
        // No answer: the leader is gone; the caller uses HTTP, which is safe
        // even if the command did go out (commands are idempotent).
        const timer = setTimeout(() => settle(false), SEND_TIMEOUT_MS);
        pendingSends.set(id, settle);
      });
    }

    function reconnect() {
      if (socket) socket.reconnect();
      else post({ kind: "reconnect" });
    }

    function sayBye() {
      post({ kind: "bye", id: tabId, leader: socket !== null });
    }

    // Frozen or cached, this tab can't lead or answer: let the others go on.
    function pause() {
      if (paused || closed) return;
      sayBye();
      paused = true;
      queue?.abort();
      queue = null;
      stepDown();
    }

    function resume() {
      if (!paused || closed) return;
      paused = false;
      unansweredSince = null;
      onUse();
      join();
    }

    function onPageHide(event) {
      if (event.persisted) pause();
      else sayBye();
    }

    function onPageShow(event) {
      if (event.persisted) resume();
    }

    // Stop taking part: give the lock up (or stop waiting for it), say goodbye.
    function finish() {
      if (closed) return;
      sayBye();
      closed = true;
      clearTimeout(heartbeat);
      queue?.abort();
      stepDown();
      for (const settle of [...pendingSends.values()]) settle(false);
      channel.close();
      window.removeEventListener("online", reconnect);
      window.removeEventListener("focus", onUse);
      document.removeEventListener("visibilitychange", onUse);
      document.removeEventListener("freeze", pause);
      document.removeEventListener("resume", resume);
      window.removeEventListener("pagehide", onPageHide);
      window.removeEventListener("pageshow", onPageShow);
    }

    channel.addEventListener("message", receive);
    window.addEventListener("online", reconnect);
    window.addEventListener("focus", onUse);
    document.addEventListener("visibilitychange", onUse);
    document.addEventListener("freeze", pause);
    document.addEventListener("resume", resume);
    window.addEventListener("pagehide", onPageHide);
    window.addEventListener("pageshow", onPageShow);
    beat();
    join();

    return {
      send,
      reconnect,
      get leader() {
        return socket !== null;
      },
      close() {
        finish();
        dispatcher.setState("closed");
      },
    };
  }

  /**
   * The WebSocket itself: hello, resume cursor, acknowledgements, reconnecting.
   * It reports to `sink` (frames, states, and whether anyone looks at a tab) and
   * never touches the page.
   */
  function openSocket({ wsUrl, ticketUrl, sessionCheckUrl, csrfToken, user, lastId = null }, sink) {
    const url = websocketUrl(wsUrl);
    const crossHost = url.hostname !== location.hostname;

    let state = "connecting";
    // Where to resume from: the server's cursor. It can be below the newest id
    // shown while an older event is still being committed; until the first
    // frame carries one, the page's lastId.
    let cursor = null;
    let socket = null;
    let retries = 0;
    let timer = null;
    let closed = false;
    let unacknowledged = [];
    let ackTimer = null;
    let held = []; // frames of this attempt before its welcome
    let overflowed = false;

    function setState(next, why) {
      state = next;
      sink.state(next, why);
    }

    // Same host (any port): the browser sends Django's session cookie with the
    // handshake. Another host: it doesn't, so fetch a short-lived ticket; a
    // ticket works once, hence a fresh one for every attempt.
    async function helloMessage() {
      const resumeFrom = typeof lastId === "function" ? lastId() : lastId;
      const hello = { type: "hello", last_id: cursor ?? resumeFrom };
      if (crossHost) hello.ticket = await fetchTicket(ticketUrl, csrfToken);
      return hello;
    }

    async function attempt() {
      timer = null;
      setState("connecting");
      let hello;
      try {
        hello = await helloMessage();
      } catch (error) {
        if (error instanceof SignedOut) return signOut();
        return scheduleReconnect();
      }
      // close() may have been called while the ticket was on its way.
      if (closed) return;
      const current = new WebSocket(url);
      socket = current;
      held = [];
      overflowed = false;
      current.addEventListener("open", () => current.send(JSON.stringify(hello)));
      current.addEventListener("message", (message) => receive(message.data));
      current.addEventListener("close", (event) => {
        socket = null;
        if (closed) return;
        if (AUTH_CLOSE_CODES.has(event.code)) {
          reconnectIfStillLoggedIn();
        } else {
          scheduleReconnect();
        }
      });
    }

    async function reconnectIfStillLoggedIn() {
      let signedOut = true;
      if (sessionCheckUrl) {
        try {
          const response = await fetch(sessionCheckUrl, {
            credentials: "same-origin",
            redirect: "manual",
          });
          signedOut = isSignedOut(response);
        } catch (error) {
          // Django unreachable says nothing about the session: keep trying.
          signedOut = false;
        }
      }
      if (closed) return;
      if (signedOut) {
        signOut();
      } else {
        scheduleReconnect();
      }
    }

    function signOut() {
      closed = true;
      setState("closed", "signed-out");
    }

    function scheduleReconnect() {
      if (closed) return;
      // Exponential backoff with full jitter, so a server restart doesn't get
      // every browser back in the same second.
      const cap = sink.visible() ? MAX_DELAY_VISIBLE : MAX_DELAY_HIDDEN;
      const delay = Math.random() * Math.min(cap, BASE_DELAY * 2 ** retries);
      retries += 1;
      setState("offline");
      timer = setTimeout(attempt, delay);
    }

    // Retry now instead of at the end of the backoff (a "retry now" button,
    // the network coming back, a tab becoming visible).
    function reconnect() {
      if (closed || timer === null) return;
      clearTimeout(timer);
      attempt();
    }

    function advanceCursor(value) {
      if (typeof value === "number") cursor = Math.max(cursor ?? 0, value);
    }

    function receive(text) {
      let frame;
      try {
        frame = JSON.parse(text);
      } catch (error) {
        console.error("live: frame is not JSON", error);
        return;
      }
      if (frame.type === "welcome") return welcome(frame);
      // An error answers the hello itself and says nothing about anyone.
      if (state !== "live" && frame.type !== "error") return hold(frame);
      accept(frame);
    }

    function hold(frame) {
      if (overflowed) return;
      held.push(frame);
      if (held.length > MAX_HELD_FRAMES) {
        held = [];
        overflowed = true;
      }
    }

    function welcome(frame) {
      if (user && String(frame.user?.id) !== String(user)) {
        // Someone else signed in in this browser since the page loaded.
        close();
        setState("closed", "other-user");
        return;
      }
      const replay = overflowed ? [{ type: "resync", reason: "too many missed frames" }] : held;
      held = [];
      overflowed = false;
      replay.forEach(accept);
      advanceCursor(frame.cursor);
      retries = 0;
      setState("live");
      flushAcknowledgements();
      sink.frame(frame);
    }

    function accept(frame) {
      if (frame.type === "notification") acknowledge(frame.id);
      if (frame.type === "notification" || frame.type === "push") advanceCursor(frame.cursor);
      sink.frame(frame);
    }

    function acknowledge(id) {
      if (!Number.isInteger(id)) return;
      unacknowledged.push(id);
      if (unacknowledged.length > MAX_UNACKNOWLEDGED) unacknowledged.shift();
      if (ackTimer === null) ackTimer = setTimeout(flushAcknowledgements, ACK_DELAY);
    }

    // Unsent ones wait for the next welcome (a replay may bring them again).
    function flushAcknowledgements() {
      clearTimeout(ackTimer);
      ackTimer = null;
      while (unacknowledged.length > 0) {
        if (!send({ type: "ack", ids: unacknowledged.slice(0, MAX_ACK_IDS) })) return;
        unacknowledged = unacknowledged.slice(MAX_ACK_IDS);
      }
    }

    function send(message) {
      if (socket && socket.readyState === WebSocket.OPEN && state === "live") {
        socket.send(JSON.stringify(message));
        return true;
      }
      return false;
    }

    // Silent: the caller decides what the page is told.
    function close() {
      closed = true;
      clearTimeout(timer);
      clearTimeout(ackTimer);
      timer = null;
      socket?.close(1000);
      socket = null;
    }

    attempt();
    return { send, reconnect, close };
  }

  // Relative to the page, so `/ws` works; browsers reject http(s) URLs.
  function websocketUrl(wsUrl) {
    const url = new URL(wsUrl, location.href);
    if (url.protocol === "http:") url.protocol = "ws:";
    if (url.protocol === "https:") url.protocol = "wss:";
    return url;
  }

  /** Django's answer to a ticket request said the user is signed out. */
  class SignedOut extends Error {}

  async function fetchTicket(ticketUrl, csrfToken) {
    const response = await fetch(ticketUrl, {
      method: "POST",
      credentials: "same-origin",
      redirect: "manual",
      headers: csrfToken ? { "X-CSRFToken": csrfToken } : {},
    });
    if (isSignedOut(response)) throw new SignedOut(`POST ${ticketUrl}: signed out`);
    if (!response.ok) throw new Error(`POST ${ticketUrl}: HTTP ${response.status}`);
    return (await response.json()).ticket;
  }

  function subscribe(registry, key, handler) {
    if (!registry.has(key)) registry.set(key, new Set());
    registry.get(key).add(handler);
    return () => registry.get(key)?.delete(handler);
  }

  // One page's broken handler must not stop the connection or other handlers.
  function safely(handler, ...args) {
    try {
      handler(...args);
    } catch (error) {
      console.error("live: handler failed", error);
    }
  }

  /**
   * The client's words and formats for a page: the catalog the server
   * rendered in the request's language (`strings` in the configuration:
   * notifications/client_strings.py), and numbers, dates and relative times
   * formatted by Intl in the language of `element` (its closest `lang`, else
   * the page's, else the browser's): an English page in a French browser
   * says "5 minutes ago".
   *
   * @param {{text?: object, plural?: object}} [catalog]
   * @param {Element} [element]
   */
  function localize(catalog = {}, element = document.documentElement) {
    const lang = pageLanguage(element);
    const numbers = new Intl.NumberFormat(lang);
    const relative = new Intl.RelativeTimeFormat(lang, { numeric: "auto" });
    const fill = (template, params = {}) =>
      template.replace(/%\((\w+)\)[sd]/g, (placeholder, name) => {
        const value = params[name];
        if (value === undefined) return placeholder;
        return typeof value === "number" ? numbers.format(value) : String(value);
      });
    const text = (key, params) => fill(catalog.text?.[key] ?? STATE_TEXT[key] ?? key, params);

    // The form Django's ngettext picks for this count (client_strings.py).
    function plural(key, count, params = {}) {
      const { forms, index } = catalog.plural?.[key] ?? { forms: [key], index: "" };
      const n = Math.abs(Math.trunc(count));
      const form = forms[Number(index[n < index.length ? n : 100 + (n % 100)] ?? 0)] ?? forms[0];
      return fill(form, { count, ...params });
    }

    /** "now", "5 minutes ago", "yesterday"; past a week, the date. */
    function ago(timestamp) {
      const date = new Date(timestamp);
      let value = (date.getTime() - Date.now()) / 1000;
      for (const [unit, size] of TIME_UNITS) {
        if (Math.abs(value) < size) {
          return unit === "second" && Math.abs(value) < 10
            ? relative.format(0, "second")
            : relative.format(Math.trunc(value), unit);
        }
        value /= size;
      }
      return date.toLocaleDateString(lang);
    }

    /** "Today", "Yesterday", else the date: the heading of a day's group. */
    function day(timestamp) {
      const date = new Date(timestamp);
      const days = Math.round((startOfDay(new Date()) - startOfDay(date)) / 86_400_000);
      if (days === 0) return text("today");
      if (days === 1) return text("yesterday");
      const options = { weekday: "long", day: "numeric", month: "long" };
      if (date.getFullYear() !== new Date().getFullYear()) options.year = "numeric";
      return date.toLocaleDateString(lang, options);
    }

    return {
      lang,
      text,
      plural,
      ago,
      day,
      number: (value) => numbers.format(value),
      dateTime: (timestamp) => new Date(timestamp).toLocaleString(lang),
    };
  }

  const TIME_UNITS = [
    ["second", 60],
    ["minute", 60],
    ["hour", 24],
    ["day", 7],
  ];

  function startOfDay(date) {
    return new Date(date.getFullYear(), date.getMonth(), date.getDate()).getTime();
  }

  // A lang attribute that isn't a language tag is skipped, not an exception.
  function pageLanguage(element) {
    const tagged = element?.closest?.("[lang]")?.lang || document.documentElement.lang;
    for (const candidate of [tagged, navigator.language]) {
      try {
        if (candidate) return Intl.getCanonicalLocales(candidate)[0];
      } catch (error) {
        // not a language tag: try the next
      }
    }
    return "en";
  }

  LiveNotifications.connect = connect;
  LiveNotifications.isSignedOut = isSignedOut;
  LiveNotifications.localize = localize;
  document.dispatchEvent(new Event("live-notifications:loaded"));

  // `{% live_config %}` on the page: the client starts with it, so its DOM
  // events reach htmx and Alpine without a line of the page's JavaScript.
  const pageConfig = document.getElementById("live-config");
  if (pageConfig) connect(JSON.parse(pageConfig.textContent));
})();
