package tools

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/idmcp/idmcp/auth"
)

// Scopes of the files tools.
const (
	ScopeFilesRead  = "files:read"
	ScopeFilesWrite = "files:write"
)

// Default workspace limits.
const (
	DefaultMaxReadBytes     = 1 << 20
	DefaultMaxWriteBytes    = 1 << 20
	DefaultMaxListEntries   = 1000
	DefaultMaxSearchFiles   = 5000
	DefaultMaxSearchBytes   = 32 << 20
	DefaultMaxSearchMatches = 200
	// MaxPathLen bounds a workspace path argument.
	MaxPathLen = 4096
	// maxQueryLen bounds files_search's query.
	maxQueryLen = 1024
	// maxExcerpt bounds the text shown for one search match.
	maxExcerpt = 240
	// maxSearchLine is the longest line files_search reads; the rest of a
	// file with a longer line is skipped.
	maxSearchLine = 1 << 20
)

// WorkspaceConfig configures a Workspace. Zero limits take the defaults.
type WorkspaceConfig struct {
	// Dir is the directory the files tools are confined to.
	Dir string
	// MaxReadBytes bounds what one files_read returns.
	MaxReadBytes int64
	// MaxWriteBytes bounds the content of one files_write.
	MaxWriteBytes int64
	// MaxListEntries bounds the entries one files_list returns.
	MaxListEntries int
	// MaxSearchFiles, MaxSearchBytes and MaxSearchMatches bound one
	// files_search: files opened, bytes read, matches returned.
	MaxSearchFiles   int
	MaxSearchBytes   int64
	MaxSearchMatches int
}

// Validate checks the configuration.
func (c WorkspaceConfig) Validate() error {
	if c.Dir == "" {
		return fmt.Errorf("field \"dir\": empty workspace dir: %w", auth.ErrInvalidConfig)
	}
	if c.MaxReadBytes < 0 || c.MaxWriteBytes < 0 || c.MaxListEntries < 0 || c.MaxSearchFiles < 0 || c.MaxSearchBytes < 0 || c.MaxSearchMatches < 0 {
		return fmt.Errorf("field \"limits\": limits must not be negative: %w", auth.ErrInvalidConfig)
	}
	return nil
}

func (c *WorkspaceConfig) defaults() {
	def := func(v *int64, d int64) {
		if *v == 0 {
			*v = d
		}
	}
	defInt := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.MaxReadBytes, DefaultMaxReadBytes)
	def(&c.MaxWriteBytes, DefaultMaxWriteBytes)
	def(&c.MaxSearchBytes, DefaultMaxSearchBytes)
	defInt(&c.MaxListEntries, DefaultMaxListEntries)
	defInt(&c.MaxSearchFiles, DefaultMaxSearchFiles)
	defInt(&c.MaxSearchMatches, DefaultMaxSearchMatches)
}

// Workspace is the directory the files tools may touch. Every access goes
// through an os.Root, so no path argument, symbolic link or ".." reaches
// outside it. (A hard link made inside the workspace to an outside file is
// not detectable; whoever can make one already has that file.)
type Workspace struct {
	cfg  WorkspaceConfig
	root *os.Root
}

// OpenWorkspace opens cfg.Dir as a workspace. Close it when done.
func OpenWorkspace(cfg WorkspaceConfig) (*Workspace, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.defaults()
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("workspace: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("workspace: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("workspace %s: not a directory: %w", dir, auth.ErrInvalidConfig)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("workspace: %w", err)
	}
	cfg.Dir = dir
	return &Workspace{cfg: cfg, root: root}, nil
}

// Dir returns the workspace's absolute directory.
func (w *Workspace) Dir() string { return w.cfg.Dir }

// Close releases the workspace directory.
func (w *Workspace) Close() error { return w.root.Close() }

