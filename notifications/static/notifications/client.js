// Live notifications client: one small module, no build step.
//
// The page renders the inbox from the JSON API, then keeps it live over the
// WebSocket. Every event carries an id; the client shows each id once, so the
// server's at-least-once delivery becomes exactly-once on screen. Event data is
// rendered with textContent only, never as HTML.

const config = JSON.parse(document.getElementById("notifications-config").textContent);
const csrfToken = document.querySelector("[name=csrfmiddlewaretoken]").value;

const list = document.getElementById("notification-list");
const unreadBadge = document.getElementById("unread-count");
const stateLabel = document.getElementById("connection-state");
const emptyNote = document.getElementById("empty");
const loadMoreButton = document.getElementById("load-more");
const toasts = document.getElementById("toasts");

// Close codes that mean the credential is no longer good (docs/protocol.md):
// reconnect only if Django still knows the user (a password change, say,
// rotates the session key but keeps this browser logged in).
const AUTH_CLOSE_CODES = new Set([4001, 4003]);

const items = new Map(); // event id -> <li>
let lastId = 0; // highest event id shown ("mark all read" goes up to it)
// Where to resume from: the server's cursor (docs/protocol.md). It can be
// below lastId while an older event is still being committed; until the
// first frame, the page's newest id.
let cursor = null;
let nextBefore = null; // cursor for older pages
let socket = null;
let retries = 0;

function setState(state, text) {
  stateLabel.dataset.state = state;
  stateLabel.textContent = text;
}

function setUnread(count) {
  unreadBadge.textContent = String(count);
}

function render(notification) {
  const item = document.createElement("li");
  item.className = "notification";
  item.dataset.id = notification.id;
  item.dataset.level = notification.level;
  const title = document.createElement("h2");
  title.textContent = notification.title;
  if (notification.url) {
    const link = document.createElement("a");
    link.href = notification.url;
    link.rel = "noopener";
    link.textContent = notification.title;
    title.replaceChildren(link);
  }
  const body = document.createElement("p");
  body.textContent = notification.body;
  const time = document.createElement("time");
  time.dateTime = notification.created_at;
  time.textContent = new Date(notification.created_at).toLocaleString();
  const readButton = button("mark-read", "Mark read", () => markRead(notification.id));
  const dismissButton = button("dismiss", "Dismiss", () => dismiss(notification.id));
  item.append(dismissButton, readButton, title, body, time);
  setRead(item, Boolean(notification.read));
  return item;
}

function button(className, text, onClick) {
  const element = document.createElement("button");
  element.type = "button";
  element.className = className;
  element.textContent = text;
  element.addEventListener("click", onClick);
  return element;
}

function setRead(item, read) {
  item.classList.toggle("unread", !read);
  item.querySelector(".mark-read").hidden = read;
}

// Insert in id order (newest first), once per id.
function show(notification, { live }) {
  if (items.has(notification.id)) return false;
  const item = render(notification);
  items.set(notification.id, item);
  const newer = [...list.children].find((li) => Number(li.dataset.id) < notification.id);
  list.insertBefore(item, newer ?? null);
  lastId = Math.max(lastId, notification.id);
  emptyNote.hidden = true;
  if (live) toast(notification);
  return true;
}

function toast(notification) {
  const element = document.createElement("div");
  element.className = "toast";
  element.textContent = notification.title;
  toasts.append(element);
  setTimeout(() => element.remove(), 5000);
}

async function api(url, { method = "GET", body } = {}) {
  const response = await fetch(url, {
    method,
    body,
    credentials: "same-origin",
    headers: method === "GET" ? {} : { "X-CSRFToken": csrfToken },
  });
  if (!response.ok) throw new Error(`${method} ${url}: HTTP ${response.status}`);
  return response.json();
}

