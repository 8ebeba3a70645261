// Gatehouse passkeys (chain kind webauthn). The page's form#gh-step
// carries the module's two endpoints (data-begin, data-finish) and the
// hidden fields attempt and csrf. On the passkey's own page the button
// #gh-passkey runs the ceremony; on a sign-in form whose username field
// has autocomplete "... webauthn", the passkeys are offered in that
// field's autofill (conditional mediation) and the form works as usual.
(function () {
  "use strict";
  var form = document.getElementById("gh-step");
  if (!form || !window.PublicKeyCredential) return;

  function b64(buf) {
    var s = "", bytes = new Uint8Array(buf);
    for (var i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function bytes(s) {
    s = s.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) s += "=";
    var bin = atob(s), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  }
  function ids(list) {
    return (list || []).map(function (c) {
      var d = { type: c.type, id: bytes(c.id) };
      if (c.transports) d.transports = c.transports;
      return d;
    });
  }
  function post(url, body) {
    body.attempt = form.elements.attempt.value;
    body.csrf = form.elements.csrf.value;
    return fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body)
    }).then(function (r) {
      return r.json().then(function (j) {
        if (!r.ok) throw new Error(j.error || "The sign-in service refused this step.");
        return j;
      });
    });
  }
  function encode(cred) {
    var r = cred.response, out = {
      id: cred.id, rawId: b64(cred.rawId), type: cred.type,
      authenticatorAttachment: cred.authenticatorAttachment || undefined,
      clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
      response: { clientDataJSON: b64(r.clientDataJSON) }
    };
    if (r.attestationObject) {
      out.response.attestationObject = b64(r.attestationObject);
      if (r.getTransports) out.response.transports = r.getTransports();
    } else {
      out.response.authenticatorData = b64(r.authenticatorData);
      out.response.signature = b64(r.signature);
      if (r.userHandle) out.response.userHandle = b64(r.userHandle);
    }
    return out;
  }
  // run does one ceremony: begin, the browser's dialog, finish.
  function run(conditional, signal) {
    return post(form.dataset.begin, { data: { conditional: conditional } }).then(function (begun) {
      var o = begun.data.options, opts = {};
      o.challenge = bytes(o.challenge);
      if (begun.data.kind === "create") {
        o.user.id = bytes(o.user.id);
        o.excludeCredentials = ids(o.excludeCredentials);
        opts.publicKey = o;
        return navigator.credentials.create(opts).then(function (c) { return [begun, c]; });
      }
      o.allowCredentials = ids(o.allowCredentials);
      opts.publicKey = o;
      if (conditional) { opts.mediation = "conditional"; opts.signal = signal; }
      return navigator.credentials.get(opts).then(function (c) { return [begun, c]; });
    }).then(function (r) {
      var name = form.elements.keyname ? form.elements.keyname.value : "";
      return post(form.dataset.finish, { continuation: r[0].continuation, data: { credential: encode(r[1]), name: name } });
    }).then(function (done) { window.location.assign(done.next); });
  }
  function show(err) {
    var p = document.getElementById("gh-passkey-error");
    if (!p) return;
    // The page gives these texts in its language (data-closed, data-failed).
    var texts = (document.getElementById("gh-passkey") || p).dataset;
    p.textContent = err && err.name === "NotAllowedError"
      ? texts.closed || "The passkey dialog was closed or timed out. Try again, or use another method."
      : (err && err.message) || texts.failed || "The passkey did not work.";
    p.hidden = false;
  }

  var button = document.getElementById("gh-passkey");
  if (button) {
    button.hidden = false;
    button.addEventListener("click", function () {
      button.disabled = true;
      run(false).catch(show).then(function () { button.disabled = false; });
    });
    // Enter in the name field runs the ceremony too (the form itself
    // has nothing to post).
    form.addEventListener("submit", function (e) { e.preventDefault(); if (!button.disabled) button.click(); });
    return;
  }
  if (form.querySelector('input[autocomplete~="webauthn"]') && PublicKeyCredential.isConditionalMediationAvailable) {
    var ctl = new AbortController();
    form.addEventListener("submit", function () { ctl.abort(); });
    PublicKeyCredential.isConditionalMediationAvailable().then(function (ok) {
      if (ok) return run(true, ctl.signal);
    }).catch(function () { /* the form still works */ });
  }
})();
