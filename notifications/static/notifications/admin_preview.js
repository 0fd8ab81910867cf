// The event add form's "Preview" and "Send a test to myself": post the form
// as it stands to the admin's JSON views and show the answer. Event data is
// rendered with textContent only.
(() => {
  const box = document.querySelector("[data-role=send-preview]");
  if (!box) return;
  const form = box.closest("form");
  const output = box.querySelector("[data-role=preview-output]");

  async function post(url) {
    const response = await fetch(url, { method: "POST", body: new FormData(form) });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      const errors = Object.values(body.errors ?? {}).flat().map((e) => e.message);
      throw new Error(errors.join(" ") || body.error || `HTTP ${response.status}`);
    }
    return body;
  }

  function show(...nodes) {
    output.replaceChildren(...nodes);
  }

  function text(tag, value, className) {
    const element = document.createElement(tag);
    element.textContent = value;
    if (className) element.className = className;
    return element;
  }

  box.querySelector("[data-action=preview]").addEventListener("click", async () => {
    try {
      const { recipients, notification } = await post(box.dataset.previewUrl);
      const card = document.createElement("div");
      card.className = "notification-preview";
      card.dataset.level = notification.level;
      card.append(text("strong", notification.title), text("p", notification.body));
      if (notification.url) card.append(text("p", notification.url));
      show(text("p", `Reaches ${recipients} user${recipients === 1 ? "" : "s"} now.`, "recipients"), card);
    } catch (error) {
      show(text("p", `Can't preview: ${error.message}`, "errornote"));
    }
  });

  box.querySelector("[data-action=send-test]").addEventListener("click", async () => {
    try {
      await post(box.dataset.testUrl);
      show(text("p", "Sent to you only: check your inbox.", "recipients"));
    } catch (error) {
      show(text("p", `Not sent: ${error.message}`, "errornote"));
    }
  });
})();
