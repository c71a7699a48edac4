// EV battery twin — the read key, shared by the vehicle dashboard (app.js) and the fleet page
// (fleet.js): taken once from the page's ?token= or #token=, then removed from the address bar
// (so it is not bookmarked, shared or left in history) and kept in this tab's sessionStorage
// under one entry for both pages; sent as the Authorization header and the WebSocket
// subprotocol only.
"use strict";

window.twinAuth = (() => {
  const TOKEN_STORAGE = "twin.token";
  const WS_AUTH_PREFIX = "twin-auth.";

  function takeToken() {
    const url = new URL(window.location.href);
    const fragment = new URLSearchParams(url.hash.slice(1));
    const given = url.searchParams.get("token") || fragment.get("token");
    if (given) {
      url.searchParams.delete("token");
      fragment.delete("token");
      url.hash = fragment.toString();
      window.history.replaceState(null, "", url);
      try {
        sessionStorage.setItem(TOKEN_STORAGE, given);
      } catch (err) {
        console.warn("sessionStorage unavailable: the key lasts until this page is left", err);
      }
      return given;
    }
    try {
      return sessionStorage.getItem(TOKEN_STORAGE);
    } catch (err) {
      return null;
    }
  }

  /** "twin-auth." + base64url(UTF-8 key), without padding: a valid subprotocol token. */
  function wsAuthProtocol(key) {
    let binary = "";
    for (const byte of new TextEncoder().encode(key)) binary += String.fromCharCode(byte);
    const b64 = btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
    return WS_AUTH_PREFIX + b64;
  }

  return { takeToken, wsAuthProtocol };
})();