// cleanPath turns a caller's path into a clean, slash-separated path relative
// to the workspace, or an ErrInput error saying why it is refused. It is the
// first fence; os.Root is the second (symlinks are resolved only there).
// Empty means the workspace itself.
func cleanPath(p string) (string, error) {
	switch {
	case len(p) > MaxPathLen:
		return "", fmt.Errorf("path is %d bytes; the limit is %d: %w", len(p), MaxPathLen, ErrInput)
	case strings.ContainsRune(p, 0):
		return "", fmt.Errorf("path %q contains a NUL byte: %w", p, ErrInput)
	case !utf8.ValidString(p):
		return "", fmt.Errorf("path %q is not valid UTF-8: %w", p, ErrInput)
	case strings.ContainsRune(p, '\\'):
		return "", fmt.Errorf("path %q contains '\\'; use '/' to separate directories: %w", p, ErrInput)
	case strings.HasPrefix(p, "/") || filepath.IsAbs(p) || filepath.VolumeName(p) != "":
		return "", fmt.Errorf("path %q is absolute; paths are relative to the workspace: %w", p, ErrInput)
	}
	if p == "" {
		return ".", nil
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return "", fmt.Errorf("path %q leaves the workspace ('..' is not allowed): %w", p, ErrInput)
		}
	}
	c := path.Clean(p)
	if !filepath.IsLocal(filepath.FromSlash(c)) && c != "." {
		return "", fmt.Errorf("path %q is not a plain path inside the workspace: %w", p, ErrInput)
	}
	return c, nil
}

// fileErr turns an error from the workspace into a tool input error that
// names the path the caller gave, never the workspace's location.
func fileErr(rel string, err error) error {
	var pe *fs.PathError
	var le *os.LinkError
	switch {
	case errors.As(err, &pe):
		err = pe.Err
	case errors.As(err, &le):
		err = le.Err
	default:
		return err
	}
	msg := err.Error()
	switch {
	case errors.Is(err, fs.ErrNotExist):
		msg = "no such file or directory"
	case errors.Is(err, fs.ErrPermission):
		msg = "permission denied"
	case strings.Contains(msg, "escapes"):
		msg = "resolves outside the workspace (through a symbolic link or '..')"
	}
	return fmt.Errorf("%s: %s: %w", rel, msg, ErrInput)
}

// FileEntry is one entry of files_list.
type FileEntry struct {
	Path string `json:"path"`
	Type string `json:"type"`
	Size int64  `json:"size,omitempty"`
}

func entryType(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "dir"
	case m.IsRegular():
		return "file"
	case m&fs.ModeSymlink != 0:
		return "symlink"
	}
	return "other"
}

// typeName names a file type for a refusal: "a named pipe (FIFO)".
func typeName(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	}
	return "an irregular file"
}

// errNotRegular is the refusal of a path that is not a regular file.
func errNotRegular(rel string, m fs.FileMode) error {
	if m.IsDir() {
		return fmt.Errorf("%s: is a directory, not a regular file; use files_list: %w", rel, ErrInput)
	}
	return fmt.Errorf("%s: is %s, not a regular file: %w", rel, typeName(m), ErrInput)
}

// errNotDir is the refusal of a path that is not a directory.
func errNotDir(rel string, m fs.FileMode) error {
	if m.IsRegular() {
		return fmt.Errorf("%s: not a directory; use files_read: %w", rel, ErrInput)
	}
	return fmt.Errorf("%s: is %s, not a directory: %w", rel, typeName(m), ErrInput)
}

// open opens rel for reading and returns it only if it is a directory
// (dir) or a regular file (!dir), judged by fstat on the opened
// descriptor, so nothing swapped in after a check is read. The open itself
// never blocks: it adds O_NONBLOCK, without which opening a FIFO waits for
// a writer forever and pins the tool worker (issue 12.3).
//
// A Stat through the root comes first, but only to refuse early: opening a
// device node can have side effects in its driver, and open(2) of a socket
// fails with ENXIO, which would not name the type. The descriptor's type is
// the one that decides.
func (w *Workspace) open(rel string, dir bool) (*os.File, fs.FileInfo, error) {
	check := func(fi fs.FileInfo) error {
		switch {
		case dir && !fi.IsDir():
			return errNotDir(rel, fi.Mode())
		case !dir && !fi.Mode().IsRegular():
			return errNotRegular(rel, fi.Mode())
		}
		return nil
	}
	fi, err := w.root.Stat(rel)
	if err != nil {
		return nil, nil, fileErr(rel, err)
	}
	if err := check(fi); err != nil {
		return nil, nil, err
	}
	f, err := w.root.OpenFile(rel, os.O_RDONLY|openNonblock, 0)
	if err != nil {
		return nil, nil, fileErr(rel, err)
	}
	if fi, err = f.Stat(); err != nil {
		f.Close()
		return nil, nil, fileErr(rel, err)
	}
	if err := check(fi); err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, fi, nil
}

// walkFS is the workspace as an fs.FS for fs.WalkDir whose directories are
// opened by [Workspace.open]: a directory swapped for a FIFO during a walk
// is refused instead of blocking the walk.
type walkFS struct{ w *Workspace }

