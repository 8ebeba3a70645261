// A client that registers itself with openid-client's
// dynamicClientRegistration (OIDC Dynamic Client Registration 1.0,
// RFC 7591) using an initial access token, then uses what it got: a
// client_credentials grant authenticated with the issued secret. Prints
// one JSON line: the registration as answered and the grant's token
// type, or the error.
//
//   node register.mjs <issuer> <initial access token>
import * as client from "openid-client";

const [issuer, initialAccessToken] = process.argv.slice(2);
try {
  const config = await client.dynamicClientRegistration(
    new URL(issuer),
    {
      client_name: "openid-client registered",
      grant_types: ["client_credentials"],
      token_endpoint_auth_method: "client_secret_post",
      contacts: ["ops@rp.example"],
    },
    undefined,
    { initialAccessToken, execute: [client.allowInsecureRequests] },
  );
  const registered = config.clientMetadata();
  const tokens = await client.clientCredentialsGrant(config);
  console.log(JSON.stringify({ registered, token_type: tokens.token_type, access_token: tokens.access_token }));
} catch (e) {
  console.log(JSON.stringify({ error: String(e.message || e), code: e.code, cause: e.cause?.error }));
  process.exitCode = 1;
}
