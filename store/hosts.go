package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/gofrs/flock"

	"github.com/idmcp/idmcp/auth"
)

// Hosts is the host profile file (hosts.json) of a data dir. It holds names,
// scopes and roles, never secrets.
type Hosts struct {
	path string
}

// NewHosts returns the profile file of data dir dir.
func NewHosts(dir string) *Hosts { return &Hosts{path: filepath.Join(dir, HostsName)} }

// Lock takes the data dir's lock for a read-modify-write of the profile
// file (hosts.json.lock beside it, an OS file lock: flock on Unix,
// LockFileEx on Windows, released by the OS if the process dies). Without
// it two `idmcp host` commands at once would each write back the list they
// read, and one change would be lost. Hold it from the first read to the
// last write (Put, Remove, and anything decided in between, such as a
// keyring entry); it waits for another holder until ctx is done.
func (h *Hosts) Lock(ctx context.Context) (unlock func(), err error) {
	if err := EnsureDir(filepath.Dir(h.path)); err != nil {
		return nil, err
	}
	fl := flock.New(h.path + ".lock")
	ok, err := fl.TryLockContext(ctx, 20*time.Millisecond)
	if err != nil || !ok {
		if ctxErr := ctx.Err(); ctxErr != nil {
			err = fmt.Errorf("another idmcp command is changing the host profiles (%s is locked): %w", fl.Path(), ctxErr)
		}
		return nil, fmt.Errorf("lock host profiles: %w", err)
	}
	return func() { _ = fl.Unlock() }, nil
}

type hostsFile struct {
	Version  int                 `json:"version"`
	Profiles []*auth.HostProfile `json:"profiles"`
}

// List returns every profile, sorted by name. A missing file is an empty list.
func (h *Hosts) List() ([]*auth.HostProfile, error) {
	b, err := os.ReadFile(h.path)
	if errors.Is(err, os.ErrNotExist) {
		return []*auth.HostProfile{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read host profiles: %w", err)
	}
	var f hostsFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("read host profiles %s: %w", h.path, err)
	}
	sort.Slice(f.Profiles, func(i, j int) bool { return f.Profiles[i].Name < f.Profiles[j].Name })
	return f.Profiles, nil
}

// Get returns the named profile, or ErrNotFound.
func (h *Hosts) Get(name string) (*auth.HostProfile, error) {
	all, err := h.List()
	if err != nil {
		return nil, err
	}
	for _, p := range all {
		if p.Name == name {
			return p, nil
		}
	}
	return nil, fmt.Errorf("host profile %q: %w", name, ErrNotFound)
}

// Put adds or replaces a profile. Callers that decide what to put from
// what they read hold Lock.
func (h *Hosts) Put(p *auth.HostProfile) error {
	all, err := h.List()
	if err != nil {
		return err
	}
	out := all[:0]
	for _, q := range all {
		if q.Name != p.Name {
			out = append(out, q)
		}
	}
	return h.write(append(out, p))
}

// Remove deletes a profile, or returns ErrNotFound. Callers hold Lock.
func (h *Hosts) Remove(name string) error {
	all, err := h.List()
	if err != nil {
		return err
	}
	out := all[:0]
	for _, q := range all {
		if q.Name != name {
			out = append(out, q)
		}
	}
	if len(out) == len(all) {
		return fmt.Errorf("host profile %q: %w", name, ErrNotFound)
	}
	return h.write(out)
}

// write replaces the file atomically (temp file in the same dir, then rename)
// so that a crash leaves either the old or the new list.
func (h *Hosts) write(ps []*auth.HostProfile) error {
	sort.Slice(ps, func(i, j int) bool { return ps[i].Name < ps[j].Name })
	b, err := json.MarshalIndent(hostsFile{Version: 1, Profiles: ps}, "", "  ")
	if err != nil {
		return err
	}
	if err := EnsureDir(filepath.Dir(h.path)); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(h.path), ".hosts-*.json")
	if err != nil {
		return fmt.Errorf("write host profiles: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(filePerm); err != nil && !errors.Is(err, errors.ErrUnsupported) {
		_ = tmp.Close()
		return fmt.Errorf("write host profiles: %w", err)
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("write host profiles: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("write host profiles: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write host profiles: %w", err)
	}
	if err := os.Rename(tmp.Name(), h.path); err != nil {
		return fmt.Errorf("write host profiles: %w", err)
	}
	return nil
}