var (
	_ fs.ReadDirFS = walkFS{}
	_ fs.StatFS    = walkFS{}
)

// Open opens a regular file or a directory without blocking.
func (f walkFS) Open(name string) (fs.File, error) {
	fi, err := f.w.root.Stat(name)
	if err != nil {
		return nil, err
	}
	file, _, err := f.w.open(name, fi.IsDir())
	if err != nil {
		return nil, err
	}
	return file, nil
}

// Stat is os.Root's Stat; it opens nothing.
func (f walkFS) Stat(name string) (fs.FileInfo, error) { return f.w.root.Stat(name) }

// ReadDir lists a directory sorted by name, as fs.ReadDir does.
func (f walkFS) ReadDir(name string) ([]fs.DirEntry, error) {
	d, _, err := f.w.open(name, true)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	entries, err := d.ReadDir(-1)
	slices.SortFunc(entries, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return entries, err
}

// Files returns files_list, files_read, files_search and files_write,
// confined to w. With a nil w (to show the tool set without a workspace) the
// handlers refuse every call.
func Files(w *Workspace) []Spec {
	cfg := WorkspaceConfig{}
	if w != nil {
		cfg = w.cfg
	}
	cfg.defaults()
	guard := func(h Handler) Handler {
		return func(ctx context.Context, p *auth.Principal, args json.RawMessage) (*Result, error) {
			if w == nil {
				return nil, errors.New("no workspace configured (--workspace)")
			}
			return h(ctx, p, args)
		}
	}
	pathProp := func(what string) string {
		b, _ := json.Marshal(what + " Relative to the workspace, '/'-separated; absolute paths, '..' and links leading outside are refused.")
		return fmt.Sprintf(`{"type":"string","maxLength":%d,"description":%s}`, MaxPathLen, b)
	}
	return []Spec{
		{
			Name:  "files_list",
			Title: "List workspace files",
			Description: fmt.Sprintf("List the entries of a directory in the workspace (name, type, size). "+
				"Set recursive to walk subdirectories (symbolic links are listed, not followed). At most %d entries.", cfg.MaxListEntries),
			InputSchema: json.RawMessage(`{"type":"object","properties":{` +
				`"path":` + pathProp("Directory to list; default: the workspace itself.") + `,` +
				`"recursive":{"type":"boolean","description":"Also list everything below the directory."}` +
				`},"additionalProperties":false}`),
			Scopes:   []string{ScopeFilesRead},
			ReadOnly: true, Idempotent: true,
			Handler: guard(func(ctx context.Context, _ *auth.Principal, args json.RawMessage) (*Result, error) {
				var a struct {
					Path      string `json:"path"`
					Recursive bool   `json:"recursive"`
				}
				if err := Decode(args, &a); err != nil {
					return nil, err
				}
				return w.list(ctx, a.Path, a.Recursive)
			}),
		},
		{
			Name:  "files_read",
			Title: "Read a workspace file",
			Description: fmt.Sprintf("Read a file in the workspace. Returns UTF-8 text as is, other bytes as base64. "+
				"At most %d bytes per call; read larger files in parts with offset and length.", cfg.MaxReadBytes),
			InputSchema: json.RawMessage(fmt.Sprintf(`{"type":"object","properties":{`+
				`"path":%s,`+
				`"offset":{"type":"integer","minimum":0,"description":"Byte offset to start at; default 0."},`+
				`"length":{"type":"integer","minimum":0,"maximum":%d,"description":"Bytes to read; default: to the end of the file, which must then fit the limit."}`+
				`},"required":["path"],"additionalProperties":false}`, pathProp("File to read."), cfg.MaxReadBytes)),
			Scopes:   []string{ScopeFilesRead},
			ReadOnly: true, Idempotent: true,
			Handler: guard(func(ctx context.Context, _ *auth.Principal, args json.RawMessage) (*Result, error) {
				var a struct {
					Path   string `json:"path"`
					Offset int64  `json:"offset"`
					Length int64  `json:"length"`
				}
				if err := Decode(args, &a); err != nil {
					return nil, err
				}
				return w.read(a.Path, a.Offset, a.Length)
			}),
		},
		{
			Name:  "files_search",
			Title: "Search workspace files",
			Description: fmt.Sprintf("Find lines containing a literal string in the workspace's text files, below path, optionally only in files whose name matches glob. "+
				"Skips binary files, symbolic links, named pipes, sockets, devices and .git directories. Stops after %d matches, %d files or %d bytes read, and says so.",
				cfg.MaxSearchMatches, cfg.MaxSearchFiles, cfg.MaxSearchBytes),
			InputSchema: json.RawMessage(fmt.Sprintf(`{"type":"object","properties":{`+
				`"query":{"type":"string","minLength":1,"maxLength":%d,"description":"Literal text to find (not a regular expression)."},`+
				`"path":%s,`+
				`"glob":{"type":"string","maxLength":256,"description":"Only search files whose name (not directory) matches this pattern, e.g. *.go."},`+
				`"ignore_case":{"type":"boolean","description":"Match regardless of letter case."}`+
				`},"required":["query"],"additionalProperties":false}`, maxQueryLen, pathProp("Directory (or file) to search; default: the whole workspace."))),
			Scopes:   []string{ScopeFilesRead},
			ReadOnly: true, Idempotent: true,
			Handler: guard(func(ctx context.Context, _ *auth.Principal, args json.RawMessage) (*Result, error) {
				var a searchArgs
				if err := Decode(args, &a); err != nil {
					return nil, err
				}
				return w.search(ctx, a)
			}),
		},
		{
			Name:  "files_write",
			Title: "Write a workspace file",
			Description: fmt.Sprintf("Write text to a file in the workspace, replacing it atomically. Refuses to replace an existing file unless overwrite is true. "+
				"At most %d bytes.", cfg.MaxWriteBytes),
			InputSchema: json.RawMessage(`{"type":"object","properties":{` +
				`"path":` + pathProp("File to write.") + `,` +
				`"content":{"type":"string","description":"The file's new content (UTF-8)."},` +
				`"overwrite":{"type":"boolean","description":"Replace the file if it exists."},` +
				`"create_dirs":{"type":"boolean","description":"Create missing parent directories."}` +
				`},"required":["path","content"],"additionalProperties":false}`),
			Scopes:      []string{ScopeFilesWrite},
			Destructive: true, Idempotent: true,
			Handler: guard(func(ctx context.Context, _ *auth.Principal, args json.RawMessage) (*Result, error) {
				var a struct {
					Path       string `json:"path"`
					Content    string `json:"content"`
					Overwrite  bool   `json:"overwrite"`
					CreateDirs bool   `json:"create_dirs"`
				}
				if err := Decode(args, &a); err != nil {
					return nil, err
				}
				return w.write(a.Path, a.Content, a.Overwrite, a.CreateDirs)
			}),
		},
	}
}

func (w *Workspace) list(ctx context.Context, p string, recursive bool) (*Result, error) {
	rel, err := cleanPath(p)
	if err != nil {
		return nil, err
	}
	dir, _, err := w.open(rel, true)
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	limit := w.cfg.MaxListEntries
	entries := []FileEntry{}
	truncated := false
	add := func(name string, d fs.DirEntry) bool {
		if len(entries) == limit {
			truncated = true
			return false
		}
		e := FileEntry{Path: name, Type: entryType(d.Type())}
		if d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				e.Size = info.Size()
			}
		}
		entries = append(entries, e)
		return true
	}
	if recursive {
		err = fs.WalkDir(walkFS{w}, rel, func(name string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil // an unreadable subdirectory is left out, not fatal
			}
			if cerr := ctx.Err(); cerr != nil {
				return cerr
			}
			if name == rel {
				return nil
			}
			if !add(name, d) {
				return fs.SkipAll
			}
			return nil
		})
	} else {
		for err == nil && !truncated {
			var batch []fs.DirEntry
			batch, err = dir.ReadDir(256)
			for _, d := range batch {
				if !add(path.Join(rel, d.Name()), d) {
					break
				}
			}
		}
		if errors.Is(err, io.EOF) {
			err = nil
		}
	}
	if err != nil {
		return nil, fileErr(rel, err)
	}
	out := map[string]any{"path": rel, "entries": entries, "count": len(entries), "truncated": truncated}
	if truncated {
		out["note"] = fmt.Sprintf("stopped at %d entries (the limit); list a subdirectory", limit)
	}
	return JSONResult(out)
}

