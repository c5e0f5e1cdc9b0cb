package audit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/idmcp/idmcp/store/audit"
)

// TestCanary_NoSecretInDatabaseFile plants secrets and tokens through Append
// in every field a caller controls (arguments under plain and secret keys,
// the reason, the client name, the subject, the actors, the tool name) and
// searches the bytes of the database files for them: while the Log is open
// (rows in the WAL) and after Close (checkpointed into the main file).
func TestCanary_NoSecretInDatabaseFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "audit.db")
	l, err := audit.Open(ctx, audit.Config{Path: path, Redactor: testRedactor()})
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range planted() {
		ev := toolCall(i)
		ev.Arguments = []byte(`{"note":` + quote("see "+p.value) + `,"token":` + quote(p.value) + `,"list":[` + quote(p.value) + `]}`)
		ev.Reason = "allowed; tool error: upstream said " + p.value
		ev.ClientName = "agent/" + p.value
		ev.Subject = "alice " + p.value
		ev.Actors = []string{p.value, "bot"}
		ev.Tool = "todo_" + p.value
		if err := l.Append(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	search := func(when string) {
		t.Helper()
		var all []byte
		for _, suffix := range []string{"", "-wal", "-shm"} {
			b, err := os.ReadFile(path + suffix)
			if err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			all = append(all, b...)
		}
		if !bytes.Contains(all, []byte(audit.Redacted)) {
			t.Fatalf("%s: no %s marker in the files: were the rows written?", when, audit.Redacted)
		}
		for _, p := range planted() {
			if bytes.Contains(all, []byte(p.core)) {
				t.Errorf("%s: planted %q… found in the database files", when, p.core[:10])
			}
		}
	}
	search("open")
	must(t, l.Close(ctx))
	search("closed")
	if got := len(MustRows(t, path)); got != len(planted()) {
		t.Fatalf("rows=%d, want %d", got, len(planted()))
	}
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
