package jwt

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/idmcp/idmcp/auth"
)

// maxClaimString bounds identifiers taken from a token (sub, client_id, act.sub).
const maxClaimString = 1024

// principalFrom maps verified claims to a principal: subject = sub; agent =
// the first of m.ClientClaims present (client_id per RFC 9068 §2.2, else azp
// per OpenID Connect, by default); the RFC 8693 act chain,
// current actor first; scopes and roles through m.
func principalFrom(claims map[string]any, issuer string, m ClaimMapping) (*auth.Principal, error) {
	sub, err := stringClaim(claims, "sub")
	if err != nil {
		return nil, err
	}
	if sub == "" {
		return nil, errors.New("token has no sub claim")
	}
	var client string
	for _, name := range m.ClientClaims {
		if client, err = stringClaim(claims, name); err != nil {
			return nil, err
		}
		if client != "" {
			break
		}
	}
	actors, err := actChain(claims)
	if err != nil {
		return nil, err
	}
	return &auth.Principal{
		Subject:   sub,
		ClientID:  client,
		Actors:    actors,
		Scopes:    scopesFrom(claims, m),
		Roles:     rolesFrom(claims, m),
		Method:    auth.MethodJWT,
		Transport: "http",
		Issuer:    issuer,
	}, nil
}

// stringClaim returns a string claim; absent is "", any other type an error.
func stringClaim(claims map[string]any, name string) (string, error) {
	v, ok := claims[name]
	if !ok || v == nil {
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("claim %q is not a string", name)
	}
	if len(s) > maxClaimString {
		return "", fmt.Errorf("claim %q is longer than %d bytes", name, maxClaimString)
	}
	return s, nil
}

// actChain walks the nested RFC 8693 §4.1 act claim: act.sub is the current
// actor, act.act.sub the one before it, and so on. A malformed chain refuses
// the token rather than being dropped, since the audit log would then show a
// delegated call as a direct one.
func actChain(claims map[string]any) ([]string, error) {
	actors := []string{}
	cur, ok := claims["act"]
	for ok && cur != nil {
		if len(actors) == MaxActDepth {
			return nil, fmt.Errorf("act chain is deeper than %d", MaxActDepth)
		}
		obj, isObj := cur.(map[string]any)
		if !isObj {
			return nil, errors.New("act claim is not an object")
		}
		sub, err := stringClaim(obj, "sub")
		if err != nil {
			return nil, fmt.Errorf("act: %w", err)
		}
		if sub == "" {
			return nil, errors.New("act claim has no sub")
		}
		actors = append(actors, sub)
		cur, ok = obj["act"]
	}
	return actors, nil
}

// scopesFrom collects the scopes of every configured claim, in order, without
// duplicates and with m.ScopePrefix removed.
func scopesFrom(claims map[string]any, m ClaimMapping) []string {
	out := []string{}
	add := func(s string) {
		s = strings.TrimPrefix(s, m.ScopePrefix)
		if s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	for _, name := range m.ScopeClaims {
		v, _ := lookup(claims, name)
		for _, s := range stringsOf(v) {
			for _, f := range strings.Fields(s) {
				add(f)
			}
		}
	}
	return out
}

// rolesFrom collects the roles of every configured claim, without duplicates.
func rolesFrom(claims map[string]any, m ClaimMapping) []string {
	out := []string{}
	for _, path := range m.RoleClaims {
		v, _ := lookup(claims, path)
		for _, r := range stringsOf(v) {
			if r = strings.TrimSpace(r); r != "" && !slices.Contains(out, r) {
				out = append(out, r)
			}
		}
	}
	return out
}

// lookup finds a claim by its exact top-level name first (names such as
// "https://example.com/roles" contain dots), then as a dotted path.
func lookup(claims map[string]any, path string) (any, bool) {
	if v, ok := claims[path]; ok {
		return v, true
	}
	var cur any = claims
	for part := range strings.SplitSeq(path, ".") {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = obj[part]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// stringsOf returns a string as itself and an array as its string elements;
// anything else contributes nothing.
func stringsOf(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}
