package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/idmcp/idmcp/store"
	"github.com/idmcp/idmcp/store/audit"
)

func cmdAudit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return &exitError{code: 2, err: errors.New("usage: idmcp audit query|verify")}
	}
	fs := flag.NewFlagSet("audit "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	dd := fs.String("data-dir", "", "data dir (default $IDMCP_DATA_DIR or the per-user state dir)")
	since := fs.String("since", "", "only rows newer than a duration (1h, 30m) or an RFC 3339 time")
	subject := fs.String("subject", "", "only rows of this subject (the human)")
	client := fs.String("client", "", "only rows of this client id (the agent)")
	tool := fs.String("tool", "", "only rows about this tool")
	event := fs.String("event", "", "only rows of this event (auth, tools/list, tools/call, ...)")
	decision := fs.String("decision", "", "only allow or deny rows")
	limit := fs.Int("limit", 0, "only the newest N rows (0: all)")
	asJSON := fs.Bool("json", false, "one JSON object per line")
	if _, err := parseInterspersed(fs, args[1:]); err != nil {
		return err
	}
	dir, _, err := dataDir(*dd)
	if err != nil {
		return err
	}
	path := filepath.Join(dir, store.AuditDBName)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		// No server has run with this data dir yet: nothing to show, but say
		// so, in case the data dir is not the one the user meant.
		fmt.Fprintf(stderr, "idmcp: no audit log at %s yet (has a server run with this data dir?)\n", path)
		return nil
	}
	r, err := audit.OpenReader(ctx, path)
	if err != nil {
		return fmt.Errorf("%w (is %s the data dir? pass --data-dir)", err, dir)
	}
	defer r.Close()
	switch args[0] {
	case "query":
		f := audit.Filter{Subject: *subject, ClientID: *client, Tool: *tool, Event: *event, Decision: *decision, Limit: *limit}
		if *decision != "" && *decision != audit.Allow && *decision != audit.Deny {
			return &exitError{code: 2, err: fmt.Errorf("--decision %q: want allow or deny", *decision)}
		}
		if *limit < 0 {
			return &exitError{code: 2, err: errors.New("--limit must not be negative")}
		}
		if *since != "" {
			t, err := parseSince(*since, time.Now())
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			f.Since = t
		}
		rows, err := r.Query(ctx, f)
		if err != nil {
			return err
		}
		if *asJSON {
			enc := json.NewEncoder(stdout)
			for i := range rows {
				if err := enc.Encode(rows[i]); err != nil {
					return err
				}
			}
			return nil
		}
		return printRows(stdout, rows)
	case "verify":
		res, err := r.Verify(ctx)
		if err != nil {
			if errors.Is(err, audit.ErrTampered) {
				fmt.Fprintf(stdout, "TAMPERED: %v\nchecked %d rows; the chain is intact up to row %d\n", err, res.Rows, res.HeadID)
				return &exitError{code: 1, err: err}
			}
			return err
		}
		fmt.Fprintf(stdout, "ok: %d rows verified; head row %d hash %s\n", res.Rows, res.HeadID, res.HeadHash)
		return nil
	}
	return &exitError{code: 2, err: fmt.Errorf("unknown audit command %q; want query or verify", args[0])}
}

// parseSince accepts a duration back from now or an RFC 3339 time.
func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			d = -d
		}
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("--since %q: want a duration (1h, 30m) or a time (2026-01-02 or 2026-01-02T15:04:05Z)", s)
}

func printRows(w io.Writer, rows []audit.Row) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTIME\tEVENT\tSUBJECT\tCLIENT\tACTORS\tTOOL\tDECISION\tOUTCOME\tREASON")
	for _, r := range rows {
		ts := r.TS
		if t, err := time.Parse(time.RFC3339Nano, r.TS); err == nil {
			ts = t.Local().Format("2006-01-02 15:04:05.000")
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, ts, r.Event, dash(r.Subject), dash(r.ClientID),
			dash(strings.Join(r.Actors, ">")), dash(r.Tool), dash(r.Decision), dash(r.Outcome), oneLine(r.Reason, 100))
	}
	return tw.Flush()
}

func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > max {
		return s[:max-1] + "…"
	}
	return dash(s)
}
