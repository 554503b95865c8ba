package jwt

import (
	"context"
	"net/http"
	"testing"

	"github.com/portcullis/portcullis/pkg/engine"
	"github.com/portcullis/portcullis/pkg/engine/enginetest"
)

// TestEngineRequirements checks Envoy jwt_authn-style requirements (one provider, any
// of several, all of several, allow missing) expressed with one Authenticator per
// provider in a real engine pipeline.
func TestEngineRequirements(t *testing.T) {
	corpKey, partnerKey, strangerKey := newKey(t, ES256, "corp-1"), newKey(t, EdDSA, "partner-1"), newKey(t, ES256, "corp-1")
	provider := func(name, iss string, k *testKey, yield bool, src ...Source) *Authenticator {
		return newAuth(t, jwks(t, k), func(o *Options) {
			o.Name, o.Issuer, o.YieldOtherIssuers, o.Sources = name, iss, yield, src
		})
	}
	corpTok := corpKey.token(t, claims(map[string]any{"iss": "https://corp.test/", "sub": "alice"}))
	partnerTok := partnerKey.token(t, claims(map[string]any{"iss": "https://partner.test/", "sub": "bob"}))
	strangerTok := strangerKey.token(t, claims(map[string]any{"iss": "https://stranger.test/", "sub": "eve"}))
	forgedCorp := strangerKey.token(t, claims(map[string]any{"iss": "https://corp.test/", "sub": "alice"}))

	stage := func(a *Authenticator) engine.Stage {
		return enginetest.Stage("jwt:"+a.Name(), engine.PhaseAuthenticate, a)
	}
	pipelines := map[string]*engine.Pipeline{
		"one": {Authenticate: []engine.Stage{stage(provider("corp", "https://corp.test/", corpKey, false))}},
		"any": {Authenticate: []engine.Stage{
			stage(provider("corp", "https://corp.test/", corpKey, true)),
			stage(provider("partner", "https://partner.test/", partnerKey, false)),
		}},
		"all": {AuthMode: engine.AuthAll, Authenticate: []engine.Stage{
			stage(provider("corp", "https://corp.test/", corpKey, false)),
			stage(provider("partner", "https://partner.test/", partnerKey, false, Source{Kind: FromHeader, Name: "X-Partner-Token"})),
		}},
		"anon": {Anonymous: true, Authenticate: []engine.Stage{
			stage(provider("corp", "https://corp.test/", corpKey, true)),
			stage(provider("partner", "https://partner.test/", partnerKey, false)),
		}},
	}
	var routes []*engine.Route
	for name, p := range pipelines {
		p.Name = name
		routes = append(routes, &engine.Route{Name: name, Match: engine.Match{PathPrefix: "/" + name + "/"}, Pipeline: p})
	}
	table, err := engine.NewRouteTable(routes, engine.TableOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e := engine.New(table)

	cases := []struct {
		route, bearer, partnerHeader string
		status                       int
		subject, reason              string
	}{
		{"one", corpTok, "", 200, "alice", ""},
		{"one", partnerTok, "", 401, "", ReasonUnknownKid},
		{"one", "", "", 401, "", "auth.missing"},
		{"one", "pk_live_123", "", 401, "", "auth.missing"},
		{"any", corpTok, "", 200, "alice", ""},
		{"any", partnerTok, "", 200, "bob", ""},
		{"any", strangerTok, "", 401, "", ReasonUnknownKid}, // the last provider rejects it
		{"any", forgedCorp, "", 401, "", ReasonSignature},
		{"any", "", "", 401, "", "auth.missing"},
		{"all", corpTok, partnerTok, 200, "alice", ""},
		{"all", corpTok, "", 401, "", "auth.incomplete"},
		{"all", "", partnerTok, 401, "", "auth.incomplete"},
		{"all", corpTok, strangerTok, 401, "", ReasonUnknownKid},
		{"anon", "", "", 200, "", ""},
		{"anon", corpTok, "", 200, "alice", ""},
		{"anon", partnerTok, "", 200, "bob", ""},
		{"anon", strangerTok, "", 401, "", ReasonUnknownKid}, // present but invalid: never anonymous
		{"anon", forgedCorp, "", 401, "", ReasonSignature},
	}
	for _, tc := range cases {
		r := enginetest.NewRequest("GET", "/"+tc.route+"/x")
		if tc.bearer != "" {
			r.Header.Set("Authorization", "Bearer "+tc.bearer)
		}
		if tc.partnerHeader != "" {
			r.Header.Set("X-Partner-Token", tc.partnerHeader)
		}
		d := e.Decide(context.Background(), r)
		if d.Status != tc.status || (tc.reason != "" && d.Reason != tc.reason) {
			t.Errorf("%s bearer=%.12s partner=%.12s: got %d %s, want %d %s", tc.route, tc.bearer, tc.partnerHeader, d.Status, d.Reason, tc.status, tc.reason)
			continue
		}
		if tc.status == http.StatusOK && tc.subject != "" && d.Identity.Subject != tc.subject {
			t.Errorf("%s: subject %q want %q", tc.route, d.Identity.Subject, tc.subject)
		}
		if tc.status == http.StatusUnauthorized && tc.reason != "auth.missing" && tc.reason != "auth.incomplete" && d.Response.Get("Www-Authenticate") == "" {
			t.Errorf("%s: 401 %s without a challenge", tc.route, d.Reason)
		}
	}
}
