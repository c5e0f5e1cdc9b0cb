package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/idmcp/idmcp/store"
	"github.com/idmcp/idmcp/store/audit"
)

const auditUsage = `usage: idmcp audit COMMAND [flags]

  query   [filters] [--limit N] [--json | --csv]   rows as an aligned table, JSON lines (as export) or CSV
  tail    [filters] [-n N] [-f] [--interval 500ms] [--json]   the newest rows; -f follows until Ctrl-C
  export  --format jsonl [filters] [--after-id N]  one JSON object per row (arguments as an object), for SIEMs
  sql     "SELECT …" [--json]                      any read-only SQL on the file (mode=ro: writes fail);
                                                   --json: one object per row, columns in query order
  verify                                           walk the hash chain; exit 1 at the first damaged row
  prune   --before DATE                            delete rows older than DATE, keeping the chain verifiable
  schema  [--sql]                                  tables, views and example queries (--sql: the live DDL)

filters: --since 1h|30d|2026-01-02 --until … --subject S --client C --tool T --event E --decision allow|deny
Every command takes --data-dir DIR (else $IDMCP_DATA_DIR, else the per-user state dir) and works while a
server is writing.
`

// Bounds of `audit tail -f`'s polling interval.
const (
	defaultTailInterval = 500 * time.Millisecond
	minTailInterval     = 50 * time.Millisecond
	maxTailInterval     = 10 * time.Second
)

// auditCmd is one `idmcp audit` subcommand's parsed flags.
type auditCmd struct {
	name    string
	fs      *flag.FlagSet
	dataDir *string
	// filters, for query, tail and export
	since, until, subject, client, tool, event, decision *string
}

func newAuditCmd(name string, stderr io.Writer, filters bool) *auditCmd {
	c := &auditCmd{name: name, fs: flag.NewFlagSet("audit "+name, flag.ContinueOnError)}
	c.fs.SetOutput(stderr)
	c.dataDir = c.fs.String("data-dir", "", "data dir (default $IDMCP_DATA_DIR or the per-user state dir)")
	if filters {
		c.since = c.fs.String("since", "", "only rows at or after a time: a duration back from now (1h, 30m, 7d) or a date/time (2026-01-02, 2026-01-02T15:04:05Z)")
		c.until = c.fs.String("until", "", "only rows before a time (same forms as --since)")
		c.subject = c.fs.String("subject", "", "only rows of this subject (the human)")
		c.client = c.fs.String("client", "", "only rows of this client id (the agent)")
		c.tool = c.fs.String("tool", "", "only rows about this tool")
		c.event = c.fs.String("event", "", "only rows of this event (auth, tools/list, tools/call, server/start, server/stop, audit/prune)")
		c.decision = c.fs.String("decision", "", "only allow or deny rows")
	}
	return c
}

// filter builds the row filter from the filter flags.
func (c *auditCmd) filter(now time.Time) (audit.Filter, error) {
	f := audit.Filter{Subject: *c.subject, ClientID: *c.client, Tool: *c.tool, Event: *c.event, Decision: *c.decision}
	if f.Decision != "" && f.Decision != audit.Allow && f.Decision != audit.Deny {
		return f, usageErr(fmt.Errorf("--decision %q: want allow or deny", f.Decision))
	}
	var err error
	if *c.since != "" {
		if f.Since, err = parseTime("--since", *c.since, now); err != nil {
			return f, usageErr(err)
		}
	}
	if *c.until != "" {
		if f.Until, err = parseTime("--until", *c.until, now); err != nil {
			return f, usageErr(err)
		}
	}
	return f, nil
}

// path returns the audit database path and whether it exists.
func (c *auditCmd) path() (string, bool, error) {
	dir, _, err := dataDir(*c.dataDir)
	if err != nil {
		return "", false, err
	}
	// A data dir that does not exist is a mistake (a typo in --data-dir),
	// not an empty log.
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return "", false, fmt.Errorf("no data dir at %s: pass --data-dir DIR or set IDMCP_DATA_DIR to the dir the server uses", dir)
	}
	path := filepath.Join(dir, store.AuditDBName)
	_, err = os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return path, false, nil
	}
	return path, err == nil, err
}

// reader opens the audit database read-only; nil (and a note on stderr) when
// no server has written it yet.
func (c *auditCmd) reader(ctx context.Context, stderr io.Writer) (*audit.Reader, error) {
	path, ok, err := c.path()
	if err != nil {
		return nil, err
	}
	if !ok {
		// Nothing to show, but say so, in case the data dir is not the one
		// the user meant.
		fmt.Fprintf(stderr, "idmcp: no audit log at %s yet (has a server run with this data dir?)\n", path)
		return nil, nil
	}
	r, err := audit.OpenReader(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("%w (is %s the data dir? pass --data-dir)", err, filepath.Dir(path))
	}
	return r, nil
}