func (w *Workspace) read(p string, offset, length int64) (*Result, error) {
	rel, err := cleanPath(p)
	if err != nil {
		return nil, err
	}
	limit := w.cfg.MaxReadBytes
	if offset < 0 || length < 0 {
		return nil, fmt.Errorf("offset and length must not be negative: %w", ErrInput)
	}
	if length > limit {
		return nil, fmt.Errorf("length %d exceeds the read limit of %d bytes; read in parts: %w", length, limit, ErrInput)
	}
	f, fi, err := w.open(rel, false)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size := fi.Size()
	if offset > size {
		return nil, fmt.Errorf("%s: offset %d is past the end of the file (%d bytes): %w", rel, offset, size, ErrInput)
	}
	n := length
	if n == 0 {
		n = size - offset
		if n > limit {
			return nil, fmt.Errorf("%s is %d bytes from offset %d, more than the read limit of %d bytes; read it in parts with offset and length: %w",
				rel, n, offset, limit, ErrInput)
		}
	}
	b, err := io.ReadAll(io.NewSectionReader(f, offset, n))
	if err != nil {
		return nil, fileErr(rel, err)
	}
	out := map[string]any{"path": rel, "size": size, "offset": offset, "length": len(b), "eof": offset+int64(len(b)) >= size}
	if utf8.Valid(b) {
		out["encoding"], out["content"] = "utf-8", string(b)
	} else {
		out["encoding"], out["content"] = "base64", base64.StdEncoding.EncodeToString(b)
	}
	return JSONResult(out)
}

