package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"regexp"
	"slices"
	"time"
)

// HostProfile is a stdio host's server-side identity: its name and the scopes
// and roles it is granted. What the host sends never changes these.
type HostProfile struct {
	Name   string   `json:"name"`
	Scopes []string `json:"scopes"`
	Roles  []string `json:"roles"`
	// Keyring is true when the profile's secret lives in the OS keyring; false
	// for --no-keyring profiles whose secret comes from IDMCP_SHARED_SECRET or
	// --secret-file.
	Keyring bool      `json:"keyring"`
	Created time.Time `json:"created"`
	Rotated time.Time `json:"rotated,omitzero"`
}

// Validate checks the profile's name, and that each scope is an RFC 6749
// scope token and each role printable text without spaces, as the policy
// file requires of them.
func (p *HostProfile) Validate() error {
	if err := ValidateProfileName(p.Name); err != nil {
		return err
	}
	for _, s := range p.Scopes {
		if err := validScope(s); err != nil {
			return fmt.Errorf("scope %q: %w: %w", s, err, ErrInvalidConfig)
		}
	}
	for _, r := range p.Roles {
		if err := validRole(r); err != nil {
			return fmt.Errorf("role %q: %w: %w", r, err, ErrInvalidConfig)
		}
	}
	return nil
}

var profileNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ValidateProfileName checks that name is usable as a profile and keyring
// account name: 1 to 64 letters, digits, dots, dashes or underscores.
func ValidateProfileName(name string) error {
	if !profileNameRE.MatchString(name) {
		return fmt.Errorf("profile name %q: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit: %w", name, ErrInvalidConfig)
	}
	return nil
}

// TokenPrefix starts every host token, so that secret scanners and the audit
// redactor can recognise one anywhere.
const TokenPrefix = "idmcp_"

// NewHostToken returns a fresh host token: TokenPrefix followed by 256 random
// bits in unpadded base64url.
func NewHostToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go ≥ 1.24).
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
}

// ClientInfo is what a client says about itself (MCP clientInfo). It is
// recorded, never trusted.
type ClientInfo struct {
	Name    string
	Version string
}

// HostAuthenticatorConfig configures a HostAuthenticator.
type HostAuthenticatorConfig struct {
	// ProfileName is the profile the server was started for.
	ProfileName string
	// Profile is the stored profile, or nil when it does not exist.
	Profile *HostProfile
	// Secret is the expected secret; empty when none could be found.
	Secret []byte
	// SecretSource says where Secret came from ("keyring", "IDMCP_SHARED_SECRET",
	// "secret-file"), for whoami and the audit log.
	SecretSource string
	// SecretProblem says, without secrets, why Secret is empty ("the OS
	// keyring is unavailable: …"), for the refusal message.
	SecretProblem string
	// Human is the OS user running the server: the subject of every request.
	Human string
}

// Validate checks the configuration.
func (c HostAuthenticatorConfig) Validate() error {
	if err := ValidateProfileName(c.ProfileName); err != nil {
		return fmt.Errorf("field \"profile\": %w", err)
	}
	if c.Profile != nil && c.Profile.Name != c.ProfileName {
		return fmt.Errorf("field \"profile\": stored profile is %q, not %q: %w", c.Profile.Name, c.ProfileName, ErrInvalidConfig)
	}
	if c.Human == "" {
		return fmt.Errorf("field \"human\": empty: %w", ErrInvalidConfig)
	}
	return nil
}

// HostAuthenticator checks the credential a stdio host presents against its
// profile's secret. It fails closed: without a profile or an expected secret
// nothing authenticates.
type HostAuthenticator struct {
	cfg      HostAuthenticatorConfig
	expected [sha256.Size]byte
}

// NewHostAuthenticator returns an authenticator for cfg.
func NewHostAuthenticator(cfg HostAuthenticatorConfig) (*HostAuthenticator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	h := &HostAuthenticator{cfg: cfg}
	h.expected = sha256.Sum256(cfg.Secret)
	return h, nil
}

// Authenticate checks presented and returns the profile's principal. The
// comparison runs in constant time over SHA-256 digests, so neither the
// content nor the length of the secret leaks through timing. Errors are
// *Error of KindUnauthenticated whose message says what to do and never
// contains the secret or the presented credential.
func (h *HostAuthenticator) Authenticate(presented string, client ClientInfo) (*Principal, error) {
	name := h.cfg.ProfileName
	if h.cfg.Profile == nil {
		return nil, Unauthenticated("profile %q does not exist; run `idmcp host add %s`", name, name)
	}
	if len(h.cfg.Secret) == 0 {
		if h.cfg.Profile.Keyring {
			why := h.cfg.SecretProblem
			if why == "" {
				why = "its keyring entry is missing or the keyring is unavailable"
			}
			return nil, Unauthenticated("no secret configured for profile %q: %s; a keyring profile takes its secret only from the OS keyring: unlock it or run `idmcp host rotate %s` (on a machine without a keyring, use `idmcp host add NAME --no-keyring`)", name, why, name)
		}
		return nil, Unauthenticated("no secret configured for profile %q; set IDMCP_SHARED_SECRET or pass --secret-file (or run `idmcp host add %s` with a keyring)", name, name)
	}
	if presented == "" {
		return nil, Unauthenticated("no credential presented for profile %q; set IDMCP_TOKEN in the host's env block, or send capabilities.experimental[\"io.idmcp/auth\"].token", name)
	}
	got := sha256.Sum256([]byte(presented))
	if subtle.ConstantTimeCompare(got[:], h.expected[:]) != 1 {
		return nil, Unauthenticated("credential does not match profile %q", name)
	}
	p := h.cfg.Profile
	return &Principal{
		Subject:       h.cfg.Human,
		ClientID:      name,
		ClientName:    client.Name,
		ClientVersion: client.Version,
		Actors:        []string{},
		Scopes:        slices.Clone(p.Scopes),
		Roles:         slices.Clone(p.Roles),
		Method:        MethodHostSecret,
		Transport:     "stdio",
		Profile:       name,
	}, nil
}

// SecretSource reports where the expected secret came from.
func (h *HostAuthenticator) SecretSource() string { return h.cfg.SecretSource }

// ProfileName returns the profile the authenticator was built for.
func (h *HostAuthenticator) ProfileName() string { return h.cfg.ProfileName }
