// Command wrapdemo runs examples/wrapdemo/demoserver on stdio: a small MCP
// server for idmcp wrap's tests and demo (idmcp's hidden __wrapdemo
// command runs the same server, so the demo needs nothing else).
package main

import (
	"fmt"
	"os"

	"github.com/idmcp/idmcp/examples/wrapdemo/demoserver"
)

func main() {
	if err := demoserver.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "wrapdemo:", err)
		os.Exit(1)
	}
}
