package audit_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/idmcp/idmcp/store"
	"github.com/idmcp/idmcp/store/audit"
)

// TestOpen_KeySwitch: a log written before keys existed keeps verifying
// once a key is used; the switch is an audit/key row, and from it on the
// chain is HMAC. Opening a keyed log without its key, or with another one,
// is refused.
func TestOpen_KeySwitch(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "audit.db")
	key := bytes.Repeat([]byte{1}, audit.KeySize)
	write := func(k []byte, from, n int) error {
		l, err := audit.Open(ctx, audit.Config{Path: path, Sync: store.SyncNormal, Key: k})
		if err != nil {
			return err
		}
		for i := from; i < from+n; i++ {
			if err := l.Append(ctx, toolCall(i)); err != nil {
				t.Fatal(err)
			}
		}
		return l.Close(ctx)
	}
	must(t, write(nil, 0, 5))
	must(t, write(key, 5, 5))
	must(t, write(key, 10, 2)) // no second key row
	rows := MustRows(t, path)
	var keyRows []int64
	for _, r := range rows {
		if r.Event == audit.EventKey {
			keyRows = append(keyRows, r.ID)
			if !strings.Contains(r.Arguments, audit.KeyID(key)) || strings.Contains(r.Arguments, "0101") {
				t.Errorf("key row arguments %s: want the key id, never the key", r.Arguments)
			}
		}
	}
	if len(keyRows) != 1 || keyRows[0] != 6 {
		t.Fatalf("audit/key rows at %v, want one at 6", keyRows)
	}
	if got, want := rows[6].Hash, audit.ComputeHMAC(key, &rows[6]); got != want {
		t.Fatalf("row 7 hash %s, want the HMAC %s", got, want)
	}
	res, err := MustReader(t, path).VerifyWith(ctx, audit.VerifyOptions{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(res.Chain, "hmac-sha256") || !strings.Contains(res.Chain, "from row 6") || res.LinksOnly != 0 {
		t.Fatalf("chain %q links-only %d", res.Chain, res.LinksOnly)
	}
	// Without the key: links only, said so.
	res, err = MustReader(t, path).VerifyWith(ctx, audit.VerifyOptions{})
	if err != nil || res.LinksOnly != 8 {
		t.Fatalf("verify without key: %v, links-only %d, want 8", err, res.LinksOnly)
	}
	if err := write(nil, 20, 1); !errors.Is(err, audit.ErrKeyMismatch) {
		t.Fatalf("open a keyed log without a key: %v, want ErrKeyMismatch", err)
	}
	if err := write(bytes.Repeat([]byte{2}, audit.KeySize), 20, 1); !errors.Is(err, audit.ErrKeyMismatch) {
		t.Fatalf("open a keyed log with another key: %v, want ErrKeyMismatch", err)
	}
	if _, err := MustReader(t, path).VerifyWith(ctx, audit.VerifyOptions{Key: bytes.Repeat([]byte{2}, audit.KeySize)}); !errors.Is(err, audit.ErrTampered) {
		t.Fatalf("verify under another key: %v, want ErrTampered", err)
	}
}

// TestPrune_Keyed prunes past the key row: the checkpoint carries the key id
// so verify still checks the rest under the key; prune refuses without it.
func TestPrune_Keyed(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "audit.db")
	key := bytes.Repeat([]byte{3}, audit.KeySize)
	l := MustOpen(t, audit.Config{Path: path, Sync: store.SyncNormal, Key: key, Now: func() time.Time { return testTime().Add(-time.Second) }})
	for i := range 10 {
		must(t, l.Append(ctx, toolCall(i)))
	}
	must(t, l.Close(ctx))
	before := testTime().Add(5 * time.Second)
	now := func() time.Time { return testTime().Add(time.Hour) }
	if _, err := audit.Prune(ctx, audit.PruneConfig{Path: path, Before: before, Actor: "op", Now: now}); !errors.Is(err, audit.ErrPruneRefused) {
		t.Fatalf("prune without the key: %v, want ErrPruneRefused", err)
	}
	res, err := audit.Prune(ctx, audit.PruneConfig{Path: path, Before: before, Actor: "op", Now: now, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	if res.Rows == 0 {
		t.Fatal("nothing pruned")
	}
	v, err := MustReader(t, path).VerifyWith(ctx, audit.VerifyOptions{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(v.Chain, "hmac-sha256") || v.CheckpointID == 0 {
		t.Fatalf("after prune: %+v", v)
	}
}

// TestLoadKey_File: the key file is made 0600 outside the data dir, loaded
// again, refused inside the data dir or when others may read it; a reader
// never creates one.
func TestLoadKey_File(t *testing.T) {
	ctx := context.Background()
	base := t.TempDir()
	dataDir := filepath.Join(base, "data")
	must(t, os.Mkdir(dataDir, 0o700))
	if _, err := audit.LoadKey(ctx, audit.KeyConfig{DataDir: dataDir}); !errors.Is(err, audit.ErrNoKey) {
		t.Fatalf("load without a key: %v, want ErrNoKey", err)
	}
	ks, err := audit.LoadKey(ctx, audit.KeyConfig{DataDir: dataDir, Create: true})
	if err != nil {
		t.Fatal(err)
	}
	file := audit.DefaultKeyFile(dataDir)
	if file != dataDir+".audit-key" || ks.Warning == "" || len(ks.Key) != audit.KeySize {
		t.Fatalf("key file %s, warning %q, %d bytes", file, ks.Warning, len(ks.Key))
	}
	fi, err := os.Stat(file)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v mode %v, want 0600", err, fi.Mode())
	}
	again, err := audit.LoadKey(ctx, audit.KeyConfig{DataDir: dataDir})
	if err != nil || !bytes.Equal(again.Key, ks.Key) {
		t.Fatalf("reload: %v, same key %v", err, bytes.Equal(again.Key, ks.Key))
	}
	if strings.Contains(ks.Warning, string(ks.Key)) || strings.Contains(ks.Where, "audit-key:") {
		t.Fatal("where/warning names the key")
	}
	must(t, os.Chmod(file, 0o644))
	if _, err := audit.LoadKey(ctx, audit.KeyConfig{DataDir: dataDir}); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable key file: %v", err)
	}
	if _, err := audit.LoadKey(ctx, audit.KeyConfig{DataDir: dataDir, File: filepath.Join(dataDir, "k"), Create: true}); err == nil || !strings.Contains(err.Error(), "inside the data dir") {
		t.Fatalf("key file inside the data dir: %v", err)
	}
}
