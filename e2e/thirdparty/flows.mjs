// A relying party nobody at Gatehouse wrote: openid-client (npm) drives
// every flow Gatehouse offers, one JSON command per line on stdin, one
// JSON answer per line on stdout. The Go test plays the browser.
//
//   node flows.mjs <issuer> <client_id> <client_secret> <redirect_uri>
//
// Commands ({"op": ...}):
//   start {flow: code|hybrid|implicit, response_mode?, scope?} -> {url}
//   callback {url, body?}      -> {tokens, claims}   (body: form_post fields)
//   refresh {old?: true}        -> {tokens} or {error}
//   userinfo                    -> {claims}
//   introspect {which}          -> {answer}
//   revoke {which}              -> {ok}
//   client_credentials {client_id, client_secret, scope} -> {tokens}
import readline from "node:readline";
import * as client from "openid-client";

const [issuer, clientId, secret, redirectUri] = process.argv.slice(2);
const insecure = { execute: [client.allowInsecureRequests] };
let config = await client.discovery(new URL(issuer), clientId, secret, undefined, insecure);

let pending = null; // the authorization request in flight
let tokens = null; // the latest token response
let previousRefresh = null;
let sub = null;

const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");
const fail = (e) => ({ error: String(e.error || e.code || e.message || e), description: e.error_description || e.cause?.error_description || "" });

async function start({ flow, response_mode, scope }) {
  const state = client.randomState();
  const nonce = client.randomNonce();
  const verifier = client.randomPKCECodeVerifier();
  config = await client.discovery(new URL(issuer), clientId, secret, undefined, insecure);
  const params = { redirect_uri: redirectUri, scope: scope || "openid profile email", state, nonce };
  if (flow === "code") {
    params.code_challenge = await client.calculatePKCECodeChallenge(verifier);
    params.code_challenge_method = "S256";
  } else if (flow === "hybrid") {
    client.useCodeIdTokenResponseType(config);
    params.code_challenge = await client.calculatePKCECodeChallenge(verifier);
    params.code_challenge_method = "S256";
  } else if (flow === "implicit") {
    client.useIdTokenResponseType(config);
  }
  if (response_mode) params.response_mode = response_mode;
  pending = { flow, state, nonce, verifier };
  return { url: client.buildAuthorizationUrl(config, params).href };
}

async function callback({ url, body }) {
  const input = body
    ? new Request(url, { method: "POST", body: new URLSearchParams(body), headers: { "content-type": "application/x-www-form-urlencoded" } })
    : new URL(url);
  const { flow, state, nonce, verifier } = pending;
  if (flow === "implicit") {
    const claims = await client.implicitAuthentication(config, input, nonce, { expectedState: state });
    sub = claims.sub;
    return { claims };
  }
  tokens = await client.authorizationCodeGrant(config, input, {
    pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce, idTokenExpected: true,
  });
  const claims = tokens.claims();
  sub = claims.sub;
  return { tokens: summary(tokens), claims };
}

function summary(t) {
  return { access_token: t.access_token, refresh_token: t.refresh_token, id_token: !!t.id_token, scope: t.scope, expires_in: t.expires_in, token_type: t.token_type };
}

async function refresh({ old }) {
  const rt = old ? previousRefresh : tokens.refresh_token;
  const next = await client.refreshTokenGrant(config, rt);
  if (!old) {
    previousRefresh = tokens.refresh_token;
    tokens = next;
  }
  return { tokens: summary(next), claims: next.id_token ? next.claims() : null };
}

const token = (which) => (which === "refresh" ? tokens.refresh_token : which === "previous_refresh" ? previousRefresh : tokens.access_token);

const handlers = {
  start,
  callback,
  refresh,
  userinfo: async () => ({ claims: await client.fetchUserInfo(config, tokens.access_token, sub) }),
  introspect: async ({ which }) => ({ answer: await client.tokenIntrospection(config, token(which)) }),
  revoke: async ({ which }) => {
    await client.tokenRevocation(config, token(which));
    return { ok: true };
  },
  client_credentials: async ({ client_id, client_secret, scope }) => {
    const c = await client.discovery(new URL(issuer), client_id, client_secret, undefined, insecure);
    return { tokens: summary(await client.clientCredentialsGrant(c, { scope })) };
  },
};

out({ ready: true, issuer: config.serverMetadata().issuer });
for await (const line of readline.createInterface({ input: process.stdin })) {
  let cmd;
  try {
    cmd = JSON.parse(line);
  } catch {
    out({ error: "bad command" });
    continue;
  }
  try {
    out(await handlers[cmd.op](cmd));
  } catch (e) {
    out(fail(e));
  }
}