func (w *Workspace) write(p, content string, overwrite, createDirs bool) (*Result, error) {
	rel, err := cleanPath(p)
	if err != nil {
		return nil, err
	}
	if rel == "." {
		return nil, fmt.Errorf("path is the workspace itself; name a file: %w", ErrInput)
	}
	if int64(len(content)) > w.cfg.MaxWriteBytes {
		return nil, fmt.Errorf("content is %d bytes; the write limit is %d: %w", len(content), w.cfg.MaxWriteBytes, ErrInput)
	}
	dir := path.Dir(rel)
	if createDirs && dir != "." {
		if err := w.root.MkdirAll(dir, 0o755); err != nil {
			return nil, fileErr(dir, err)
		}
	}
	perm := fs.FileMode(0o644)
	created := true
	switch fi, err := w.root.Lstat(rel); {
	case err == nil:
		if fi.Mode()&fs.ModeSymlink != 0 {
			return nil, fmt.Errorf("%s: is a symbolic link; write to the file it points to: %w", rel, ErrInput)
		}
		// Lstat is enough here: the target is never opened, only
		// replaced by rename, so a FIFO swapped in cannot block.
		if !fi.Mode().IsRegular() {
			return nil, errNotRegular(rel, fi.Mode())
		}
		if !overwrite {
			return nil, fmt.Errorf("%s: exists; set overwrite to replace it: %w", rel, ErrInput)
		}
		perm, created = fi.Mode().Perm(), false
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fileErr(rel, err)
	}
	// Write a temporary file beside the target and rename it over, so a
	// reader never sees half a file and a failure leaves the old one.
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	tmp := path.Join(dir, ".idmcp-"+hex.EncodeToString(rnd[:])+".tmp")
	f, err := w.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: the directory %s does not exist; set create_dirs to create it: %w", rel, dir, ErrInput)
	}
	if err != nil {
		return nil, fileErr(rel, err)
	}
	_, werr := f.Write([]byte(content))
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = w.root.Rename(tmp, rel)
	}
	if werr != nil {
		_ = w.root.Remove(tmp)
		return nil, fileErr(rel, werr)
	}
	return JSONResult(map[string]any{"path": rel, "bytes": len(content), "created": created})
}

type searchArgs struct {
	Query      string `json:"query"`
	Path       string `json:"path"`
	Glob       string `json:"glob"`
	IgnoreCase bool   `json:"ignore_case"`
}

// SearchMatch is one line files_search found.
type SearchMatch struct {
	Path string `json:"path"`
	Line int    `json:"line"`
	Text string `json:"text"`
}

// errSearchDone stops the walk once a limit is reached.
var errSearchDone = errors.New("search limit reached")

