//go:build !sandboxprobe || !linux

package main

import "github.com/idmcp/idmcp/tools"

// probeTools returns the tools that exist only in test builds: none. Build
// with -tags sandboxprobe (Linux) for the sandbox_probe tool.
func probeTools() []tools.Spec { return nil }
