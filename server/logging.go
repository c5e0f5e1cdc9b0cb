package server

import (
	"io"
	"log/slog"

	"github.com/idmcp/idmcp/store/audit"
)

// NewLogger returns the operational logger: text to w (stderr; stdout is the
// protocol channel on stdio), with every string attribute scrubbed of
// secret-looking values and of the secrets r knows, as a last line of defence.
func NewLogger(w io.Writer, level slog.Level, r *audit.Redactor) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			switch a.Value.Kind() {
			case slog.KindString:
				a.Value = slog.StringValue(r.Scrub(a.Value.String()))
			case slog.KindAny:
				if err, ok := a.Value.Any().(error); ok {
					a.Value = slog.StringValue(r.Scrub(err.Error()))
				}
			}
			return a
		},
	}))
}