// open is what query, tail and export start with: the filter of the
// command line and the reader (nil, with a note, when there is no log yet).
func (c *auditCmd) open(ctx context.Context, stderr io.Writer) (audit.Filter, *audit.Reader, error) {
	f, err := c.filter(time.Now())
	if err != nil {
		return f, nil, err
	}
	r, err := c.reader(ctx, stderr)
	return f, r, err
}

func usageErr(err error) error { return &exitError{code: 2, err: err} }

func cmdAudit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, auditUsage)
		return usageErr(errors.New("no audit command given"))
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprint(stdout, auditUsage)
		return nil
	case "query":
		return auditQuery(ctx, args[1:], stdout, stderr)
	case "tail":
		return auditTail(ctx, args[1:], stdout, stderr)
	case "export":
		return auditExport(ctx, args[1:], stdout, stderr)
	case "sql":
		return auditSQL(ctx, args[1:], stdout, stderr)
	case "verify":
		return auditVerify(ctx, args[1:], stdout, stderr)
	case "prune":
		return auditPrune(ctx, args[1:], stdout, stderr)
	case "schema":
		return auditSchema(ctx, args[1:], stdout, stderr)
	}
	fmt.Fprint(stderr, auditUsage)
	return usageErr(fmt.Errorf("unknown audit command %q", args[0]))
}

// parseArgs parses c's flags and requires exactly want positional arguments.
func (c *auditCmd) parseArgs(args []string, want int) ([]string, error) {
	pos, err := parseInterspersed(c.fs, args)
	if err != nil {
		return nil, err
	}
	if len(pos) != want {
		return nil, usageErr(fmt.Errorf("audit %s: want %d argument(s), got %q", c.name, want, pos))
	}
	return pos, nil
}

func auditQuery(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newAuditCmd("query", stderr, true)
	limit := c.fs.Int("limit", 0, "only the newest N rows (0: all)")
	asJSON := c.fs.Bool("json", false, "one JSON object per line")
	asCSV := c.fs.Bool("csv", false, "CSV with a header line (text that a spreadsheet would run as a formula is prefixed with ')")
	if _, err := c.parseArgs(args, 0); err != nil {
		return err
	}
	if *asJSON && *asCSV {
		return usageErr(errors.New("--json and --csv are exclusive"))
	}
	if *limit < 0 {
		return usageErr(errors.New("--limit must not be negative"))
	}
	f, r, err := c.open(ctx, stderr)
	if r == nil || err != nil {
		return err
	}
	defer r.Close()
	f.Limit = *limit
	switch {
	case *asJSON:
		enc := json.NewEncoder(stdout)
		return r.Each(ctx, f, func(row audit.Row) error { return enc.Encode(row.Export()) })
	case *asCSV:
		w := csv.NewWriter(stdout)
		if err := w.Write(audit.CSVHeader()); err != nil {
			return err
		}
		if err := r.Each(ctx, f, func(row audit.Row) error { return w.Write(row.CSVRecord()) }); err != nil {
			return err
		}
		w.Flush()
		return w.Error()
	}
	rows, err := r.Query(ctx, f)
	if err != nil {
		return err
	}
	return printRows(stdout, rows)
}

func auditTail(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newAuditCmd("tail", stderr, true)
	n := c.fs.Int("n", 10, "show the newest N rows first")
	follow := c.fs.Bool("f", false, "follow: keep printing new rows until interrupted (Ctrl-C)")
	interval := c.fs.Duration("interval", defaultTailInterval, fmt.Sprintf("with -f, how often to look for new rows (%s to %s)", minTailInterval, maxTailInterval))
	asJSON := c.fs.Bool("json", false, "one JSON object per line")
	if _, err := c.parseArgs(args, 0); err != nil {
		return err
	}
	if *n < 0 {
		return usageErr(errors.New("-n must not be negative"))
	}
	if *interval < minTailInterval || *interval > maxTailInterval {
		return usageErr(fmt.Errorf("--interval %s: want %s to %s", *interval, minTailInterval, maxTailInterval))
	}
	f, r, err := c.open(ctx, stderr)
	if r == nil || err != nil {
		return err
	}
	defer r.Close()
	emit := func(row audit.Row) error {
		if *asJSON {
			return json.NewEncoder(stdout).Encode(row.Export())
		}
		_, err := fmt.Fprintln(stdout, tailLine(row))
		return err
	}
	var after int64
	if *n > 0 {
		f.Limit = *n
		rows, err := r.Query(ctx, f)
		if err != nil {
			return err
		}
		for _, row := range rows {
			if err := emit(row); err != nil {
				return err
			}
			after = row.ID
		}
	}
	if !*follow {
		return nil
	}
	if after == 0 {
		// Start at the current head: -n 0 -f shows only new rows.
		head, err := r.Query(ctx, audit.Filter{Limit: 1})
		if err != nil {
			return err
		}
		if len(head) > 0 {
			after = head[0].ID
		}
	}
	f.Limit = 0
	t := time.NewTicker(*interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil // interrupted: the normal end of tail -f
		case <-t.C:
		}
		f.AfterID = after
		err := r.Each(ctx, f, func(row audit.Row) error {
			after = row.ID
			return emit(row)
		})
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
}

