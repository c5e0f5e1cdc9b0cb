//go:build !benchecho

package main

import "github.com/idmcp/idmcp/tools"

// benchTools returns the tools that exist only in benchmark builds: none.
// scripts/bench builds with -tags benchecho for the echo tool.
func benchTools() []tools.Spec { return nil }
