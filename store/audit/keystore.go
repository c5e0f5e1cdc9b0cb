package audit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/gofrs/flock"
	"github.com/idmcp/idmcp/auth/keyring"
)

// ErrNoKey means the data dir has no audit key yet (no server has run with
// one).
var ErrNoKey = errors.New("no audit key")

// KeyringAccount is the keyring account of dataDir's audit key, under the
// same service as host secrets: "audit-key:" and the absolute data dir
// (profile names cannot contain a colon, so the two never meet).
func KeyringAccount(dataDir string) string {
	if abs, err := filepath.Abs(dataDir); err == nil {
		dataDir = abs
	}
	return "audit-key:" + filepath.Clean(dataDir)
}

// DefaultKeyFile is where the audit key file of dataDir lives when no path
// is given: beside the data dir, not in it ("<data dir>.audit-key"), so that
// the files tools' workspace checks and a copy of the data dir leave it out.
func DefaultKeyFile(dataDir string) string {
	if abs, err := filepath.Abs(dataDir); err == nil {
		dataDir = abs
	}
	return filepath.Clean(dataDir) + ".audit-key"
}

// KeyConfig says where a data dir's audit key is kept.
type KeyConfig struct {
	// DataDir is the data dir the key belongs to.
	DataDir string
	// Keyring is the OS keyring; nil means --no-keyring: the key file only.
	Keyring *keyring.Keyring
	// File is the key file, used with --no-keyring and when the keyring is
	// unavailable; DefaultKeyFile(DataDir) when empty. It must be outside
	// the data dir.
	File string
	// Create makes a new key when there is none (the server); readers
	// (audit verify, prune) only load.
	Create bool
}

// KeySource is a loaded audit key and where it came from.
type KeySource struct {
	Key []byte
	// Where names the keyring entry or the file, for messages; never the key.
	Where string
	// Warning is set when the key is protected less than by the OS keyring
	// (a file), to be shown to the operator.
	Warning string
}

// LoadKey loads the audit key of cfg.DataDir: from the OS keyring, else (no
// keyring, or the keyring unavailable) from the key file; with cfg.Create a
// missing key is made (256 random bits) and stored there. It returns
// ErrNoKey when there is none and cfg.Create is false.
func LoadKey(ctx context.Context, cfg KeyConfig) (KeySource, error) {
	if cfg.Create {
		// Two servers starting at once on a new data dir (the demo's stdio
		// and HTTP servers) must not each make a key: the keyring has no
		// create-if-absent, so creation is serialised by a lock file.
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return KeySource{}, fmt.Errorf("audit key: %w", err)
		}
		lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		fl := flock.New(filepath.Join(cfg.DataDir, "audit-key.lock"))
		ok, err := fl.TryLockContext(lctx, 20*time.Millisecond)
		if err != nil || !ok {
			return KeySource{}, fmt.Errorf("audit key: another idmcp process holds %s: %w", fl.Path(), err)
		}
		defer func() { _ = fl.Unlock() }()
	}
	file := cfg.File
	if file == "" {
		file = DefaultKeyFile(cfg.DataDir)
	}
	if inside(cfg.DataDir, file) {
		return KeySource{}, fmt.Errorf("audit key file %s is inside the data dir %s: anyone who can rewrite the log could then read the key; choose a path outside it", file, cfg.DataDir)
	}
	fileWarning := fmt.Sprintf("audit key kept in the file %s, not the OS keyring: anyone who can read that file can rewrite the audit chain undetected; keep it on other storage than the data dir", file)
	if cfg.Keyring != nil {
		account := KeyringAccount(cfg.DataDir)
		where := "OS keyring entry " + account
		s, err := cfg.Keyring.Get(ctx, account)
		switch {
		case err == nil:
			key, derr := decodeKey(s)
			if derr != nil {
				return KeySource{}, fmt.Errorf("audit key in %s: %w", where, derr)
			}
			return KeySource{Key: key, Where: where}, nil
		case errors.Is(err, keyring.ErrNotFound):
			// A data dir served with --no-keyring before keeps its file.
			if ks, ferr := loadKeyFile(file); ferr == nil {
				ks.Warning = fileWarning
				return ks, nil
			} else if !errors.Is(ferr, ErrNoKey) {
				return KeySource{}, ferr
			}
			if !cfg.Create {
				return KeySource{}, fmt.Errorf("%w for %s (looked in %s and %s)", ErrNoKey, cfg.DataDir, where, file)
			}
			key := newKey()
			if err := cfg.Keyring.Set(ctx, account, hex.EncodeToString(key)); err != nil {
				return KeySource{}, fmt.Errorf("store the audit key in %s: %w", where, err)
			}
			return KeySource{Key: key, Where: where}, nil
		case !errors.Is(err, keyring.ErrUnavailable):
			return KeySource{}, fmt.Errorf("audit key from %s: %w", where, err)
		}
		fileWarning = fmt.Sprintf("OS keyring unavailable (%v); ", err) + fileWarning
	}
	ks, err := loadKeyFile(file)
	if errors.Is(err, ErrNoKey) && cfg.Create {
		ks, err = createKeyFile(file)
	}
	if err != nil {
		if errors.Is(err, ErrNoKey) {
			return KeySource{}, fmt.Errorf("%w for %s (no key file %s)", ErrNoKey, cfg.DataDir, file)
		}
		return KeySource{}, err
	}
	ks.Warning = fileWarning
	return ks, nil
}

func newKey() []byte {
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return key
}

func decodeKey(s string) ([]byte, error) {
	key, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil || len(key) != KeySize {
		return nil, fmt.Errorf("not %d hex-encoded bytes", KeySize)
	}
	return key, nil
}

// loadKeyFile reads a key file, refusing one that others may read.
func loadKeyFile(path string) (KeySource, error) {
	where := "key file " + path
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return KeySource{}, ErrNoKey
	}
	if err != nil {
		return KeySource{}, fmt.Errorf("audit %s: %w", where, err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return KeySource{}, fmt.Errorf("audit %s has mode %04o: group or others may read it; chmod 600 it", where, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return KeySource{}, fmt.Errorf("audit %s: %w", where, err)
	}
	key, err := decodeKey(string(b))
	if err != nil {
		return KeySource{}, fmt.Errorf("audit %s: %w", where, err)
	}
	return KeySource{Key: key, Where: where}, nil
}

// createKeyFile writes a new key to path (0600, never replacing a file).
func createKeyFile(path string) (KeySource, error) {
	key := newKey()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return KeySource{}, fmt.Errorf("audit key file: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return loadKeyFile(path) // another process made it first
	}
	if err != nil {
		return KeySource{}, fmt.Errorf("audit key file: %w", err)
	}
	_, werr := f.WriteString(hex.EncodeToString(key) + "\n")
	serr := f.Sync()
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = serr
	}
	if werr != nil {
		_ = os.Remove(path)
		return KeySource{}, fmt.Errorf("audit key file: %w", werr)
	}
	return KeySource{Key: key, Where: "key file " + path}, nil
}

// inside reports whether path is dir or below it.
func inside(dir, path string) bool {
	d, err1 := filepath.Abs(dir)
	p, err2 := filepath.Abs(path)
	if err1 != nil || err2 != nil {
		return false
	}
	rel, err := filepath.Rel(d, p)
	return err == nil && (rel == "." || (rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))))
}