// tailLine formats one row for `audit tail` on one line, without a table:
// rows arrive over time and cannot be aligned as a whole.
func tailLine(r audit.Row) string {
	who := dash(r.Subject)
	if r.ClientID != "" {
		who += " via " + r.ClientID
	}
	if len(r.Actors) > 0 {
		who += " (" + strings.Join(r.Actors, ">") + ")"
	}
	return termSafe(fmt.Sprintf("%d  %s  %-15s %s  %s  %s/%s  %s", r.ID, localTime(r.TS), r.Event, who, dash(r.Tool),
		dash(r.Decision), dash(r.Outcome), oneLine(r.Reason, 120)))
}

func auditExport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newAuditCmd("export", stderr, true)
	format := c.fs.String("format", "jsonl", "output format: jsonl (one JSON object per line)")
	afterID := c.fs.Int64("after-id", 0, "only rows with a greater id (resume a previous export)")
	if _, err := c.parseArgs(args, 0); err != nil {
		return err
	}
	if *format != "jsonl" {
		return usageErr(fmt.Errorf("--format %q: want jsonl", *format))
	}
	f, r, err := c.open(ctx, stderr)
	if r == nil || err != nil {
		return err
	}
	defer r.Close()
	f.AfterID = *afterID
	enc := json.NewEncoder(stdout)
	return r.Each(ctx, f, func(row audit.Row) error { return enc.Encode(row.Export()) })
}

func auditSQL(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newAuditCmd("sql", stderr, false)
	asJSON := c.fs.Bool("json", false, "one JSON object per row (column names as keys)")
	pos, err := c.parseArgs(args, 1)
	if err != nil {
		return err
	}
	r, err := c.reader(ctx, stderr)
	if r == nil || err != nil {
		return err
	}
	defer r.Close()
	if *asJSON {
		return r.Select(ctx, pos[0], func(cols []string, vals []any) error {
			_, err := stdout.Write(jsonObject(cols, vals))
			return err
		})
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	header := false
	err = r.Select(ctx, pos[0], func(cols []string, vals []any) error {
		if !header {
			fmt.Fprintln(tw, strings.Join(cols, "\t"))
			header = true
		}
		cells := make([]string, len(vals))
		for i, v := range vals {
			cells[i] = sqlCell(v)
		}
		_, err := fmt.Fprintln(tw, strings.Join(cells, "\t"))
		return err
	})
	if err != nil {
		return err
	}
	return tw.Flush()
}

// jsonObject returns one row of `audit sql --json`: an object with the
// columns in the query's order (a map would sort them), one line. Values
// JSON cannot hold (an infinite REAL) are written as text.
func jsonObject(cols []string, vals []any) []byte {
	b := []byte{'{'}
	for i, col := range cols {
		if i > 0 {
			b = append(b, ',')
		}
		k, _ := json.Marshal(col)
		v, err := json.Marshal(vals[i])
		if err != nil {
			v, _ = json.Marshal(fmt.Sprint(vals[i]))
		}
		b = append(append(append(b, k...), ':'), v...)
	}
	return append(b, '}', '\n')
}

// sqlCell formats one value of `audit sql`'s table: NULL for nil, text on one
// line (tabs and newlines would break the alignment).
func sqlCell(v any) string {
	switch t := v.(type) {
	case nil:
		return "NULL"
	case string:
		return termSafe(strings.NewReplacer("\t", `\t`, "\n", `\n`, "\r", `\r`).Replace(t))
	case float64:
		return strconv.FormatFloat(t, 'g', -1, 64)
	}
	return fmt.Sprint(v)
}

func auditVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newAuditCmd("verify", stderr, false)
	if _, err := c.parseArgs(args, 0); err != nil {
		return err
	}
	r, err := c.reader(ctx, stderr)
	if err != nil {
		return err
	}
	if r == nil {
		// Nothing was verified: that is not "ok" (reader said why).
		return &exitError{code: 1, err: errors.New("no audit log to verify"), quiet: true}
	}
	defer r.Close()
	res, err := r.Verify(ctx)
	if err != nil {
		if errors.Is(err, audit.ErrTampered) {
			fmt.Fprintf(stdout, "TAMPERED (%s): %v\nchecked %d rows; first damaged row: %d\n", res.Kind, err, res.Rows, res.BadID)
			return &exitError{code: 1, err: err, quiet: true} // said on stdout already
		}
		return err
	}
	from := "genesis"
	if res.CheckpointID != 0 {
		from = fmt.Sprintf("checkpoint %d (rows before %s pruned)", res.CheckpointID, res.PrunedBefore)
	}
	fmt.Fprintf(stdout, "ok: %d rows verified from %s; head row %d hash %s\n", res.Rows, from, res.HeadID, res.HeadHash)
	return nil
}

