/**
 * Live notifications connection: a dependency-free ES module, no build step.
 *
 * It owns the WebSocket to runwsserver (docs/protocol.md): authentication,
 * `hello`, the resume cursor, reconnecting, and the connection state. Pages
 * render; this module never touches the DOM.
 *
 * @example
 * import { connect } from "./live.js";
 * const live = connect({ wsUrl, ticketUrl, sessionCheckUrl, csrfToken, lastId });
 * const stop = live.on("order.status", (data, push) => { ... });
 * live.onFrame("notification", (frame) => { ... });
 * live.onState((state, text) => { ... });
 * live.send({ type: "mark_read", id });   // true if sent, false if not live
 * live.reconnect();                       // retry now, while reconnecting
 * live.state;                             // "connecting" | "live" | "offline" | "closed"
 * live.close();
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
 *   signed-out user. Without it, an authentication close (4001, 4003) ends
 *   the connection instead of checking and reconnecting.
 * @property {string} [csrfToken] Django's CSRF token, for the ticket `POST`.
 * @property {number | (() => number | null) | null} [lastId] Where to resume
 *   from before the first frame carries a cursor: the newest event id the page
 *   already shows. A function is asked on every attempt, so a page that keeps
 *   showing events can say how far it got.
 *
 * @typedef {object} Live
 * @property {(name: string, handler: (data: any, push: object) => void) => () => void} on
 *   Subscribe to a `push` event name; returns a function that unsubscribes.
 *   Each durable push id is delivered once, even when a reconnect replays it.
 * @property {(type: string, handler: (frame: object) => void) => () => void} onFrame
 *   Subscribe to a server frame type other than `push` (`welcome`,
 *   `notification`, `read`, `dismissed`, `resync`, `error`); returns a
 *   function that unsubscribes.
 * @property {(handler: (state: State, text: string) => void) => () => void} onState
 *   Follow the connection state; the handler is called at once with the
 *   current state. Returns a function that unsubscribes.
 * @property {(message: object) => boolean} send Send a command; false (and
 *   nothing sent) unless the socket is open and welcomed.
 * @property {() => void} reconnect While reconnecting, try again now rather
 *   than after the backoff (it also happens on `online` and when the tab
 *   becomes visible). Reconnect delays are capped at 4 s in a visible tab.
 * @property {State} state
 * @property {() => void} close Close for good: no more reconnecting.
 */

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
// Durable pushes come again when a reconnect resumes below them; remembering
// this many ids covers any replay the server sends, in bounded memory.
const SEEN_PUSH_IDS = 1000;
// Notifications received are acknowledged (the admin's delivery statistics)
// in one message per quarter second, within the protocol's 200 ids per
// message and the rate limit; at most this many wait for a live socket.
const ACK_DELAY = 250;
const MAX_ACK_IDS = 200;
const MAX_UNACKNOWLEDGED = 5000;

const STATE_TEXT = {
  connecting: "connecting…",
  live: "live",
  offline: "reconnecting…",
  closed: "closed",
};

/**
 * Open a live connection and keep it open until `close()`.
 *
 * @param {Options} options
 * @returns {Live}
 */
export function connect({ wsUrl, ticketUrl, sessionCheckUrl, csrfToken, lastId = null }) {
  const url = websocketUrl(wsUrl);
  const crossHost = url.hostname !== location.hostname;
  const pushHandlers = new Map(); // name -> Set of handlers
  const frameHandlers = new Map(); // type -> Set of handlers
  const stateHandlers = new Set();
  const seenPushIds = new Set(); // insertion order: oldest first

  let state = "connecting";
  let stateText = STATE_TEXT.connecting;
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

  function setState(next, text = STATE_TEXT[next]) {
    state = next;
    stateText = text;
    for (const handler of [...stateHandlers]) safely(handler, next, text);
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
      return scheduleReconnect();
    }
    // close() may have been called while the ticket was on its way.
    if (closed) return;
    const current = new WebSocket(url);
    socket = current;
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
        const response = await fetch(sessionCheckUrl, { credentials: "same-origin" });
        signedOut = response.status === 401;
      } catch (error) {
        // Django unreachable says nothing about the session: keep trying.
        signedOut = false;
      }
    }
    if (closed) return;
    if (signedOut) {
      setState("closed", "signed out: log in again");
    } else {
      scheduleReconnect();
    }
  }

  function scheduleReconnect() {
    if (closed) return;
    // Exponential backoff with full jitter, so a server restart doesn't get
    // every browser back in the same second.
    const cap = document.visibilityState === "hidden" ? MAX_DELAY_HIDDEN : MAX_DELAY_VISIBLE;
    const delay = Math.random() * Math.min(cap, BASE_DELAY * 2 ** retries);
    retries += 1;
    setState("offline");
    timer = setTimeout(attempt, delay);
  }

  // Retry now instead of at the end of the backoff (a "retry now" button,
  // the network coming back, the tab becoming visible).
  function reconnect() {
    if (closed || timer === null) return;
    clearTimeout(timer);
    attempt();
  }

  function onVisible() {
    if (document.visibilityState === "visible") reconnect();
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
    switch (frame.type) {
      case "push":
        advanceCursor(frame.cursor);
        deliverPush(frame);
        return;
      case "welcome":
        advanceCursor(frame.cursor);
        retries = 0;
        setState("live");
        flushAcknowledgements();
        break;
      case "notification":
        advanceCursor(frame.cursor);
        acknowledge(frame.id);
        break;
      default:
        break;
    }
    for (const handler of [...(frameHandlers.get(frame.type) ?? [])]) {
      safely(handler, frame);
    }
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

  function deliverPush(frame) {
    // A null id is a live-only push: never replayed, so never a duplicate.
    if (Number.isInteger(frame.id)) {
      if (seenPushIds.has(frame.id)) return;
      seenPushIds.add(frame.id);
      if (seenPushIds.size > SEEN_PUSH_IDS) {
        seenPushIds.delete(seenPushIds.values().next().value);
      }
    }
    for (const handler of [...(pushHandlers.get(frame.name) ?? [])]) {
      safely(handler, frame.data, frame);
    }
  }

  function send(message) {
    if (socket && socket.readyState === WebSocket.OPEN && state === "live") {
      socket.send(JSON.stringify(message));
      return true;
    }
    return false;
  }

  function close() {
    closed = true;
    window.removeEventListener("online", reconnect);
    document.removeEventListener("visibilitychange", onVisible);
    clearTimeout(timer);
    timer = null;
    socket?.close(1000);
    socket = null;
    setState("closed");
  }

  window.addEventListener("online", reconnect);
  document.addEventListener("visibilitychange", onVisible);
  attempt();

  return {
    on: (name, handler) => subscribe(pushHandlers, name, handler),
    onFrame: (type, handler) => subscribe(frameHandlers, type, handler),
    onState(handler) {
      stateHandlers.add(handler);
      safely(handler, state, stateText);
      return () => stateHandlers.delete(handler);
    },
    send,
    reconnect,
    get state() {
      return state;
    },
    close,
  };
}

// Relative to the page, so `/ws` works; browsers reject http(s) URLs.
function websocketUrl(wsUrl) {
  const url = new URL(wsUrl, location.href);
  if (url.protocol === "http:") url.protocol = "ws:";
  if (url.protocol === "https:") url.protocol = "wss:";
  return url;
}

async function fetchTicket(ticketUrl, csrfToken) {
  const response = await fetch(ticketUrl, {
    method: "POST",
    credentials: "same-origin",
    headers: csrfToken ? { "X-CSRFToken": csrfToken } : {},
  });
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
