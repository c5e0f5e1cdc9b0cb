#!/usr/bin/env node
// Usage: node oidc.mjs [--port N | N] [--scopes "all scopes of the resource server"]
//
// A real, certified OAuth 2.0 / OpenID Connect authorization server
// (panva's oidc-provider) on 127.0.0.1, configured as the identity provider
// idmcp's HTTP mode is tested against (cmd/idmcp/interop_test.go).
//
// Once listening it prints ONE JSON line on stdout:
//   {"issuer":"http://127.0.0.1:PORT","token_endpoint":…,"jwks_uri":…,
//    "rotate_url":…,"clients":{"alice":"<secret>",…},"scopes":[…],"kid":"…",
//    "personas":{"alice":{"scope":[…],"roles":[…]},…}}
// and logs to stderr only. Port 0 (the default) picks a free port.
//
// What it issues:
// * client_credentials for alice (todo:read files:read, role developer),
//   bob (every scope of --scopes, role admin), carol (no API scope; her
//   client scope is "openid" because an empty client scope means "no
//   restriction" in oidc-provider) and dave (todo:read todo:write, role
//   developer: has the scopes but not the role todo_delete needs). sub is the
//   client id; roles come from extraTokenClaims.
// * With resource=<url> (RFC 8707, resourceIndicators feature) the access
//   token is an RS256 JWT, typ at+jwt, aud=<url>, space-separated scope. Any
//   http(s) resource on 127.0.0.1 or localhost is accepted; without resource
//   oidc-provider issues an opaque token, which idmcp must refuse.
// * RFC 8693 token exchange (grant_type
//   urn:ietf:params:oauth:grant-type:token-exchange), for the clients "agent"
//   and "sub-agent" only: subject_token is an access token of this issuer
//   (signature, iss and exp checked against the current JWKS); the result
//   keeps the subject's sub and roles, may narrow its scope (scope=…, never
//   widen it), is issued for the given resource, has client_id = the calling
//   client, and an act claim whose sub is the calling client with the subject
//   token's own act nested inside (RFC 8693 §4.1: current actor first). So
//   alice → agent → sub-agent gives act {sub: sub-agent, act {sub: agent}}.
//
// Key rotation: POST /__admin/rotate (or SIGHUP) builds a new Provider with a
// new RS256 key behind the same listener. By default the previous key stays in
// the JWKS (after the new one, which signs), as real providers publish
// overlapping keys so tokens in flight stay valid; POST
// /__admin/rotate?keep=0 drops it, so tokens signed before the rotation no
// longer verify. The answer is {"kid": new kid, "kids": [every kid published]}.
// Client secrets and the issuer survive rotation; issued tokens are
// self-contained JWTs, so nothing else is lost by the rebuild.

import { generateKeyPairSync, createPublicKey, verify, randomBytes, randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';

import Provider, { errors } from 'oidc-provider';

// stdout carries exactly one JSON line; oidc-provider's notices (console.info)
// go to stderr with everything else.
console.info = console.error;
console.log = console.error;

const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const TT_ACCESS = 'urn:ietf:params:oauth:token-type:access_token';
const TT_JWT = 'urn:ietf:params:oauth:token-type:jwt';
const DEFAULT_SCOPES = 'todo:read todo:write files:read files:write audit:read';
const TOKEN_TTL = 600; // seconds

const { values: opts, positionals } = parseArgs({
  options: {
    port: { type: 'string' },
    scopes: { type: 'string', default: DEFAULT_SCOPES },
  },
  allowPositionals: true,
});
const allScopes = opts.scopes.split(/\s+/).filter(Boolean);

// Personas. Roles travel in the token's "roles" claim.
const secret = () => randomBytes(18).toString('base64url');
const personas = {
  alice: { scope: ['todo:read', 'files:read'], roles: ['developer'] },
  bob: { scope: allScopes, roles: ['admin'] },
  carol: { scope: [], roles: ['contractor'] },
  // dave may write todos but lacks the admin role: the "missing role" case,
  // which no new token can fix (no insufficient_scope step-up).
  dave: { scope: ['todo:read', 'todo:write'], roles: ['developer'] },
};
const exchangers = ['agent', 'sub-agent'];
const secrets = Object.fromEntries([...Object.keys(personas), ...exchangers].map((id) => [id, secret()]));

function newKey() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  return { ...jwk, kid: randomUUID(), alg: 'RS256', use: 'sig' };
}

