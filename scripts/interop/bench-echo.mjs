// Usage: node scripts/interop/bench-echo.mjs
//
// The TypeScript SDK's stdio server with the same echo tool as the bare
// mcp-go baseline: scripts/bench passes it to the load generator
// (-ts-stdio) to compare stdio round trips (issue 14). No auth, no audit.
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { z } from "zod";

const server = new McpServer({ name: "ts-echo", version: "1.0.0" });
server.registerTool(
  "echo",
  { description: "Returns its message.", inputSchema: { message: z.string() } },
  async ({ message }) => ({ content: [{ type: "text", text: message }] }),
);
await server.connect(new StdioServerTransport());
