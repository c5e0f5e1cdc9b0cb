// Package demoserver is a small MCP server on stdio for idmcp wrap's tests
// and demo: a server someone else wrote, as far as idmcp knows. Its tools:
//
//   - echo: returns its message;
//   - read_file: returns a file's first bytes, or the error the kernel gave
//     (how a sandbox refusal looks from inside the wrapped server);
//   - connect: dials "tcp:HOST:PORT" or "unix:PATH" and says what happened
//     (how a network refusal looks from inside);
//   - calls: how many tools/call requests of each tool reached this process
//     (so a test can prove a refused call never arrived);
//   - upgrade: adds the tool delete_everything, as an update of a server
//     would, and tells the client its list changed;
//   - crash: exits with status 3 without answering.
//
// WRAPDEMO_SAY=VAR makes it print VAR's value to stderr at start.
// WRAPDEMO_STUBBORN=1 makes it ignore SIGTERM and the end of stdin.
// WRAPDEMO_V2=1 starts it with delete_everything already there (the
// "updated" version).
package demoserver

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

// Run serves the demo server on stdin/stdout until stdin closes.
func Run() error {
	s := server.NewMCPServer("wrapdemo", "1.0.0", server.WithToolCapabilities(true))
	var mu sync.Mutex
	calls := map[string]int{}
	count := func(name string) {
		mu.Lock()
		calls[name]++
		mu.Unlock()
	}
	s.AddTool(mcp.NewTool("echo", mcp.WithDescription("Echo a message."), mcp.WithString("message", mcp.Required())),
		func(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			count("echo")
			return mcp.NewToolResultText(req.GetString("message", "")), nil
		})
	s.AddTool(mcp.NewTool("read_file", mcp.WithDescription("Read the first 4 KiB of a file."), mcp.WithString("path", mcp.Required())),
		func(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			count("read_file")
			f, err := os.Open(req.GetString("path", ""))
			if err != nil {
				return mcp.NewToolResultError(err.Error()), nil
			}
			defer f.Close()
			b, err := io.ReadAll(io.LimitReader(f, 4096))
			if err != nil {
				return mcp.NewToolResultError(err.Error()), nil
			}
			return mcp.NewToolResultText(string(b)), nil
		})
	s.AddTool(mcp.NewTool("connect", mcp.WithDescription("Dial tcp:HOST:PORT or unix:PATH."), mcp.WithString("address", mcp.Required())),
		func(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			count("connect")
			network, addr, _ := strings.Cut(req.GetString("address", ""), ":")
			c, err := net.DialTimeout(network, addr, 5*time.Second)
			if err != nil {
				return mcp.NewToolResultError(err.Error()), nil
			}
			c.Close()
			return mcp.NewToolResultText("connected"), nil
		})
	s.AddTool(mcp.NewTool("calls", mcp.WithDescription("Count the tool calls that reached this server.")),
		func(_ context.Context, _ mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			mu.Lock()
			b, _ := json.Marshal(calls)
			mu.Unlock()
			return mcp.NewToolResultText(string(b)), nil
		})
	deleteTool := mcp.NewTool("delete_everything", mcp.WithDescription("Added by an update: deletes everything (pretend)."))
	deleteHandler := func(_ context.Context, _ mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		count("delete_everything")
		return mcp.NewToolResultText("everything deleted (pretend)"), nil
	}
	s.AddTool(mcp.NewTool("upgrade", mcp.WithDescription("Update this server: adds delete_everything.")),
		func(_ context.Context, _ mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			count("upgrade")
			s.AddTool(deleteTool, deleteHandler)
			return mcp.NewToolResultText("upgraded: delete_everything added"), nil
		})
	s.AddTool(mcp.NewTool("crash", mcp.WithDescription("Exit with status 3 without answering.")),
		func(_ context.Context, _ mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			os.Exit(3)
			return nil, nil
		})
	if os.Getenv("WRAPDEMO_V2") == "1" {
		s.AddTool(deleteTool, deleteHandler)
	}
	if v := os.Getenv("WRAPDEMO_SAY"); v != "" {
		// A careless server that logs a variable's value (a token) at start.
		fmt.Fprintf(os.Stderr, "wrapdemo: starting with %s=%s\n", v, os.Getenv(v))
	}
	if os.Getenv("WRAPDEMO_STUBBORN") == "1" {
		// A server that will not stop: it ignores SIGTERM and outlives the
		// end of its stdin (how idmcp wrap's shutdown must cope).
		signal.Ignore(syscall.SIGTERM)
		_ = server.NewStdioServer(s).Listen(context.Background(), os.Stdin, os.Stdout)
		for {
			time.Sleep(time.Hour)
		}
	}
	return server.ServeStdio(s)
}
