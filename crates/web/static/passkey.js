// Passkey ceremonies for the sign-in and account pages. The server puts the WebAuthn
// options in the form's data-passkey-options attribute; this script turns them into
// browser objects, asks the device (Touch ID, Face ID, Windows Hello, a security
// key), and posts the answer back in the form's hidden "credential" field. No inline
// script: the page's Content-Security-Policy allows only this file.
"use strict";

(function () {
  function fromB64url(s) {
    const pad = "=".repeat((4 - (s.length % 4)) % 4);
    const bin = atob((s + pad).replace(/-/g, "+").replace(/_/g, "/"));
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  }

  function toB64url(buf) {
    const bytes = new Uint8Array(buf);
    let bin = "";
    for (let i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function creationOptions(pk) {
    const o = Object.assign({}, pk);
    o.challenge = fromB64url(pk.challenge);
    o.user = Object.assign({}, pk.user, { id: fromB64url(pk.user.id) });
    if (pk.excludeCredentials) {
      o.excludeCredentials = pk.excludeCredentials.map((c) => Object.assign({}, c, { id: fromB64url(c.id) }));
    }
    return o;
  }

  function requestOptions(pk) {
    const o = Object.assign({}, pk);
    o.challenge = fromB64url(pk.challenge);
    if (pk.allowCredentials) {
      o.allowCredentials = pk.allowCredentials.map((c) => Object.assign({}, c, { id: fromB64url(c.id) }));
    }
    return o;
  }

  function registrationJson(cred) {
    const r = cred.response;
    const json = {
      id: cred.id,
      rawId: toB64url(cred.rawId),
      type: cred.type,
      response: {
        attestationObject: toB64url(r.attestationObject),
        clientDataJSON: toB64url(r.clientDataJSON),
      },
      extensions: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
    };
    if (r.getTransports) json.response.transports = r.getTransports();
    return json;
  }

  function assertionJson(cred) {
    const r = cred.response;
    return {
      id: cred.id,
      rawId: toB64url(cred.rawId),
      type: cred.type,
      response: {
        authenticatorData: toB64url(r.authenticatorData),
        clientDataJSON: toB64url(r.clientDataJSON),
        signature: toB64url(r.signature),
        userHandle: r.userHandle ? toB64url(r.userHandle) : null,
      },
      extensions: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
    };
  }

  function showProblem(form, text) {
    const box = form.querySelector("[data-passkey-problem]");
    if (box) {
      box.textContent = text;
      box.hidden = false;
    }
  }

  async function run(form) {
    const button = form.querySelector("[data-passkey-start]");
    if (!window.PublicKeyCredential || !navigator.credentials) {
      showProblem(form, "This browser cannot use passkeys. Choose another method.");
      return;
    }
    let options;
    try {
      options = JSON.parse(form.dataset.passkeyOptions).publicKey;
    } catch (e) {
      showProblem(form, "The passkey request could not be read. Reload the page and try again.");
      return;
    }
    if (button) button.disabled = true;
    try {
      let json;
      if (form.dataset.passkey === "register") {
        const cred = await navigator.credentials.create({ publicKey: creationOptions(options) });
        json = registrationJson(cred);
      } else {
        const cred = await navigator.credentials.get({ publicKey: requestOptions(options) });
        json = assertionJson(cred);
      }
      form.querySelector("input[name=credential]").value = JSON.stringify(json);
      form.submit();
    } catch (e) {
      if (button) button.disabled = false;
      const cancelled = e && (e.name === "NotAllowedError" || e.name === "AbortError");
      const exists = e && e.name === "InvalidStateError";
      showProblem(
        form,
        exists
          ? "This device is trusted already."
          : cancelled
          ? "The passkey check was cancelled or timed out. Press Continue to try again, or choose another method."
          : "Your device could not complete the passkey check. Try again, or choose another method."
      );
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form[data-passkey]").forEach(function (form) {
      const button = form.querySelector("[data-passkey-start]");
      if (button) {
        button.addEventListener("click", function (ev) {
          ev.preventDefault();
          run(form);
        });
      }
      // At sign-in the browser asks for the biometric straight away, as members expect.
      if (form.dataset.passkeyAuto === "true") run(form);
    });
  });
})();
