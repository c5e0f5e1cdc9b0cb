package auth_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/idmcp/idmcp/auth"
)

func TestParsePolicy_HTTPProviderSettings(t *testing.T) {
	src := `version = 1
[http]
issuer = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_X"
provider = "Cognito"
accepted_types = ["at+jwt"]
accept_untyped_tokens = false
audience_claim = "client_id"
extra_issuers = ["https://sts.windows.net/t/"]
refuse_id_tokens = true
max_token_lifetime = "45m"
introspection = "rfc7662"
introspection_url = "https://idp.example.com/introspect"
introspection_auth = "private_key_jwt"
introspection_client_id = "idmcp"
introspection_client_key_file = "/etc/idmcp/client.pem"
introspection_cache_ttl = "15s"
subject_rate = 0
subject_burst = 100
failed_auth_rate = 0.5
failed_auth_burst = 10
[claims]
client_claims = ["cid"]
`
	p, err := auth.ParsePolicy("p.toml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	h := p.HTTP
	if h.Provider != "cognito" || h.AudienceClaim != "client_id" || h.AcceptUntypedTokens == nil || *h.AcceptUntypedTokens ||
		h.MaxTokenLifetime != 45*time.Minute || h.IntrospectionCacheTTL != 15*time.Second || h.IntrospectionAuth != "private_key_jwt" ||
		*h.SubjectRate != 0 || *h.SubjectBurst != 100 || *h.FailedAuthRate != 0.5 || *h.FailedAuthBurst != 10 ||
		h.RefuseIDTokens == nil || !*h.RefuseIDTokens || len(h.ExtraIssuers) != 1 || p.Claims.ClientClaims[0] != "cid" {
		t.Errorf("settings = %+v", h)
	}
	if (p.HTTP.FailedAuthRate != nil) && len(p.Warnings) != 0 {
		t.Errorf("warnings = %v", p.Warnings)
	}
}

func TestParsePolicy_HTTPProviderErrors(t *testing.T) {
	for name, c := range map[string]struct{ src, want string }{
		"UnknownProvider":   {`provider = "ping"`, `http.provider: unknown provider "ping"`},
		"BadDuration":       {`max_token_lifetime = "an hour"`, `http.max_token_lifetime: "an hour" is not a duration`},
		"NegativeRate":      {`subject_rate = -1`, `http.subject_rate: -1: want a rate per second`},
		"ZeroBurst":         {`failed_auth_burst = 0`, `http.failed_auth_burst: 0: want 1..1000000`},
		"RFC7662WithoutURL": {`introspection = "rfc7662"`, `rfc7662 needs introspection_url`},
		"BadAuthMethod":     {`introspection_auth = "tls_client_auth"`, `want client_secret_basic`},
		"UnknownKey":        {`provider_name = "okta"`, `unknown key "provider_name"`},
		"EmptyType":         {`accepted_types = [""]`, `accepted_types`},
		"RateWrongType":     {`subject_rate = "fast"`, `subject_rate`},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := auth.ParsePolicy("p.toml", []byte("version = 1\n[http]\n"+c.src+"\n"))
			if err == nil || !errors.Is(err, auth.ErrInvalidPolicy) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to contain %q", err, c.want)
			}
		})
	}
	t.Run("FailedAuthOffWarns", func(t *testing.T) {
		p, err := auth.ParsePolicy("p.toml", []byte("version = 1\n[http]\nfailed_auth_rate = 0\n"))
		if err != nil || len(p.Warnings) != 1 || !strings.Contains(p.Warnings[0], "junk tokens") {
			t.Fatalf("err %v, warnings %v", err, p.Warnings)
		}
	})
}
