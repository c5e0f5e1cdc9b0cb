package server_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/idmcp/idmcp/auth"
	"github.com/idmcp/idmcp/server"
	"github.com/idmcp/idmcp/store"
	"github.com/idmcp/idmcp/store/audit"
)

// barrierVerifier verifies "eyJ.<sub>.sig" as <sub>, but only once n
// verifications are under way, so that many first requests reach the bind
// at the same moment.
type barrierVerifier struct {
	wg   sync.WaitGroup
	open chan struct{}
}

func (b *barrierVerifier) Verify(_ context.Context, raw string) (*auth.Principal, error) {
	b.wg.Done()
	<-b.open
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return nil, &auth.Error{Kind: auth.KindInvalidToken, Msg: "invalid token", Err: errors.New("test: shape")}
	}
	return &auth.Principal{Subject: parts[1], ClientID: "agent", Method: auth.MethodJWT, Issuer: "https://issuer.test"}, nil
}

func (b *barrierVerifier) Ready() bool { return true }

// TestStdioGate_ConcurrentFirstRequestsBindOnce: n first requests with n
// identities are released together into the bind, many times; each time
// exactly one is bound and served, and every other one is refused and has
// its deny row.
func TestStdioGate_ConcurrentFirstRequestsBindOnce(t *testing.T) {
	const n, rounds = 16, 150
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), store.AuditDBName)
	alog, err := audit.Open(ctx, audit.Config{Path: path, Sync: store.SyncNormal})
	if err != nil {
		t.Fatal(err)
	}
	defer alog.Close(ctx)
	host, err := auth.NewHostAuthenticator(auth.HostAuthenticatorConfig{ProfileName: "laptop", Human: "tester"})
	if err != nil {
		t.Fatal(err)
	}
	denied := 0
	for round := range rounds {
		v := &barrierVerifier{open: make(chan struct{})}
		v.wg.Add(n)
		g, err := server.NewStdioGate(server.StdioGateConfig{Host: host, Tokens: v, Audit: alog})
		if err != nil {
			t.Fatal(err)
		}
		var (
			mu     sync.Mutex
			served []string
			errs   []error
			wg     sync.WaitGroup
		)
		for i := range n {
			wg.Go(func() {
				f := &server.Frame{Kind: server.KindRequest, Method: "tools/call", Modern: true, Token: fmt.Sprintf("eyJ.user%d.sig", i)}
				p, err := g.Authenticate(ctx, f)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, err)
					return
				}
				served = append(served, p.Subject)
			})
		}
		v.wg.Wait()
		close(v.open)
		wg.Wait()
		if len(served) != 1 || g.Bound() == nil || g.Bound().Subject != served[0] {
			t.Fatalf("round %d: served %v, bound %v; want exactly one, the bound one", round, served, g.Bound())
		}
		for _, err := range errs {
			if !strings.Contains(err.Error(), "this stdio session is bound to") || auth.KindOf(err) != auth.KindUnauthenticated {
				t.Fatalf("round %d: refusal %v, want the binding refusal", round, err)
			}
		}
		denied += len(errs)
	}
	r, err := audit.OpenReader(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rows, err := r.Query(ctx, audit.Filter{Event: audit.EventAuth, Decision: audit.Deny, Limit: 100000})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != denied || denied != rounds*(n-1) {
		t.Fatalf("%d deny rows for %d refusals, want %d", len(rows), denied, rounds*(n-1))
	}
}

// TestGate_Check: the adapter for idmcp wrap refuses without the host
// secret, accepts it in either era, then binds the session.
func TestGate_Check(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), store.AuditDBName)
	alog, err := audit.Open(ctx, audit.Config{Path: path, Sync: store.SyncNormal})
	if err != nil {
		t.Fatal(err)
	}
	defer alog.Close(ctx)
	host, err := auth.NewHostAuthenticator(auth.HostAuthenticatorConfig{ProfileName: "laptop", Profile: &auth.HostProfile{Name: "laptop"}, Secret: []byte(hostSecret), Human: "tester"})
	if err != nil {
		t.Fatal(err)
	}
	g, err := server.NewGate(server.StdioConfig{Config: server.Config{Audit: alog}, Host: host})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Check(ctx, []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`)); auth.KindOf(err) != auth.KindUnauthenticated || g.Principal() != nil {
		t.Fatalf("no credential: %v, bound %v", err, g.Principal())
	}
	p, err := g.Check(ctx, []byte(legacyInitLine("2", authCaps)))
	if err != nil || p.Profile != "laptop" || g.Principal() != p {
		t.Fatalf("legacy initialize: %+v %v", p, err)
	}
	// A legacy request without a credential rides on the session.
	if p2, err := g.Check(ctx, []byte(`{"jsonrpc":"2.0","id":3,"method":"tools/list"}`)); err != nil || p2 != p {
		t.Fatalf("legacy request on the session: %+v %v", p2, err)
	}
	if g.Session() == "" {
		t.Fatal("no session id")
	}
}
