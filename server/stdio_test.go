package server

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestLineLimitReader(t *testing.T) {
	ok := strings.Repeat("a", 10) + "\n" + strings.Repeat("b", 10) + "\n"
	if b, err := io.ReadAll(&lineLimitReader{r: strings.NewReader(ok), max: 10}); err != nil || !bytes.Equal(b, []byte(ok)) {
		t.Fatalf("lines at the limit: %q %v", b, err)
	}
	_, err := io.ReadAll(&lineLimitReader{r: strings.NewReader(strings.Repeat("c", 11) + "\n"), max: 10})
	if !errors.Is(err, ErrLineTooLong) {
		t.Fatalf("over the limit: %v, want ErrLineTooLong", err)
	}
}
