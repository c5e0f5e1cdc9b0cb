package server

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestReadLine(t *testing.T) {
	read := func(in string, max, bufSize int) ([]string, error) {
		br := bufio.NewReaderSize(strings.NewReader(in), bufSize)
		var lines []string
		for {
			l, err := readLine(br, max)
			if len(l) > 0 || err == nil {
				lines = append(lines, string(l))
			}
			if err == io.EOF {
				return lines, nil
			}
			if err != nil {
				return lines, err
			}
		}
	}
	a, b := strings.Repeat("a", 10), strings.Repeat("b", 10)
	for _, tc := range []struct {
		name    string
		in      string
		max     int
		want    []string
		wantErr error
	}{
		{"AtTheLimit", a + "\n" + b + "\n", 10, []string{a, b}, nil},
		{"LastLineWithoutNewline", a + "\n" + b, 10, []string{a, b}, nil},
		{"OverTheLimit", a + "\n" + b + "c\n", 10, []string{a}, ErrLineTooLong},
		{"OverTheLimitNoNewline", a + "\n" + b + "c", 10, []string{a}, ErrLineTooLong},
		{"EmptyLines", "\n\n" + a + "\n", 10, []string{"", "", a}, nil},
	} {
		// A 16-byte buffer makes every long line span several reads.
		for _, size := range []int{16, 4096} {
			got, err := read(tc.in, tc.max, size)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("%s/%d: err %v, want %v", tc.name, size, err, tc.wantErr)
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Fatalf("%s/%d: lines %q, want %q", tc.name, size, got, tc.want)
			}
		}
	}
}
