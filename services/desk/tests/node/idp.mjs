// A real OpenID provider for the desk's sign-in test (the certified `oidc-provider` package), standing in
// for the hospital's: authorization code flow with PKCE required, ID tokens carrying the staff's roles,
// and JWT access tokens for the services' API (resource indicator), signed with a key made at start; refresh
// tokens, rotated at each use, as a hospital's provider issues them to a confidential client.
// Usage: node idp.mjs PORT CLIENT_ID CLIENT_SECRET REDIRECT_URI AUDIENCE [ACCESS_TOKEN_SECONDS]
import { generateKeyPairSync, randomUUID } from "node:crypto";
import Provider from "oidc-provider";

const [port, clientId, clientSecret, redirectUri, audience, accessTokenSeconds = "3600"] = process.argv.slice(2);
const accessTokenTTL = Number(accessTokenSeconds);
const issuer = `http://localhost:${port}`;
// Who may sign in, and the roles the hospital's directory gives them (any password: dev interactions).
const STAFF = {
  "coord-oidc": { name: "受付 桜", roles: ["coordinator"] },
  "nobody": { name: "No Role", roles: [] },
};

const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: "jwk" }), kid: randomUUID(), alg: "RS256", use: "sig" };

const provider = new Provider(issuer, {
  clients: [{
    client_id: clientId, client_secret: clientSecret, redirect_uris: [redirectUri],
    response_types: ["code"], grant_types: ["authorization_code", "refresh_token"], token_endpoint_auth_method: "client_secret_basic",
  }],
  jwks: { keys: [jwk] },
  pkce: { required: () => true },
  claims: { openid: ["sub"], profile: ["name", "roles"] },
  conformIdTokenClaims: false,
  findAccount: async (_ctx, sub) => ({
    accountId: sub,
    claims: async () => ({ sub, name: STAFF[sub]?.name ?? sub, roles: STAFF[sub]?.roles ?? [] }),
  }),
  features: {
    devInteractions: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => audience,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: "openid profile", audience, accessTokenFormat: "jwt", accessTokenTTL,
        jwt: { sign: { alg: "RS256" } },
      }),
    },
  },
  // Without asking for offline_access (as Keycloak does for a confidential client), and a new one at each use.
  issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed("refresh_token"),
  rotateRefreshToken: () => true,
  extraTokenClaims: async (_ctx, token) => ({ roles: STAFF[token.accountId]?.roles ?? [] }),
  ttl: { Session: 3600, Interaction: 600, Grant: 3600, IdToken: 3600, AccessToken: accessTokenTTL, RefreshToken: 3600 },
});
provider.listen(Number(port), () => console.log(`listening ${issuer}`));