// keys[0] signs; the rest are only published.
let keys = [newKey()];
let provider;
let callback;

// delegations holds the claims of tokens being issued by token exchange,
// keyed by the token model, for extraTokenClaims and the JWT customizer.
const delegations = new WeakMap();

function isLoopbackResource(resource) {
  const u = URL.parse(resource);
  return !!u && (u.protocol === 'http:' || u.protocol === 'https:')
    && ['127.0.0.1', 'localhost', '[::1]'].includes(u.hostname);
}

function resourceServerInfo(resource) {
  if (!isLoopbackResource(resource)) {
    throw new errors.InvalidTarget('this test issuer serves loopback resources only');
  }
  return {
    scope: allScopes.join(' '),
    audience: resource,
    accessTokenTTL: TOKEN_TTL,
    accessTokenFormat: 'jwt',
    jwt: { sign: { alg: 'RS256' } },
  };
}

function buildProvider(issuer) {
  const clients = [
    ...Object.entries(personas).map(([id, p]) => ({
      client_id: id,
      client_secret: secrets[id],
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      scope: p.scope.length ? p.scope.join(' ') : 'openid',
    })),
    ...exchangers.map((id) => ({
      client_id: id,
      client_secret: secrets[id],
      grant_types: [TOKEN_EXCHANGE],
      response_types: [],
      redirect_uris: [],
      scope: allScopes.join(' '),
    })),
  ];
  const p = new Provider(issuer, {
    clients,
    jwks: { keys },
    scopes: ['openid', ...allScopes],
    ttl: {
      ClientCredentials: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? TOKEN_TTL,
    },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: false },
      revocation: { enabled: false },
      resourceIndicators: {
        enabled: true,
        defaultResource: async () => undefined,
        useGrantedResource: async () => true,
        getResourceServerInfo: async (_ctx, resource) => resourceServerInfo(resource),
      },
    },
    extraTokenClaims: async (_ctx, token) => {
      const d = delegations.get(token);
      if (d) return { roles: d.roles, act: d.act };
      const persona = personas[token.clientId];
      return persona ? { roles: persona.roles } : undefined;
    },
    formats: {
      customizers: {
        // A delegated token speaks for the subject, not for the client that
        // asked for it (RFC 8693 §2.2.1, §4.1).
        jwt: async (_ctx, token, jwt) => {
          const d = delegations.get(token);
          if (d) jwt.payload.sub = d.sub;
        },
      },
    },
    // oidc-provider's own cookies are irrelevant here; fixed keys keep it quiet.
    cookies: { keys: [secrets.alice] },
  });
  p.registerGrantType(TOKEN_EXCHANGE, tokenExchange,
    ['subject_token', 'subject_token_type', 'actor_token', 'actor_token_type', 'requested_token_type', 'audience', 'resource', 'scope']);
  p.on('server_error', (_ctx, err) => console.error('oidc-provider server_error:', err));
  return p;
}

// verifyAccessToken checks an RS256 JWT of this issuer against the current
// JWKS and returns its payload, or throws InvalidGrant.
function verifyAccessToken(token, issuer) {
  const bad = (why) => new errors.InvalidGrant(`subject_token ${why}`);
  const parts = String(token || '').split('.');
  if (parts.length !== 3) throw bad('is not a JWT');
  let header;
  let payload;
  try {
    header = JSON.parse(Buffer.from(parts[0], 'base64url'));
    payload = JSON.parse(Buffer.from(parts[1], 'base64url'));
  } catch {
    throw bad('is not a JWT');
  }
  if (header.alg !== 'RS256') throw bad('has an unexpected alg');
  const jwk = keys.find((k) => k.kid === header.kid);
  if (!jwk) throw bad('is signed by an unknown key');
  const pub = createPublicKey({ key: { kty: jwk.kty, n: jwk.n, e: jwk.e }, format: 'jwk' });
  if (!verify('RSA-SHA256', Buffer.from(`${parts[0]}.${parts[1]}`), pub, Buffer.from(parts[2], 'base64url'))) {
    throw bad('has a bad signature');
  }
  if (payload.iss !== issuer) throw bad('is from another issuer');
  if (typeof payload.exp !== 'number' || payload.exp <= Date.now() / 1000) throw bad('has expired');
  if (typeof payload.sub !== 'string' || !payload.sub) throw bad('has no sub');
  return payload;
}

