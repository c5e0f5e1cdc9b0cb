// Package keyring stores host secrets in the OS keyring (Secret Service on
// Linux, Keychain on macOS, Credential Manager on Windows) through
// github.com/zalando/go-keyring. It adds what that library lacks: a timeout
// on every call (an unlock prompt can wait forever) and, on Linux, a refusal
// to start a D-Bus session bus of its own when there is none.
package keyring

import (
	"context"
	"errors"
	"fmt"
	"time"

	gokeyring "github.com/zalando/go-keyring"
)

// Service is the keyring service name under which idmcp stores host secrets;
// the account is the profile name.
const Service = "idmcp"

// DefaultTimeout bounds each keyring call.
const DefaultTimeout = 5 * time.Second

// ErrNotFound means the keyring works but holds no secret for the account.
var ErrNotFound = errors.New("no secret in the keyring")

// ErrUnavailable means no usable keyring was reached.
var ErrUnavailable = errors.New("keyring unavailable")

// Config configures a Keyring.
type Config struct {
	// Service names the keyring service; Service when empty.
	Service string
	// Timeout bounds each call; DefaultTimeout when 0.
	Timeout time.Duration
}

// Keyring is the OS keyring, for one service.
type Keyring struct {
	cfg Config
}

// New returns a Keyring for cfg.
func New(cfg Config) *Keyring {
	if cfg.Service == "" {
		cfg.Service = Service
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	return &Keyring{cfg: cfg}
}

func (k *Keyring) call(ctx context.Context, fn func() (string, error)) (string, error) {
	if err := available(); err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, k.cfg.Timeout)
	defer cancel()
	type result struct {
		s   string
		err error
	}
	ch := make(chan result, 1)
	go func() {
		s, err := fn()
		ch <- result{s, err}
	}()
	select {
	case r := <-ch:
		switch {
		case errors.Is(r.err, gokeyring.ErrNotFound):
			return "", ErrNotFound
		case r.err != nil:
			// The library's errors carry no secret; keep their words.
			return "", fmt.Errorf("%w: %v", ErrUnavailable, r.err)
		}
		return r.s, nil
	case <-ctx.Done():
		return "", fmt.Errorf("%w: no answer within %s (locked keyring?)", ErrUnavailable, k.cfg.Timeout)
	}
}

// Get returns the secret of account.
func (k *Keyring) Get(ctx context.Context, account string) (string, error) {
	return k.call(ctx, func() (string, error) { return gokeyring.Get(k.cfg.Service, account) })
}

// Set stores secret for account, replacing any previous one.
func (k *Keyring) Set(ctx context.Context, account, secret string) error {
	_, err := k.call(ctx, func() (string, error) { return "", gokeyring.Set(k.cfg.Service, account, secret) })
	return err
}

// Delete removes account's secret; a missing one is not an error.
func (k *Keyring) Delete(ctx context.Context, account string) error {
	_, err := k.call(ctx, func() (string, error) { return "", gokeyring.Delete(k.cfg.Service, account) })
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}
