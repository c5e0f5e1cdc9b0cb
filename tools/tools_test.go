package tools_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/idmcp/idmcp/tools"
)

func TestDecode_Messages(t *testing.T) {
	type args struct {
		Title string   `json:"title"`
		ID    int64    `json:"id"`
		Tags  []string `json:"tags"`
	}
	tests := []struct{ in, want string }{
		{`{"title": 5}`, `argument "title" must be a string, not number`},
		{`{"id": "x"}`, `argument "id" must be an integer, not string`},
		{`{"tags": "x"}`, `argument "tags" must be an array, not string`},
		{`{"nope": 1}`, `unknown argument "nope"`},
		{`[1]`, `arguments must be a JSON object, not array`},
		{`{"title":`, `arguments are not valid JSON`},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			var a args
			err := tools.Decode(json.RawMessage(tc.in), &a)
			if !errors.Is(err, tools.ErrInput) {
				t.Fatalf("err %v, want ErrInput", err)
			}
			if got := tools.UserMessage(err); got != tc.want {
				t.Fatalf("message %q, want %q", got, tc.want)
			}
		})
	}
	var a args
	if err := tools.Decode(nil, &a); err != nil {
		t.Fatalf("empty arguments: %v", err)
	}
}
