package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/idmcp/idmcp/auth/devissuer"
)

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// cmdToken implements `idmcp token mint`: a token signed by the dev issuer's
// key in the data dir, for scripts and tests.
func cmdToken(_ context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "mint" {
		return &exitError{code: 2, err: errors.New("usage: idmcp token mint --sub S [--scope \"a b\"] [--role R]… [--client-id C] [--act A1,A2] [--ttl 15m] [--aud URL]")}
	}
	fs := flag.NewFlagSet("token mint", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dd := fs.String("data-dir", "", "data dir holding the dev issuer key (default $IDMCP_DATA_DIR or the per-user state dir)")
	sub := fs.String("sub", "", "subject: the human the token speaks for (required)")
	scope := fs.String("scope", "", "space-separated scopes")
	var roles, auds stringList
	fs.Var(&roles, "role", "a role (repeatable)")
	clientID := fs.String("client-id", "", "client_id claim: the agent (default: the subject)")
	act := fs.String("act", "", "delegation chain, current actor first: A1,A2 becomes act{sub:A1, act{sub:A2}}")
	ttl := fs.Duration("ttl", devissuer.DefaultTTL, "lifetime, at most 24h")
	fs.Var(&auds, "aud", "audience `URL` (repeatable; default: the resource of the last 'serve --dev' with this data dir)")
	issuer := fs.String("issuer", "", "issuer (default: the last `serve --dev` with this data dir)")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if *sub == "" {
		return &exitError{code: 2, err: errors.New("--sub is required")}
	}
	if *ttl > devissuer.MaxTTL {
		return &exitError{code: 2, err: fmt.Errorf("--ttl %s is over the %s limit", *ttl, devissuer.MaxTTL)}
	}
	dir, _, err := dataDir(*dd)
	if err != nil {
		return err
	}
	if *issuer == "" || len(auds) == 0 {
		st, err := devissuer.LoadState(dir)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("no dev issuer has run with data dir %s: start `idmcp serve --http 127.0.0.1:8080 --dev` once, or pass --issuer and --aud", dir)
			}
			return err
		}
		if *issuer == "" {
			*issuer = st.Issuer
		}
		if len(auds) == 0 {
			auds = stringList{st.Resource}
		}
	}
	key, err := devissuer.LoadOrCreateKey(filepath.Join(dir, devissuer.KeyFile))
	if err != nil {
		return err
	}
	var actors []string
	if *act != "" {
		for _, a := range strings.Split(*act, ",") {
			if a = strings.TrimSpace(a); a != "" {
				actors = append(actors, a)
			}
		}
	}
	cid := *clientID
	if cid == "" {
		cid = *sub
	}
	tok, err := key.Mint(devissuer.MintRequest{
		Issuer: *issuer, Subject: *sub, Audience: auds, ClientID: cid, Scopes: strings.Fields(*scope),
		Roles: roles, Actors: actors, TTL: *ttl, Now: time.Now(),
	})
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	fmt.Fprintln(stdout, tok)
	return nil
}
