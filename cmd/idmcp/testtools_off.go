//go:build !idmcptest

package main

import "github.com/idmcp/idmcp/tools"

// testTools returns the tools that exist only in test builds: none. Build
// with -tags idmcptest for test_hang (testtools_on.go).
func testTools() []tools.Spec { return nil }
