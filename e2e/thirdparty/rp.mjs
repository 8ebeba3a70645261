// An independent relying party: discovers Gatehouse with openid-client,
// and validates back-channel logout tokens with jose exactly as OpenID
// Connect Back-Channel Logout 1.0 §2.6 says. Every token it accepts or
// rejects is printed as one JSON line on stdout.
//
//   node rp.mjs <issuer> <client_id> <client_secret> <port>
import http from "node:http";
import * as client from "openid-client";
import { createRemoteJWKSet, jwtVerify } from "jose";

const [issuer, clientId, secret, port] = process.argv.slice(2);
const config = await client.discovery(new URL(issuer), clientId, secret, undefined, {
  execute: [client.allowInsecureRequests],
});
const meta = config.serverMetadata();
if (!meta.backchannel_logout_supported) throw new Error("provider does not support back-channel logout");
const jwks = createRemoteJWKSet(new URL(meta.jwks_uri));
const seen = new Set();
const EVENT = "http://schemas.openid.net/event/backchannel-logout";

async function validate(token) {
  const { payload, protectedHeader } = await jwtVerify(token, jwks, {
    issuer: meta.issuer, audience: clientId, typ: "logout+jwt", maxTokenAge: "5m", requiredClaims: ["iat", "jti", "events"],
  });
  if (!payload.events || typeof payload.events[EVENT] !== "object") throw new Error("no back-channel logout event");
  if ("nonce" in payload) throw new Error("logout token with a nonce");
  if (!payload.sid && !payload.sub) throw new Error("neither sid nor sub");
  if (seen.has(payload.jti)) throw new Error("replayed jti");
  seen.add(payload.jti);
  return { alg: protectedHeader.alg, sid: payload.sid, sub: payload.sub, aud: payload.aud };
}

http.createServer((req, res) => {
  let body = "";
  req.on("data", (c) => (body += c));
  req.on("end", async () => {
    const token = new URLSearchParams(body).get("logout_token") || "";
    try {
      const claims = await validate(token);
      console.log(JSON.stringify({ accepted: true, ...claims }));
      res.writeHead(200, { "Cache-Control": "no-store" }).end();
    } catch (e) {
      console.log(JSON.stringify({ accepted: false, error: String(e.message || e) }));
      res.writeHead(400, { "Content-Type": "application/json" }).end(JSON.stringify({ error: "invalid_request" }));
    }
  });
}).listen(Number(port), "127.0.0.1", () => console.log(JSON.stringify({ ready: true })));
