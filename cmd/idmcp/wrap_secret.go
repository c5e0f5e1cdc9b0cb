package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/idmcp/idmcp/auth"
)

// cmdSecret implements `idmcp secret set NAME` (the value is read from
// stdin, never from the command line, where ps and shell history would
// see it) and `idmcp secret remove NAME`.
func cmdSecret(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	usage := errors.New("usage: idmcp secret set NAME (value on stdin) | idmcp secret remove NAME")
	if len(args) != 2 {
		return &exitError{code: 2, err: usage}
	}
	name := args[1]
	if err := auth.ValidateSecretName(name); err != nil {
		return &exitError{code: 2, err: err}
	}
	switch args[0] {
	case "set":
		line, err := bufio.NewReader(io.LimitReader(stdin, 64<<10)).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		v := strings.TrimRight(line, "\r\n")
		if v == "" {
			return &exitError{code: 2, err: errors.New("secret set: no value on stdin")}
		}
		if err := secretKeyring().Set(ctx, name, v); err != nil {
			return fmt.Errorf("secret set %s: the OS keyring: %w", name, err)
		}
		fmt.Fprintf(stdout, "secret %q stored in the OS keyring; use it with [wrap.env] VAR = { keyring = %q }\n", name, name)
		return nil
	case "remove":
		if err := secretKeyring().Delete(ctx, name); err != nil {
			return fmt.Errorf("secret remove %s: %w", name, err)
		}
		fmt.Fprintf(stdout, "secret %q removed\n", name)
		return nil
	}
	return &exitError{code: 2, err: usage}
}
