#!/usr/bin/env node
// Usage: node stdio-client.mjs [--call NAME]... -- CMD [ARGS...]
//
// The official MCP TypeScript SDK client against an MCP server it launches
// over stdio, as desktop hosts do (StdioClientTransport), for
// cmd/idmcp/interop_stdio_test.go. The server inherits this process's
// environment (IDMCP_TOKEN and friends). It connects (initialize), lists
// tools, calls each --call with no arguments, closes (stdin EOF), and prints
// ONE JSON line on stdout:
//   {"ok":true,"tools":[…],
//    "calls":[{"name":…,"ok":bool,"is_error":bool,"text":…,"error":…,"code":…}],"stderr":"…"}
// "ok" is false (with "error", "code") when connecting or listing failed;
// "stderr" is what the server wrote there. Exit status 0 when ok, 1 otherwise.

import { parseArgs } from 'node:util';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';

const { values: opts, positionals } = parseArgs({
  options: { call: { type: 'string', multiple: true, default: [] }, 'timeout-ms': { type: 'string', default: '20000' } },
  allowPositionals: true,
});
const [command, ...args] = positionals;
const timeout = Number(opts['timeout-ms']);

const transport = new StdioClientTransport({ command, args, env: process.env, stderr: 'pipe' });
let stderr = '';
transport.stderr?.on('data', (b) => { stderr += b.toString(); });
const client = new Client({ name: 'idmcp-interop-stdio', version: '1' });
const out = { ok: false, tools: [], calls: [] };
try {
  await client.connect(transport, { timeout });
  const listed = await client.listTools(undefined, { timeout });
  out.tools = listed.tools.map((t) => t.name).sort();
  for (const name of opts.call) {
    try {
      const res = await client.callTool({ name, arguments: {} }, undefined, { timeout });
      out.calls.push({ name, ok: true, is_error: !!res.isError, text: res.content?.[0]?.text ?? '' });
    } catch (e) {
      out.calls.push({ name, ok: false, error: String(e?.message ?? e), code: e?.code });
    }
  }
  out.ok = true;
} catch (e) {
  out.error = String(e?.message ?? e);
  out.code = e?.code;
}
try { await client.close(); } catch { /* the server may be gone */ }
await new Promise((r) => setTimeout(r, 200)); // let the server's last stderr lines arrive
out.stderr = stderr;
process.stdout.write(JSON.stringify(out) + '\n');
process.exit(out.ok ? 0 : 1);
