// A certified OpenID provider (npm oidc-provider) for Gatehouse to sign
// in through as its relying party: one client (Gatehouse's oidc module),
// the provider's development login pages (any login, any password), and
// back-channel logout to the client's URI. It prints {"ready": true}
// once it listens.
//
//   node op.mjs <port> <client_id> <client_secret> <redirect_uri> <backchannel_logout_uri>
import Provider from "oidc-provider";

const [port, clientId, secret, redirectURI, backchannelURI] = process.argv.slice(2);
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: clientId,
    client_secret: secret,
    redirect_uris: [redirectURI],
    backchannel_logout_uri: backchannelURI,
    backchannel_logout_session_required: true,
    post_logout_redirect_uris: [],
  }],
  features: {
    devInteractions: { enabled: true },
    backchannelLogout: { enabled: true },
  },
  // The relying party is on loopback, which oidc-provider's protection
  // against server-side request forgery refuses: this test provider
  // lets its requests reach it.
  fetch: (url, options) => {
    delete options.dispatcher;
    return globalThis.fetch(url, options);
  },
  claims: { openid: ["sub"], email: ["email", "email_verified"], profile: ["name", "preferred_username"] },
  // Every login is an account: the login name is the subject.
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { sub: id, email: `${id}@np.example`, email_verified: true, name: `${id} (np)`, preferred_username: id };
      },
    };
  },
});
provider.on("server_error", (ctx, err) => console.error("oidc-provider:", err));
provider.on("backchannel.error", (ctx, err, client) => console.error("oidc-provider back-channel logout to", client.clientId, "failed:", err));
provider.listen(Number(port), "127.0.0.1", () => console.log(JSON.stringify({ ready: true, issuer })));
