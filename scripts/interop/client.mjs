#!/usr/bin/env node
// Usage: node client.mjs --url URL (--client-id ID --issuer URL [--scope "a b"] | --bearer)
//                        [--call NAME[=JSON_ARGS]]... [--timeout-ms N]
//
// The official MCP TypeScript SDK client against an MCP server over Streamable
// HTTP, for cmd/idmcp/interop_test.go.
//
// * With --client-id it starts with no token and lets the SDK do OAuth by
//   itself: ClientCredentialsProvider (client/auth-extensions, client_secret_basic,
//   expectedIssuer = --issuer) follows 401 → protected resource metadata →
//   authorization server metadata → token request with `resource` → retry.
//   The secret comes from $CLIENT_SECRET (or --client-secret).
// * With --bearer it sends the pre-obtained access token in $MCP_BEARER_TOKEN
//   (e.g. a delegated token from token exchange) and does no OAuth.
//
// It connects, lists tools, calls each --call in order, and prints ONE JSON
// line on stdout:
//   {"ok":true,"tools":["whoami",…],
//    "calls":[{"name":…,"ok":bool,"is_error":bool,"text":…,"structured":…,
//              "error":…,"code":…,"http":[the requests this call made]}],
//    "trace":[{"method":"POST","url":…,"status":401,"www_authenticate":…,
//              "rpc":"initialize","bearer":false,"grant_type":…,"resource":…,"scope":…}]}
// "ok" is false (with "error") only when connecting or listing failed; a call
// that fails is reported in its entry. The trace records every HTTP request
// the SDK made (never a token or a secret). Exit status: 0 when ok, 1 otherwise.

import { parseArgs } from 'node:util';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ClientCredentialsProvider } from '@modelcontextprotocol/sdk/client/auth-extensions.js';

const { values: opts } = parseArgs({
  options: {
    url: { type: 'string' },
    'client-id': { type: 'string' },
    'client-secret': { type: 'string' },
    issuer: { type: 'string' },
    scope: { type: 'string' },
    bearer: { type: 'boolean', default: false },
    call: { type: 'string', multiple: true, default: [] },
    'timeout-ms': { type: 'string', default: '20000' },
  },
});

const out = { ok: false, tools: [], calls: [], trace: [] };
const finish = (code) => {
  process.stdout.write(`${JSON.stringify(out)}\n`);
  process.exit(code);
};

// A bounded run: never hang the test that started us.
setTimeout(() => {
  out.error = `timed out after ${opts['timeout-ms']} ms`;
  finish(1);
}, Number(opts['timeout-ms'])).unref();

// tracingFetch records each request's shape and answer, without credentials.
async function tracingFetch(input, init = {}) {
  const url = typeof input === 'string' ? input : input.url ?? String(input);
  const method = init.method ?? 'GET';
  const headers = new Headers(init.headers ?? {});
  const entry = { method, url, bearer: /^bearer /i.test(headers.get('authorization') ?? '') };
  if (typeof init.body === 'string' && headers.get('content-type')?.includes('json')) {
    try {
      const msg = JSON.parse(init.body);
      entry.rpc = Array.isArray(msg) ? msg.map((m) => m.method).join(',') : msg.method;
    } catch { /* not JSON-RPC */ }
  } else if (init.body instanceof URLSearchParams || (typeof init.body === 'string' && headers.get('content-type')?.includes('form'))) {
    const form = new URLSearchParams(init.body);
    for (const k of ['grant_type', 'resource', 'scope']) {
      if (form.has(k)) entry[k] = form.get(k);
    }
  }
  out.trace.push(entry);
  const res = await fetch(input, init);
  entry.status = res.status;
  const wwwAuth = res.headers.get('www-authenticate');
  if (wwwAuth) entry.www_authenticate = wwwAuth;
  return res;
}

function parseCall(spec) {
  const i = spec.indexOf('=');
  if (i < 0) return { name: spec, arguments: {} };
  return { name: spec.slice(0, i), arguments: JSON.parse(spec.slice(i + 1)) };
}

function errorInfo(err) {
  return { error: String(err?.message ?? err), ...(err?.code !== undefined ? { code: err.code } : {}) };
}

async function main() {
  if (!opts.url) throw new Error('--url is required');
  const transportOpts = { fetch: tracingFetch };
  if (opts.bearer) {
    const token = process.env.MCP_BEARER_TOKEN;
    if (!token) throw new Error('--bearer needs the token in $MCP_BEARER_TOKEN');
    transportOpts.requestInit = { headers: { Authorization: `Bearer ${token}` } };
  } else {
    const clientSecret = opts['client-secret'] ?? process.env.CLIENT_SECRET;
    if (!opts['client-id'] || !clientSecret || !opts.issuer) {
      throw new Error('--client-id, $CLIENT_SECRET and --issuer are required without --bearer');
    }
    transportOpts.authProvider = new ClientCredentialsProvider({
      clientId: opts['client-id'],
      clientSecret,
      expectedIssuer: opts.issuer,
      scope: opts.scope || undefined,
    });
  }
  const transport = new StreamableHTTPClientTransport(new URL(opts.url), transportOpts);
  const client = new Client({ name: 'idmcp-interop', version: '1.0.0' });
  try {
    await client.connect(transport);
    const { tools } = await client.listTools();
    out.tools = tools.map((t) => t.name);
    out.ok = true;
  } catch (err) {
    Object.assign(out, errorInfo(err));
    return 1;
  }
  for (const spec of opts.call) {
    const call = parseCall(spec);
    const entry = { name: call.name };
    const traceStart = out.trace.length;
    try {
      const res = await client.callTool(call);
      entry.ok = !res.isError;
      entry.is_error = !!res.isError;
      entry.text = (res.content ?? []).filter((c) => c.type === 'text').map((c) => c.text).join('\n');
      if (res.structuredContent !== undefined) entry.structured = res.structuredContent;
      if (res.isError) entry.error = entry.text;
    } catch (err) {
      Object.assign(entry, { ok: false, is_error: false }, errorInfo(err));
    }
    entry.http = out.trace.slice(traceStart);
    out.calls.push(entry);
  }
  await client.close().catch(() => {});
  return 0;
}

main().then(finish, (err) => {
  Object.assign(out, errorInfo(err));
  finish(1);
});
