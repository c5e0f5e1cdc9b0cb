// Package hostconfig writes idmcp into the configuration files of MCP hosts
// (Claude Desktop, Claude Code, VS Code, Cursor, Windsurf, Gemini CLI, Codex
// CLI, Zed) and reads back what is there, for `idmcp host --install` and
// `idmcp doctor`.
//
// It owns where each host keeps its file on each platform, each host's
// format, and the edit: merge into what is there (other servers, unknown keys,
// comments and key order kept), refuse a file that does not parse (with its
// line) without writing, back the previous file up beside it, and leave a file
// that holds a token 0600. It does not own host profiles, tokens or the
// keyring: the caller passes the entry to write.
package hostconfig

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
)

// Host names a supported MCP host.
type Host string

// The hosts idmcp installs into.
const (
	ClaudeDesktop Host = "claude-desktop"
	ClaudeCode    Host = "claude-code"
	VSCode        Host = "vscode"
	Cursor        Host = "cursor"
	Windsurf      Host = "windsurf"
	Gemini        Host = "gemini"
	Codex         Host = "codex"
	Zed           Host = "zed"
)

// Hosts lists every supported host, in the order the README shows them.
func Hosts() []Host {
	return []Host{ClaudeDesktop, ClaudeCode, VSCode, Cursor, Windsurf, Gemini, Codex, Zed}
}

// Scope says which of a host's files holds the entry.
type Scope string

// Scopes. Local is Claude Code's per-project entry inside ~/.claude.json.
const (
	User    Scope = "user"
	Project Scope = "project"
	Local   Scope = "local"
)

// ErrUnsupported means the host has no file for that scope or platform.
var ErrUnsupported = errors.New("not supported")

// ErrInvalidFile means the existing file does not parse; nothing was written.
var ErrInvalidFile = errors.New("invalid host config file")

// ErrExists means the host already has an entry of that name and Force was
// not set.
var ErrExists = errors.New("entry exists")

// format is how a host's file is laid out.
type format int

const (
	fmtMCPServers format = iota // {"mcpServers": {NAME: {command, args, env}}}
	fmtVSCode                   // {"servers": {NAME: {type, command, args, env}}, "inputs": [...]}
	fmtZed                      // {"context_servers": {NAME: {source, command, args, env}}}
	fmtCodex                    // TOML [mcp_servers.NAME] + [mcp_servers.NAME.env]
)

// Env is what locating a host's file depends on: the platform and the
// user's directories. EnvFromOS fills it for this process.
type Env struct {
	GOOS string
	// Home is the user's home directory.
	Home string
	// AppData is %APPDATA% (Windows).
	AppData string
	// XDGConfigHome is $XDG_CONFIG_HOME (Linux), empty for the default.
	XDGConfigHome string
	// CodexHome is $CODEX_HOME, empty for ~/.codex.
	CodexHome string
	// Workspace is the absolute project directory for the project and local
	// scopes.
	Workspace string
}

// EnvFromOS returns the Env of this process, with workspace (made absolute;
// the working directory when empty) as the project directory.
func EnvFromOS(workspace string) (Env, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return Env{}, fmt.Errorf("find the home directory: %w", err)
	}
	if workspace == "" {
		workspace = "."
	}
	ws, err := filepath.Abs(workspace)
	if err != nil {
		return Env{}, err
	}
	return Env{
		GOOS: runtime.GOOS, Home: home, AppData: os.Getenv("APPDATA"),
		XDGConfigHome: os.Getenv("XDG_CONFIG_HOME"), CodexHome: os.Getenv("CODEX_HOME"), Workspace: ws,
	}, nil
}

// Target is one host file to edit.
type Target struct {
	Host  Host
	Scope Scope
	// Path is the file.
	Path string
	// Workspace is the project directory (project and local scopes).
	Workspace string
}

// hostDef is what the package knows about one host.
type hostDef struct {
	display string
	format  format
	// user returns the user-scope file, or an error saying why there is none.
	user func(Env) (string, error)
	// project returns the project file inside a workspace; nil: no project scope.
	project func(ws string) string
	// envRef is how the project file references an environment variable,
	// so that it never holds the token; nil: the host has no expansion and a
	// project file would hold the token itself.
	envRef func(name string) string
}

func homeJoin(elem ...string) func(Env) (string, error) {
	return func(e Env) (string, error) {
		if e.Home == "" {
			return "", errors.New("no home directory")
		}
		return filepath.Join(append([]string{e.Home}, elem...)...), nil
	}
}

