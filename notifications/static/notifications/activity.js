// The activity page: admin actions, newest first, live over live.js (the
// page's client, which {% live_config %} started). The server chose who
// receives each one (the viewers of its model); the page only shows them,
// as text, in the words of the catalog live_config sends (`strings`).
(() => {
  const config = JSON.parse(document.getElementById("live-config").textContent);
  const list = document.querySelector("[data-role=activity]");
  const empty = document.querySelector("[data-role=empty]");
  const stateLabel = document.querySelector("[data-role=state]");
  const words = LiveNotifications.localize(config.strings, list);

  function render(entry) {
    const item = document.createElement("li");
    item.className = "notification";
    item.dataset.action = entry.action;
    const title = document.createElement("h2");
    title.textContent = words.text(`activity-${entry.action}`, {
      user: entry.user.username,
      type: entry.content_type,
      object: entry.object_repr,
    });
    const message = document.createElement("p");
    message.textContent = entry.change_message;
    const time = document.createElement("time");
    time.dateTime = entry.time;
    time.textContent = words.dateTime(entry.time);
    item.append(title, message, time);
    return item;
  }

  const live = LiveNotifications.connect(config);
  live.onState((state, text) => {
    stateLabel.dataset.state = state;
    stateLabel.textContent = text;
  });
  live.on("activity", (entry) => {
    list.prepend(render(entry));
    empty.hidden = true;
  });
})();
