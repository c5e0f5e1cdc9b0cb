// Command idmcp is an identity-aware MCP server: it never lets a tool run
// without knowing who asked, which agent asked on their behalf, and whether
// they may. See README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "0.1.0-dev"

const usage = `idmcp — an identity-aware MCP server

Usage:
  idmcp serve [--profile NAME] [flags]      speak MCP on stdin/stdout for a host profile
  idmcp serve --http ADDR (--issuer URL | --dev) [flags]   an OAuth 2.1 resource server on Streamable HTTP
  idmcp wrap [--profile NAME] [--policy FILE] [--sandbox auto|strict|off] -- CMD [ARGS…]
                                            run an MCP server behind idmcp's gate, policy, audit and sandbox
  idmcp secret set NAME | remove NAME       a secret for [wrap.env] in the OS keyring (value on stdin)
  idmcp host add NAME [--scopes S] [--roles R] [--no-keyring [--secret-file F]]
  idmcp host list | rotate NAME | remove NAME [--uninstall]
  idmcp host add NAME --install HOST [--scope user|project|local] [--dry-run] [--force]   write HOST's config
  idmcp host install NAME HOST              install an existing profile (rotates its token)
  idmcp doctor [--json]                     check keyring, profiles, data dir, audit chain, host files, sandbox
  idmcp audit query [--since 1h] [--subject S] [--tool T] [--decision allow|deny] [--limit N] [--json|--csv]
  idmcp audit tail [-f] | export --format jsonl | sql "SELECT …" | verify | prune --before DATE | schema
  idmcp policy check [--strict] FILE        validate a policy file; print tool → scopes, roles, enabled
  idmcp token mint --sub S [--scope "a b"] [--role R]… [--act A1,A2] [--ttl 15m]   a dev-issuer token
  idmcp sandbox status [--json]             what this kernel would enforce (Landlock, seccomp)
  idmcp demo [--keep DIR]                   run the whole story offline in a temp dir
  idmcp version

Every command takes --data-dir DIR (else $IDMCP_DATA_DIR, else the per-user state dir).
Run 'idmcp COMMAND -h' for a command's flags.
`

// exitError carries a process exit code.
type exitError struct {
	code int
	err  error
	// quiet: the command already reported the error; main only exits.
	quiet bool
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	code, msg := exitStatus(err)
	if msg != "" {
		fmt.Fprintln(os.Stderr, "idmcp:", msg)
	}
	os.Exit(code)
}

// exitStatus maps what run returned to the process exit status and the line
// main prints on stderr (empty: nothing to print). Help asked for is success;
// a flag the command does not know is a usage error (2); a quiet error was
// reported by the command already but keeps its code, so that `idmcp audit
// verify || alert` alerts.
func exitStatus(err error) (int, string) {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0, ""
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.quiet {
			return ee.code, ""
		}
		return ee.code, err.Error()
	}
	return 1, err.Error()
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return &exitError{code: 2, err: errors.New("no command given")}
	}
	switch args[0] {
	case "serve":
		return cmdServe(ctx, args[1:], stderr)
	case "wrap":
		return cmdWrap(ctx, args[1:], stderr)
	case wrapChildArg:
		return cmdWrapChild()
	case wrapDemoArg:
		return cmdWrapDemoServer()
	case "secret":
		return cmdSecret(ctx, args[1:], os.Stdin, stdout, stderr)
	case "host":
		return cmdHost(ctx, args[1:], stdout, stderr)
	case "audit":
		return cmdAudit(ctx, args[1:], stdout, stderr)
	case "token":
		return cmdToken(ctx, args[1:], stdout, stderr)
	case "sandbox":
		return cmdSandbox(args[1:], stdout, stderr)
	case "policy":
		return cmdPolicy(ctx, args[1:], stdout, stderr)
	case "doctor":
		return cmdDoctor(ctx, args[1:], stdout, stderr)
	case "demo":
		return cmdDemo(ctx, args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "idmcp", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return &exitError{code: 2, err: fmt.Errorf("unknown command %q", args[0])}
}

// parseInterspersed parses fs over args, allowing positional arguments
// before, between and after flags ("host add NAME --scopes x").
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := parseFlags(fs, args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if rest[0] == "--" {
			return append(pos, rest[1:]...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// parseFlags parses fs over args; a malformed or unknown flag is a usage
// error (exit status 2; the flag package has printed the flags already).
func parseFlags(fs *flag.FlagSet, args []string) error {
	err := fs.Parse(args)
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return err
	}
	return &exitError{code: 2, err: err}
}
