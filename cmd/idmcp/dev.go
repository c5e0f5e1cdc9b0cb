package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"text/tabwriter"

	"github.com/idmcp/idmcp/auth"
	"github.com/idmcp/idmcp/auth/devissuer"
	jwtauth "github.com/idmcp/idmcp/auth/jwt"
)

// devIssuer is the embedded development authorization server of
// `serve --http … --dev`: created here, mounted beside /mcp on the same
// listener, and recorded in the data dir for `idmcp token mint`.
type devIssuer struct {
	issuer  *devissuer.Issuer
	clients []devissuer.Client
}

// newDevIssuer loads (or creates) the dev key in dir, gives the demo clients
// fresh secrets, and records issuer and resource for `token mint`.
func newDevIssuer(dir, issuerURL, resource string, allScopes []string) (*devIssuer, error) {
	key, err := devissuer.LoadOrCreateKey(filepath.Join(dir, devissuer.KeyFile))
	if err != nil {
		return nil, err
	}
	clients := devissuer.DefaultClients(allScopes)
	for i := range clients {
		clients[i].Secret = devissuer.NewSecret()
	}
	iss, err := devissuer.New(devissuer.Config{Issuer: issuerURL, Resource: resource, Key: key, Clients: clients})
	if err != nil {
		return nil, err
	}
	if err := devissuer.SaveState(dir, devissuer.State{Issuer: issuerURL, Resource: resource}); err != nil {
		return nil, err
	}
	return &devIssuer{issuer: iss, clients: clients}, nil
}

// mounts are the dev issuer's routes on the server's mux.
func (d *devIssuer) mounts() map[string]http.Handler {
	h := d.issuer.Handler()
	return map[string]http.Handler{
		devissuer.PathMetadata: h,
		devissuer.PathOIDC:     h,
		"/oauth/":              h,
	}
}

// printClients writes the demo clients and their secrets (development only:
// they are fresh on every start and exist nowhere else).
func (d *devIssuer) printClients(w io.Writer, issuerURL, resource string) {
	fmt.Fprintf(w, "\nDEVELOPMENT ISSUER at %s — never use it in production.\n", issuerURL)
	fmt.Fprintf(w, "Token endpoint: %s%s   resource: %s\n\n", issuerURL, devissuer.PathToken, resource)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CLIENT\tPERSONA\tSCOPES\tROLES\tSECRET")
	for _, c := range d.clients {
		scopes := strings.Join(c.Scopes, " ")
		if c.Exchange {
			scopes = "(token exchange: the subject's, never more)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.ID, c.Persona, dash(scopes), dash(strings.Join(c.Roles, " ")), c.Secret)
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "\ncurl -s -u alice:SECRET -d grant_type=client_credentials -d resource=%s %s%s\n\n", resource, issuerURL, devissuer.PathToken)
}

// lateVerifier answers "unavailable" until its verifier is set. In dev mode
// the signing keys come from this very listener, so the verifier can only
// fetch them once the server is serving.
type lateVerifier struct {
	v atomic.Pointer[jwtauth.Verifier]
}

// Verify implements server.TokenVerifier.
func (l *lateVerifier) Verify(ctx context.Context, raw string) (*auth.Principal, error) {
	v := l.v.Load()
	if v == nil {
		return nil, &auth.Error{Kind: auth.KindUnavailable, Msg: "signing keys not loaded yet; retry"}
	}
	return v.Verify(ctx, raw)
}

// Ready implements server.TokenVerifier.
func (l *lateVerifier) Ready() bool {
	v := l.v.Load()
	return v != nil && v.Ready()
}

// close stops the verifier's background refresh, if it was set.
func (l *lateVerifier) close() {
	if v := l.v.Load(); v != nil {
		v.Close()
	}
}

// allScopes returns the scopes the enabled tools use, for bob's client.
func allScopes(reqs []auth.Requirement) []string {
	var out []string
	for _, r := range reqs {
		for _, s := range r.Scopes {
			if !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	slices.Sort(out)
	return out
}
