// Which links a notification may carry, the rule notifications/links.py
// applies when the event is sent: an absolute http(s) URL or a path on this
// site ("/exports/42/"). Checked again here, before a link becomes an
// `<a href>` or a `location.assign()`: javascript: and data: URLs never do,
// nor protocol-relative ones ("//evil.example/", and "/\evil.example/", which
// browsers read the same way). tests/link_cases.json holds the cases both
// sides are tested with. A classic script: it registers
// LiveNotifications.isAllowedLink.
(() => {
  const LiveNotifications = (globalThis.LiveNotifications ??= {});

// Browsers drop tabs and newlines anywhere in a URL and trim spaces and
// control characters: "/\t/evil.example" would leave the site.
const SPACE_OR_CONTROL = /[\s\p{C}\p{Z}]/u;
const ABSOLUTE = /^https?:\/\//i;

/**
 * Whether `url` may be a notification's link.
 *
 * @param {unknown} url
 * @returns {boolean}
 */
function isAllowedLink(url) {
  if (typeof url !== "string" || url === "" || SPACE_OR_CONTROL.test(url)) return false;
  if (url.startsWith("/")) return url[1] !== "/" && url[1] !== "\\";
  if (!ABSOLUTE.test(url)) return false;
  try {
    return new URL(url).hostname !== "";
  } catch (error) {
    return false;
  }
}

  LiveNotifications.isAllowedLink ??= isAllowedLink;
  document.dispatchEvent(new Event("live-notifications:loaded"));
})();
