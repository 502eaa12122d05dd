// A real OpenID provider for the SSO tests: panva's oidc-provider (OpenID Certified), with the authorization
// code flow (PKCE), the device flow and client credentials, on 127.0.0.1. Its users, clients and CI claims come
// from the JSON file named by IDP_CONFIG (tests/idp.py writes it); only the sign-in form is ours, because the
// library's development form takes any user name without a password.
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { URLSearchParams } from 'node:url';

import Provider from 'oidc-provider';

const config = JSON.parse(readFileSync(process.env.IDP_CONFIG, 'utf8'));
const issuer = config.issuer;
const users = config.users; // name -> {password, email, groups}

const escape = (text) => String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const provider = new Provider(issuer, {
  clients: config.clients,
  extraClientMetadata: { properties: ['ci_claims', 'token_ttl'] },
  cookies: { keys: ['packyard-test-idp'] },
  scopes: ['openid', 'profile', 'email', 'groups', 'offline_access'],
  claims: {
    openid: ['sub'],
    profile: ['preferred_username', 'name'],
    email: ['email', 'email_verified'],
    groups: ['groups'],
  },
  // The ID token carries every claim its scopes grant, as Okta, Entra ID and Keycloak can be set to do.
  conformIdTokenClaims: false,
  pkce: { required: (ctx, client) => client.tokenEndpointAuthMethod === 'none' },
  features: {
    devInteractions: { enabled: false },
    deviceFlow: { enabled: true },
    clientCredentials: { enabled: true },
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: (ctx) => ctx.oidc.client?.ci_claims ? 'packyard' : undefined,
      useGrantedResource: () => true,
      // A CI job's token: a JWT for the audience it asks for, with the claims its client stands for.
      getResourceServerInfo: (ctx, resource, client) => ({
        scope: 'ci',
        audience: resource,
        accessTokenFormat: 'jwt',
        accessTokenTTL: client.token_ttl || 300,
      }),
    },
  },
  async extraTokenClaims(ctx, token) {
    const client = ctx.oidc.client;
    if (client?.ci_claims && (token.kind === 'ClientCredentials' || token.kind === 'AccessToken')) return client.ci_claims;
    return undefined;
  },
  async findAccount(ctx, id) {
    const user = users[id];
    if (!user) return undefined;
    return {
      accountId: id,
      async claims() {
        return {
          sub: id, preferred_username: id, name: id, email: user.email, email_verified: true, groups: user.groups,
        };
      },
    };
  },
  // First-party clients: what they ask for is granted without a consent page.
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope('openid profile email groups offline_access');
    grant.addOIDCClaims(['sub', 'preferred_username', 'name', 'email', 'email_verified', 'groups']);
    await grant.save();
    return grant;
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  ttl: { DeviceCode: 300, IdToken: 600, AccessToken: 600, Interaction: 600, Session: 3600, Grant: 3600 },
});
provider.proxy = false;

function loginPage(uid, problem) {
  const error = problem ? `<p role="alert" id="error">${escape(problem)}</p>` : '';
  return `<!doctype html><html lang="en"><head><title>Test IdP sign-in</title></head><body>
<h1>Test IdP</h1>${error}
<form method="post" action="/interaction/${escape(uid)}/login">
<label>User <input name="login" autocomplete="username" required></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required></label>
<button type="submit">Sign in to the IdP</button></form></body></html>`;
}

async function readForm(req) {
  let body = '';
  for await (const chunk of req) body += chunk;
  return Object.fromEntries(new URLSearchParams(body));
}

const callback = provider.callback();
const server = http.createServer(async (req, res) => {
  const match = req.url.match(/^\/interaction\/([^/?]+)(\/login)?/);
  if (!match) return callback(req, res);
  try {
    const details = await provider.interactionDetails(req, res);
    if (details.prompt.name !== 'login') {
      // Consent is granted by loadExistingGrant; any other prompt finishes as is.
      return await provider.interactionFinished(req, res, {}, { mergeWithLastSubmission: true });
    }
    if (req.method === 'POST' && match[2]) {
      const form = await readForm(req);
      const user = users[form.login];
      if (!user || user.password !== form.password) {
        res.writeHead(200, { 'content-type': 'text/html' });
        return res.end(loginPage(details.uid, 'Wrong user name or password.'));
      }
      return await provider.interactionFinished(req, res, { login: { accountId: form.login } }, {
        mergeWithLastSubmission: false,
      });
    }
    res.writeHead(200, { 'content-type': 'text/html' });
    return res.end(loginPage(details.uid));
  } catch (error) {
    res.writeHead(400, { 'content-type': 'text/plain' });
    return res.end(`interaction failed: ${error.message}`);
  }
});
server.listen(config.port, '127.0.0.1', () => console.log(`test IdP at ${issuer}`));
