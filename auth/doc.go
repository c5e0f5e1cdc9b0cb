// Package auth owns identity and authorization decisions: the Principal
// (who asked, through which agent, with which scopes and roles), the typed
// errors that say why a request was refused, the host-secret authenticator
// used on stdio, and the Authorizer that decides whether a principal may call
// a tool.
//
// It knows nothing about MCP, HTTP, SQLite or the OS keyring: transports map
// its errors to their own codes, and adapters hand it secrets and claims.
package auth