func defs() map[Host]hostDef {
	return map[Host]hostDef{
		ClaudeDesktop: {
			display: "Claude Desktop", format: fmtMCPServers,
			user: func(e Env) (string, error) {
				switch e.GOOS {
				case "darwin":
					return filepath.Join(e.Home, "Library", "Application Support", "Claude", "claude_desktop_config.json"), nil
				case "windows":
					if e.AppData == "" {
						return "", errors.New("%APPDATA% is not set")
					}
					return filepath.Join(e.AppData, "Claude", "claude_desktop_config.json"), nil
				}
				return "", fmt.Errorf("Claude Desktop has no %s build (only macOS and Windows): %w; use Claude Code, or pass --config FILE", e.GOOS, ErrUnsupported)
			},
		},
		ClaudeCode: {
			display: "Claude Code", format: fmtMCPServers,
			user:    homeJoin(".claude.json"),
			project: func(ws string) string { return filepath.Join(ws, ".mcp.json") },
			envRef:  func(n string) string { return "${" + n + "}" },
		},
		VSCode: {
			display: "VS Code", format: fmtVSCode,
			user: func(e Env) (string, error) {
				switch e.GOOS {
				case "darwin":
					return filepath.Join(e.Home, "Library", "Application Support", "Code", "User", "mcp.json"), nil
				case "windows":
					if e.AppData == "" {
						return "", errors.New("%APPDATA% is not set")
					}
					return filepath.Join(e.AppData, "Code", "User", "mcp.json"), nil
				}
				return filepath.Join(xdgConfig(e), "Code", "User", "mcp.json"), nil
			},
			project: func(ws string) string { return filepath.Join(ws, ".vscode", "mcp.json") },
		},
		Cursor: {
			display: "Cursor", format: fmtMCPServers,
			user:    homeJoin(".cursor", "mcp.json"),
			project: func(ws string) string { return filepath.Join(ws, ".cursor", "mcp.json") },
			envRef:  func(n string) string { return "${env:" + n + "}" },
		},
		Windsurf: {
			display: "Windsurf", format: fmtMCPServers,
			user: homeJoin(".codeium", "windsurf", "mcp_config.json"),
		},
		Gemini: {
			display: "Gemini CLI", format: fmtMCPServers,
			user:    homeJoin(".gemini", "settings.json"),
			project: func(ws string) string { return filepath.Join(ws, ".gemini", "settings.json") },
			envRef:  func(n string) string { return "${" + n + "}" },
		},
		Codex: {
			display: "Codex CLI", format: fmtCodex,
			user: func(e Env) (string, error) {
				if e.CodexHome != "" {
					return filepath.Join(e.CodexHome, "config.toml"), nil
				}
				return homeJoin(".codex", "config.toml")(e)
			},
		},
		Zed: {
			display: "Zed", format: fmtZed,
			user: func(e Env) (string, error) {
				if e.GOOS == "windows" {
					if e.AppData == "" {
						return "", errors.New("%APPDATA% is not set")
					}
					return filepath.Join(e.AppData, "Zed", "settings.json"), nil
				}
				// Zed keeps ~/.config/zed on macOS too.
				return filepath.Join(xdgConfig(e), "zed", "settings.json"), nil
			},
		},
	}
}

func xdgConfig(e Env) string {
	if e.GOOS == "linux" && e.XDGConfigHome != "" && filepath.IsAbs(e.XDGConfigHome) {
		return e.XDGConfigHome
	}
	return filepath.Join(e.Home, ".config")
}

// ParseHost returns the host named s (case-insensitive; "claude" is an alias
// for Claude Code, "code" for VS Code).
func ParseHost(s string) (Host, error) {
	h := Host(strings.ToLower(strings.TrimSpace(s)))
	switch h {
	case "claude":
		h = ClaudeCode
	case "code", "vs-code":
		h = VSCode
	case "gemini-cli":
		h = Gemini
	case "codex-cli":
		h = Codex
	}
	if _, ok := defs()[h]; !ok {
		names := make([]string, 0, 8)
		for _, x := range Hosts() {
			names = append(names, string(x))
		}
		return "", fmt.Errorf("unknown host %q; want one of %s", s, strings.Join(names, ", "))
	}
	return h, nil
}

// DisplayName is the host's product name.
func (h Host) DisplayName() string { return defs()[h].display }