async function loadPage(before) {
  const url = new URL(config.listUrl, location.href);
  if (before) url.searchParams.set("before", before);
  const page = await api(url);
  page.results.forEach((n) => show(n, { live: false }));
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

function send(message) {
  if (socket && socket.readyState === WebSocket.OPEN && stateLabel.dataset.state === "live") {
    socket.send(JSON.stringify(message));
    return true;
  }
  return false;
}

async function markRead(id) {
  if (send({ type: "mark_read", id })) return;
  const readUrl = config.readUrlTemplate.replace("/0/", `/${id}/`);
  applyRead({ ids: [id], ...(await api(readUrl, { method: "POST" })) });
}

function applyDismissed({ ids, unread }) {
  for (const id of ids) items.get(id)?.remove();
  setUnread(unread);
  emptyNote.hidden = list.children.length > 0;
}

async function dismiss(id) {
  if (send({ type: "dismiss", id })) return;
  const dismissUrl = config.dismissUrlTemplate.replace("/0/", `/${id}/`);
  applyDismissed({ ids: [id], ...(await api(dismissUrl, { method: "POST" })) });
}

async function markAllRead() {
  if (send({ type: "mark_all_read", up_to: lastId })) return;
  const body = new FormData();
  body.set("up_to", String(lastId));
  applyRead({ up_to: lastId, ...(await api(config.readAllUrl, { method: "POST", body })) });
}

// Same host (any port): the browser sends Django's session cookie with the
// handshake. Another host: fetch a short-lived ticket and send it first.
async function helloMessage() {
  const hello = { type: "hello", last_id: cursor ?? lastId };
  if (new URL(config.wsUrl).hostname !== location.hostname) {
    hello.ticket = (await api(config.ticketUrl, { method: "POST" })).ticket;
  }
  return hello;
}

async function connect() {
  setState("connecting", "connecting…");
  let hello;
  try {
    hello = await helloMessage();
  } catch (error) {
    return scheduleReconnect();
  }
  socket = new WebSocket(config.wsUrl);
  socket.addEventListener("open", () => socket.send(JSON.stringify(hello)));
  socket.addEventListener("message", (message) => handle(JSON.parse(message.data)));
  socket.addEventListener("close", (event) => {
    socket = null;
    if (AUTH_CLOSE_CODES.has(event.code)) {
      reconnectIfStillLoggedIn();
    } else {
      scheduleReconnect();
    }
  });
}

async function reconnectIfStillLoggedIn() {
  const response = await fetch(config.listUrl + "?limit=1", { credentials: "same-origin" });
  if (response.status === 401) {
    setState("closed", "signed out: log in again");
  } else {
    scheduleReconnect();
  }
}

function scheduleReconnect() {
  // Exponential backoff with full jitter, so a server restart doesn't get
  // every browser back in the same second.
  const delay = Math.random() * Math.min(30000, 500 * 2 ** retries);
  retries += 1;
  setState("offline", "reconnecting…");
  setTimeout(connect, delay);
}

function advanceCursor(value) {
  if (typeof value === "number") cursor = Math.max(cursor ?? 0, value);
}

function handle(message) {
  switch (message.type) {
    case "welcome":
      advanceCursor(message.cursor);
      retries = 0;
      setState("live", "live");
      setUnread(message.unread);
      break;
    case "notification":
      advanceCursor(message.cursor);
      if (show(message, { live: true })) {
        setUnread(Number(unreadBadge.textContent) + 1);
      }
      break;
    case "read":
      applyRead(message);
      break;
    case "dismissed":
      applyDismissed(message);
      break;
    case "resync":
      // Too much was missed to replay: reload the first page over HTTP.
      loadPage(null);
      break;
    case "error":
      console.warn("notifications:", message.code, message.message);
      break;
    default:
      break;
  }
}

document.getElementById("mark-all-read").addEventListener("click", markAllRead);
loadMoreButton.addEventListener("click", () => loadPage(nextBefore));

loadPage(null).finally(connect);
