// The inbox page: one feed, the whole page.
(() => {
  const root = document.querySelector("[data-notifications=inbox]");
  LiveNotifications.mountFeed(root, JSON.parse(document.getElementById("notifications-config").textContent));
})();
