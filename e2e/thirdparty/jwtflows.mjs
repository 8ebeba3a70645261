// A relying party that authenticates with JWTs and sends its
// authorization requests pushed (PAR, RFC 9126) or as signed request
// objects (JAR, RFC 9101), all done by openid-client. The browser part is
// left to the caller: the authorization URL is printed as one JSON line,
// the callback URL the browser reached is read from stdin, then the code
// is exchanged and the access token introspected, each with a fresh
// client assertion; the result is printed as a last JSON line.
//
//   node jwtflows.mjs <issuer> <client_id> <private_key_jwt|client_secret_jwt> <private JWK | secret> <par|jar|jar+par> <redirect_uri>
import readline from "node:readline";
import * as client from "openid-client";
import { importJWK } from "jose";

const [issuer, clientId, method, credential, flow, redirectUri] = process.argv.slice(2);

function out(v) {
  console.log(JSON.stringify(v));
}

try {
  let auth, signingKey;
  if (method === "private_key_jwt") {
    const jwk = JSON.parse(credential);
    signingKey = { key: await importJWK(jwk, jwk.alg), kid: jwk.kid };
    auth = client.PrivateKeyJwt(signingKey);
  } else if (method === "client_secret_jwt") {
    auth = client.ClientSecretJwt(credential);
  } else {
    throw new Error("unknown method " + method);
  }
  const config = await client.discovery(new URL(issuer), clientId, { redirect_uris: [redirectUri] }, auth, {
    execute: [client.allowInsecureRequests],
  });
  const meta = config.serverMetadata();
  if (!meta.token_endpoint_auth_methods_supported.includes(method)) throw new Error("provider does not list " + method);
  if (!meta.pushed_authorization_request_endpoint || !meta.request_parameter_supported) throw new Error("provider lists no PAR or JAR");
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const params = {
    redirect_uri: redirectUri,
    scope: "openid profile email",
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: "S256",
    state,
    nonce,
  };
  let url;
  switch (flow) {
    case "par":
      url = await client.buildAuthorizationUrlWithPAR(config, params);
      break;
    case "jar":
      url = await client.buildAuthorizationUrlWithJAR(config, params, signingKey);
      break;
    case "jar+par":
      url = await client.buildAuthorizationUrlWithJAR(config, params, signingKey);
      url = await client.buildAuthorizationUrlWithPAR(config, url.searchParams);
      break;
    default:
      throw new Error("unknown flow " + flow);
  }
  out({ url: url.href });

  const rl = readline.createInterface({ input: process.stdin });
  const callback = await new Promise((resolve) => rl.once("line", resolve));
  rl.close();
  const tokens = await client.authorizationCodeGrant(config, new URL(callback), {
    pkceCodeVerifier: verifier,
    expectedState: state,
    expectedNonce: nonce,
    idTokenExpected: true,
  });
  const claims = tokens.claims();
  const intro = await client.tokenIntrospection(config, tokens.access_token);
  out({ ok: true, sub: claims.sub, aud: claims.aud, scope: tokens.scope, active: intro.active, introspected_client: intro.client_id });
} catch (e) {
  out({ ok: false, error: String(e.message || e), code: e.code, cause: e.cause ? String(e.cause.error || e.cause) : undefined });
  process.exitCode = 1;
}
