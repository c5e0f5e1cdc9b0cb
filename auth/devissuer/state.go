package devissuer

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// StateFile records, in the data dir, where the last `serve --dev` issued
// from, so that `idmcp token mint` signs tokens that server accepts.
const StateFile = "dev-issuer.json"

// State is the content of StateFile.
type State struct {
	Issuer   string `json:"issuer"`
	Resource string `json:"resource"`
}

// SaveState writes st to dir (mode 0600).
func SaveState(dir string, st State) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, "."+StateFile+".tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("dev issuer state: %w", err)
	}
	return os.Rename(tmp, filepath.Join(dir, StateFile))
}

// LoadState reads the state of dir; os.ErrNotExist when no dev server ran.
func LoadState(dir string) (State, error) {
	var st State
	b, err := os.ReadFile(filepath.Join(dir, StateFile))
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("dev issuer state %s: %w", filepath.Join(dir, StateFile), err)
	}
	if st.Issuer == "" || st.Resource == "" {
		return st, errors.New("dev issuer state is incomplete")
	}
	return st, nil
}
