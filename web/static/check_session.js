// OpenID Connect Session Management 1.0: the OP iframe. A relying party
// posts "client_id session_state" from its own origin; the answer is
// "unchanged", "changed" or "error". The OP browser state is the
// gatehouse-bs cookie, which changes at every sign-in and sign-out.
"use strict";
(function () {
  var cookieName = document.documentElement.getAttribute("data-cookie") || "gatehouse-bs";

  function browserState() {
    var parts = document.cookie.split(";");
    for (var i = 0; i < parts.length; i++) {
      var kv = parts[i].trim().split("=");
      if (kv[0] === cookieName) return decodeURIComponent(kv.slice(1).join("="));
    }
    return "";
  }

  function b64url(buf) {
    var s = "", bytes = new Uint8Array(buf);
    for (var i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  // sessionState computes base64url(SHA-256(client_id origin state salt)).salt
  function sessionState(clientId, origin, state, salt) {
    var data = new TextEncoder().encode(clientId + " " + origin + " " + state + " " + salt);
    return crypto.subtle.digest("SHA-256", data).then(function (h) { return b64url(h) + "." + salt; });
  }
  window.gatehouseSessionState = sessionState;
  window.gatehouseBrowserState = browserState;

  window.addEventListener("message", function (e) {
    if (typeof e.data !== "string" || e.source === window) return;
    var sp = e.data.split(" ");
    if (sp.length !== 2) { e.source.postMessage("error", e.origin); return; }
    var clientId = sp[0], ss = sp[1], dot = ss.lastIndexOf(".");
    if (dot < 0) { e.source.postMessage("error", e.origin); return; }
    sessionState(clientId, e.origin, browserState(), ss.slice(dot + 1)).then(function (want) {
      e.source.postMessage(want === ss ? "unchanged" : "changed", e.origin);
    }, function () { e.source.postMessage("error", e.origin); });
  }, false);
})();