// tokenExchange is the RFC 8693 grant, registered with registerGrantType.
async function tokenExchange(ctx) {
  const { client, params, provider: p } = ctx.oidc;
  if (!exchangers.includes(client.clientId)) {
    throw new errors.UnauthorizedClient('this client may not exchange tokens');
  }
  if (![TT_ACCESS, TT_JWT].includes(params.subject_token_type)) {
    throw new errors.InvalidRequest(`subject_token_type must be ${TT_ACCESS}`);
  }
  if (params.actor_token) {
    throw new errors.InvalidRequest('actor_token is not supported: the authenticated client is the actor');
  }
  if (params.requested_token_type && params.requested_token_type !== TT_ACCESS) {
    throw new errors.InvalidRequest(`requested_token_type must be ${TT_ACCESS}`);
  }
  const subject = verifyAccessToken(params.subject_token, p.issuer);
  const subjectScopes = String(subject.scope || '').split(' ').filter(Boolean);
  let scopes = subjectScopes;
  if (params.scope) {
    scopes = params.scope.split(' ').filter(Boolean);
    const extra = scopes.filter((s) => !subjectScopes.includes(s));
    if (extra.length) throw new errors.InvalidScope('requested scope exceeds the subject token\'s', extra.join(' '));
  }
  const resource = params.resource || params.audience
    || (Array.isArray(subject.aud) ? subject.aud[0] : subject.aud);
  if (!resource) throw new errors.InvalidTarget('resource is required');

  const token = new p.ClientCredentials({ client, scope: scopes.join(' ') || undefined });
  token.resourceServer = new p.ResourceServer(resource, resourceServerInfo(resource));
  delegations.set(token, {
    sub: subject.sub,
    roles: subject.roles,
    act: subject.act ? { sub: client.clientId, act: subject.act } : { sub: client.clientId },
  });
  const value = await token.save();
  ctx.body = {
    access_token: value,
    issued_token_type: TT_ACCESS,
    token_type: 'Bearer',
    expires_in: token.expiration,
    ...(token.scope ? { scope: token.scope } : {}),
  };
}

function rotate(keep) {
  const previous = keys;
  keys = keep ? [newKey(), ...previous] : [newKey()];
  provider = buildProvider(provider.issuer);
  callback = provider.callback();
  const kids = keys.map((k) => k.kid);
  console.error(`oidc: rotated signing key; JWKS now ${kids.join(', ')}`);
  return { kid: kids[0], kids };
}

const server = createServer((req, res) => {
  if (req.url.startsWith('/__admin/rotate')) {
    if (req.method !== 'POST') {
      res.writeHead(405, { allow: 'POST' }).end();
      return;
    }
    const keep = new URL(req.url, 'http://x').searchParams.get('keep') !== '0';
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(rotate(keep)));
    return;
  }
  callback(req, res);
});

process.on('SIGHUP', () => rotate(true));
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    server.close();
    server.closeAllConnections();
    process.exit(0);
  });
}

server.listen(Number(opts.port ?? positionals[0] ?? 0), '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  provider = buildProvider(issuer);
  callback = provider.callback();
  process.stdout.write(`${JSON.stringify({
    issuer,
    token_endpoint: `${issuer}/token`,
    jwks_uri: `${issuer}/jwks`,
    rotate_url: `${issuer}/__admin/rotate`,
    clients: secrets,
    scopes: allScopes,
    kid: keys[0].kid,
    personas,
  })}\n`);
});
