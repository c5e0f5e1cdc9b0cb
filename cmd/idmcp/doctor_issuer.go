package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	jwtauth "github.com/idmcp/idmcp/auth/jwt"
)

// doctorIssuer is `idmcp doctor --issuer URL [--token FILE] [--audience A]`:
// it fetches the authorization server's metadata and JWKS and, given a
// sample access token, says which settings such tokens need. The logic is
// jwtauth.Advise; the token is read from a file (never an argument, which
// other users could see in the process list) and never printed. It exits 1
// when a "need" finding or the issuer itself is a problem.
func doctorIssuer(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("doctor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	issuer := fs.String("issuer", os.Getenv("IDMCP_ISSUER"), "authorization server issuer `URL` to check [$IDMCP_ISSUER]")
	tokenFile := fs.String("token", "", "`FILE` holding a sample access token (\"-\" for stdin)")
	jwks := fs.String("jwks-url", "", "signing keys `URL` (default: discovered)")
	var auds listFlag
	fs.Var(&auds, "audience", "accepted `AUDIENCE`, repeatable")
	if err := fs.Parse(args); err != nil {
		return &exitError{code: 2, err: err}
	}
	if *issuer == "" {
		return &exitError{code: 2, err: errors.New("doctor --issuer URL is required")}
	}
	cfg := jwtauth.AdviseConfig{Issuer: *issuer, JWKSURL: *jwks, Audiences: auds.vals}
	if *tokenFile != "" {
		var b []byte
		var err error
		if *tokenFile == "-" {
			b, err = io.ReadAll(io.LimitReader(os.Stdin, jwtauth.MaxTokenBytes+1))
		} else {
			b, err = os.ReadFile(*tokenFile)
		}
		if err != nil {
			return &exitError{code: 2, err: fmt.Errorf("--token: %w", err)}
		}
		cfg.Token = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(string(b)), "Bearer "))
	}
	a, err := jwtauth.Advise(ctx, cfg)
	fmt.Fprintf(stdout, "issuer %s\n", *issuer)
	need := false
	if a != nil {
		for _, f := range a.Findings {
			fmt.Fprintf(stdout, "  [%s] %s\n", f.Level, f.Text)
			need = need || f.Level == "need"
		}
	}
	if err != nil {
		fmt.Fprintf(stdout, "  [need] %v\n", err)
		return &exitError{code: 1, err: errors.New("the issuer cannot be used as configured")}
	}
	if need {
		return &exitError{code: 1, err: errors.New("settings needed; see [need] lines")}
	}
	return nil
}
