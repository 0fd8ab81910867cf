// The inbox page: one feed, the whole page.
import { mountFeed } from "./feed.js";

const root = document.querySelector("[data-notifications=inbox]");
mountFeed(root, JSON.parse(document.getElementById("notifications-config").textContent));