// Locate returns the file of host h for scope in env. Project and local
// scopes use env.Workspace.
func Locate(h Host, scope Scope, env Env) (Target, error) {
	d, ok := defs()[h]
	if !ok {
		return Target{}, fmt.Errorf("unknown host %q", h)
	}
	t := Target{Host: h, Scope: scope, Workspace: env.Workspace}
	switch scope {
	case User, "":
		t.Scope = User
		p, err := d.user(env)
		if err != nil {
			return Target{}, err
		}
		t.Path = p
	case Project:
		if d.project == nil {
			return Target{}, fmt.Errorf("%s has no project-scope file: %w; use --scope user", d.display, ErrUnsupported)
		}
		if env.Workspace == "" {
			return Target{}, errors.New("project scope needs a workspace directory")
		}
		t.Path = d.project(env.Workspace)
	case Local:
		if h != ClaudeCode {
			return Target{}, fmt.Errorf("local scope is Claude Code's only: %w", ErrUnsupported)
		}
		p, err := d.user(env)
		if err != nil {
			return Target{}, err
		}
		t.Path = p
	default:
		return Target{}, fmt.Errorf("unknown scope %q; want user, project or local", scope)
	}
	return t, nil
}

// KnownTargets returns every file idmcp knows for env: each host's user
// file (where the platform has one), Claude Code's local scope, and each
// project file inside env.Workspace. Doctor and uninstall read them all.
func KnownTargets(env Env) []Target {
	var out []Target
	for _, h := range Hosts() {
		for _, s := range []Scope{User, Local, Project} {
			if s == Local && h != ClaudeCode {
				continue
			}
			if s != User && env.Workspace == "" {
				continue
			}
			t, err := Locate(h, s, env)
			if err != nil {
				continue
			}
			// A workspace that is the home directory makes a project file
			// the user file (~/.gemini/settings.json): read it once.
			if s == Project && slices.ContainsFunc(out, func(u Target) bool { return u.Host == h && u.Path == t.Path }) {
				continue
			}
			out = append(out, t)
		}
	}
	return out
}

// TokenEnv is the environment variable in which idmcp serve takes the host's
// token.
const TokenEnv = "IDMCP_TOKEN"

// Entry is how a host launches idmcp: the server's name in the host's file,
// the absolute command, its arguments, and the token it presents.
type Entry struct {
	// Name is the server's key in the host's file ("idmcp-PROFILE").
	Name    string
	Command string
	Args    []string
	// Profile is the host profile the token belongs to; it names the
	// environment variable or VS Code input that carries the token where
	// the file must not hold it.
	Profile string
	// Token is the host token, or a placeholder for a dry run.
	Token string
}

// EntryName returns the server name idmcp uses for profile.
func EntryName(profile string) string { return "idmcp-" + profile }

// TokenVar is the environment variable a project file references for
// profile's token ("IDMCP_TOKEN_CC" for "cc").
func TokenVar(profile string) string {
	var b strings.Builder
	b.WriteString("IDMCP_TOKEN_")
	for _, r := range strings.ToUpper(profile) {
		if (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// InputID is the VS Code input id that carries profile's token.
func InputID(profile string) string { return "idmcp-token-" + profile }

// tokenPlacement says how the token reaches the host's process.
type tokenPlacement struct {
	// value is what the file holds under env.IDMCP_TOKEN.
	value string
	// literal: the file holds the token itself (so it is left 0600).
	literal bool
	// envVar: the host expands this variable from its own environment.
	envVar string
	// input: VS Code prompts for this input id.
	input string
}

func placement(t Target, e Entry) tokenPlacement {
	d := defs()[t.Host]
	switch {
	case d.format == fmtVSCode:
		id := InputID(e.Profile)
		return tokenPlacement{value: "${input:" + id + "}", input: id}
	case t.Scope == Project && d.envRef != nil:
		v := TokenVar(e.Profile)
		return tokenPlacement{value: d.envRef(v), envVar: v}
	}
	return tokenPlacement{value: e.Token, literal: true}
}

// serverObject is the host's JSON object for e, keys in the order the
// host's own docs show them.
func serverObject(h Host, e Entry, tokenValue string) orderedObject {
	env := orderedObject{{TokenEnv, tokenValue}}
	args := slices.Clone(e.Args)
	if args == nil {
		args = []string{}
	}
	switch h {
	case ClaudeCode:
		return orderedObject{{"type", "stdio"}, {"command", e.Command}, {"args", args}, {"env", env}}
	case VSCode:
		return orderedObject{{"type", "stdio"}, {"command", e.Command}, {"args", args}, {"env", env}}
	case Zed:
		return orderedObject{{"source", "custom"}, {"command", e.Command}, {"args", args}, {"env", env}}
	}
	return orderedObject{{"command", e.Command}, {"args", args}, {"env", env}}
}