func (w *Workspace) search(ctx context.Context, a searchArgs) (*Result, error) {
	if a.Query == "" || len(a.Query) > maxQueryLen || strings.ContainsAny(a.Query, "\n\r") {
		return nil, fmt.Errorf("query must be 1-%d bytes on one line: %w", maxQueryLen, ErrInput)
	}
	if a.Glob != "" {
		if _, err := path.Match(a.Glob, ""); err != nil || len(a.Glob) > 256 {
			return nil, fmt.Errorf("glob %q is not a valid pattern: %w", a.Glob, ErrInput)
		}
	}
	rel, err := cleanPath(a.Path)
	if err != nil {
		return nil, err
	}
	switch fi, err := w.root.Stat(rel); {
	case err != nil:
		return nil, fileErr(rel, err)
	case !fi.IsDir() && !fi.Mode().IsRegular():
		return nil, errNotRegular(rel, fi.Mode())
	}
	query := []byte(a.Query)
	if a.IgnoreCase {
		query = bytes.ToLower(query)
	}
	matches := []SearchMatch{}
	var files, skipped int
	var scanned int64
	stoppedBy, note := "", ""
	stop := func(by, msg string) error {
		stoppedBy, note = by, msg
		return errSearchDone
	}
	searchFile := func(name string) error {
		f, _, err := w.open(name, false)
		if err != nil {
			skipped++
			return nil // vanished, unreadable or not a regular file: skipped
		}
		defer f.Close()
		budget := w.cfg.MaxSearchBytes - scanned
		br := bufio.NewReader(io.LimitReader(f, budget+1))
		if head, _ := br.Peek(8 << 10); bytes.IndexByte(head, 0) >= 0 {
			return nil // binary
		}
		sc := bufio.NewScanner(br)
		sc.Buffer(make([]byte, 0, 64<<10), maxSearchLine)
		for line := 1; sc.Scan(); line++ {
			text := sc.Bytes()
			scanned += int64(len(text)) + 1
			if scanned > w.cfg.MaxSearchBytes {
				return stop("max_bytes", fmt.Sprintf("stopped after reading %d bytes (the limit); narrow path or glob", w.cfg.MaxSearchBytes))
			}
			if line%256 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			hay := text
			if a.IgnoreCase {
				hay = bytes.ToLower(text)
			}
			i := bytes.Index(hay, query)
			if i < 0 {
				continue
			}
			if len(matches) == w.cfg.MaxSearchMatches {
				return stop("max_matches", fmt.Sprintf("stopped at %d matches (the limit); narrow query, path or glob", w.cfg.MaxSearchMatches))
			}
			matches = append(matches, SearchMatch{Path: name, Line: line, Text: excerpt(string(text), i)})
		}
		return nil // a line over maxSearchLine ends this file only
	}
	err = fs.WalkDir(walkFS{w}, rel, func(name string, d fs.DirEntry, err error) error {
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		if err != nil {
			return nil
		}
		if d.IsDir() {
			if d.Name() == ".git" && name != rel {
				return fs.SkipDir
			}
			return nil
		}
		// Symbolic links (not followed), FIFOs, sockets and devices are
		// skipped; rel itself may be a link to a regular file, and
		// searchFile checks what it opens.
		if a.Glob != "" {
			if ok, _ := path.Match(a.Glob, d.Name()); !ok {
				return nil
			}
		}
		if !d.Type().IsRegular() && name != rel {
			if d.Type()&fs.ModeSymlink == 0 {
				skipped++
			}
			return nil
		}
		if files == w.cfg.MaxSearchFiles {
			return stop("max_files", fmt.Sprintf("stopped after %d files (the limit); narrow path or glob", w.cfg.MaxSearchFiles))
		}
		files++
		return searchFile(name)
	})
	if err != nil && !errors.Is(err, errSearchDone) {
		return nil, fileErr(rel, err)
	}
	out := map[string]any{"query": a.Query, "path": rel, "matches": matches, "count": len(matches),
		"files_searched": files, "bytes_scanned": scanned, "truncated": stoppedBy != ""}
	if skipped > 0 {
		out["skipped"] = skipped // FIFOs, sockets, devices, unreadable files
	}
	if stoppedBy != "" {
		out["stopped_by"], out["note"] = stoppedBy, note
	}
	return JSONResult(out)
}

// excerpt returns at most maxExcerpt bytes of line around byte offset i,
// cut at rune boundaries.
func excerpt(line string, i int) string {
	if len(line) <= maxExcerpt {
		return line
	}
	start := min(max(0, i-maxExcerpt/3), len(line)-1)
	for start > 0 && !utf8.RuneStart(line[start]) {
		start--
	}
	end := min(len(line), start+maxExcerpt)
	for end < len(line) && !utf8.RuneStart(line[end]) {
		end--
	}
	s := line[start:end]
	if start > 0 {
		s = "…" + s
	}
	if end < len(line) {
		s += "…"
	}
	return s
}
