package main_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/idmcp/idmcp/store"
)

// TestHost_ConcurrentAdds runs many `idmcp host add` processes at once on one
// data dir: each reads hosts.json, adds its profile and writes the file back,
// so without the lock most of them overwrite each other's profile.
func TestHost_ConcurrentAdds(t *testing.T) {
	dataDir := t.TempDir()
	const n = 12
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			name := fmt.Sprintf("host%02d", i)
			if out, errOut, code := runIdmcp(t, nil, "host", "add", name, "--no-keyring", "--scopes", "todo:read", "--data-dir", dataDir); code != 0 {
				t.Errorf("host add %s: exit %d\n%s%s", name, code, out, errOut)
			}
		})
	}
	wg.Wait()
	ps, err := store.NewHosts(dataDir).List()
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != n {
		var names []string
		for _, p := range ps {
			names = append(names, p.Name)
		}
		t.Fatalf("%d profiles after %d concurrent adds, want all of them: %v", len(ps), n, names)
	}
}
