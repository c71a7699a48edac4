// EV battery twin — the read key and the API calls, shared by the vehicle dashboard (app.js)
// and the fleet page (fleet.js). The key is taken once from the page's ?token= or #token=,
// then removed from the address bar (so it is not bookmarked, shared or left in history) and
// kept in this tab's sessionStorage under one entry for both pages; sent as the Authorization
// header and the WebSocket subprotocol only.
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

  /** An absolute URL of the service for `path`, with `extra` as query parameters. */
  function serviceUrl(path, extra) {
    const url = new URL(path, window.location.origin);
    if (extra) for (const [k, v] of Object.entries(extra)) url.searchParams.set(k, String(v));
    return url;
  }

  /** The page's API calls, sending `token` (when there is one) as the bearer key. */
  function apiClient(token) {
    /**
     * The response of an API call as {body, headers}; an Error with `status` (and `detail`,
     * the service's [{loc, msg, type}], when the body has one) when not 2xx.
     */
    async function apiResponse(path, { method = "GET", body, query } = {}) {
      const headers = { Accept: "application/json" };
      if (token) headers.Authorization = `Bearer ${token}`;
      if (body !== undefined) headers["Content-Type"] = "application/json";
      const response = await fetch(serviceUrl(path, query), {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store",
      });
      if (!response.ok) {
        const error = new Error(`${method} ${path}: HTTP ${response.status}`);
        error.status = response.status;
        try {
          const answer = await response.json();
          if (answer && Array.isArray(answer.detail)) error.detail = answer.detail;
          else if (answer && typeof answer.detail === "string") error.detail = [{ loc: [], msg: answer.detail }];
        } catch (err) {
          // not JSON: the status says it
        }
        throw error;
      }
      return { body: await response.json(), headers: response.headers };
    }

    async function api(path, options) {
      return (await apiResponse(path, options)).body;
    }

    return { apiResponse, api };
  }

  return { takeToken, wsAuthProtocol, serviceUrl, apiClient };
})();