func auditPrune(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newAuditCmd("prune", stderr, false)
	before := c.fs.String("before", "", "delete rows older than this: a date/time (2026-01-02, 2026-01-02T15:04:05Z) or an age (90d, 720h)")
	if _, err := c.parseArgs(args, 0); err != nil {
		return err
	}
	if *before == "" {
		return usageErr(errors.New("audit prune: --before is required"))
	}
	now := time.Now()
	t, err := parseTime("--before", *before, now)
	if err != nil {
		return usageErr(err)
	}
	path, ok, err := c.path()
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("no audit log at %s (pass --data-dir)", path)
	}
	res, err := audit.Prune(ctx, audit.PruneConfig{Path: path, Before: t, Actor: osUser()})
	if err != nil {
		return err
	}
	if res.Rows == 0 {
		fmt.Fprintf(stdout, "nothing to prune: no rows before %s\n", t.UTC().Format(time.RFC3339))
		return nil
	}
	fmt.Fprintf(stdout, "pruned %d rows (up to row %d) before %s; checkpoint %v; audit verify starts there\n",
		res.Rows, res.LastID, t.UTC().Format(time.RFC3339), strings.Trim(fmt.Sprint(res.Checkpoints), "[]"))
	return nil
}

func auditSchema(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newAuditCmd("schema", stderr, false)
	live := c.fs.Bool("sql", false, "print the CREATE statements of the audit database itself")
	if _, err := c.parseArgs(args, 0); err != nil {
		return err
	}
	if !*live {
		_, err := io.WriteString(stdout, audit.SchemaDoc())
		return err
	}
	r, err := c.reader(ctx, stderr)
	if r == nil || err != nil {
		return err
	}
	defer r.Close()
	return r.Select(ctx, "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY CASE type WHEN 'table' THEN 0 WHEN 'index' THEN 1 WHEN 'trigger' THEN 2 ELSE 3 END, name",
		func(_ []string, vals []any) error {
			_, err := fmt.Fprintf(stdout, "%s;\n\n", vals[0])
			return err
		})
}

// parseTime accepts a duration back from now (1h, 30m, and days: 7d) or a
// date or time (2026-01-02, 2026-01-02T15:04:05Z).
func parseTime(flag, s string, now time.Time) (time.Time, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(days); err == nil && n >= 0 {
			return now.AddDate(0, 0, -n), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d.Abs()), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", time.DateOnly} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%s %q: want a duration back from now (1h, 30m, 7d) or a time (2026-01-02 or 2026-01-02T15:04:05Z)", flag, s)
}

func localTime(ts string) string {
	if t, err := time.Parse(time.RFC3339Nano, ts); err == nil {
		return t.Local().Format("2006-01-02 15:04:05.000")
	}
	return ts
}

func printRows(w io.Writer, rows []audit.Row) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTIME\tEVENT\tSUBJECT\tCLIENT\tACTORS\tTOOL\tDECISION\tOUTCOME\tREASON")
	for _, r := range rows {
		fmt.Fprint(tw, termSafe(fmt.Sprintf("%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, localTime(r.TS), r.Event, dash(r.Subject), dash(r.ClientID),
			dash(strings.Join(r.Actors, ">")), dash(r.Tool), dash(r.Decision), dash(r.Outcome), oneLine(r.Reason, 100))))
	}
	return tw.Flush()
}

func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > max {
		cut := max - 1
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		return s[:cut] + "…"
	}
	return dash(s)
}

// termSafe escapes control characters (C0 but tab and newline, DEL, C1) so
// that a value a client chose (a tool name, its clientInfo) cannot move the
// cursor or erase lines of an operator's terminal.
func termSafe(s string) string {
	if !strings.ContainsFunc(s, unsafeRune) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case !unsafeRune(r):
			b.WriteRune(r)
		case r < 0x100:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
	}
	return b.String()
}

func unsafeRune(r rune) bool {
	return (r < 0x20 && r != '\t' && r != '\n') || (r >= 0x7f && r < 0xa0) || r == 0x2028 || r == 0x2029 || r == 0x202e
}
