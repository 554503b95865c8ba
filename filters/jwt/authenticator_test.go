package jwt

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/portcullis/portcullis/pkg/engine"
	"github.com/portcullis/portcullis/pkg/engine/enginetest"
)

func TestSources(t *testing.T) {
	es := newKey(t, ES256, "es")
	tok := es.token(t, claims(nil))
	other := es.token(t, claims(map[string]any{"sub": "bob"}))
	a := newAuth(t, jwks(t, es), func(o *Options) {
		o.Sources = []Source{
			{Kind: FromBearer},
			{Kind: FromHeader, Name: "X-Token", Prefix: "Token "},
			{Kind: FromCookie, Name: "session"},
			{Kind: FromQuery, Name: "access_token"},
		}
	})
	cases := []struct {
		name    string
		build   func(r *engine.Request)
		subject string // "" with wantErr
		wantErr error  // engine.ErrNoCredentials or a denial reason via errAmbiguous
	}{
		{"nothing", func(*engine.Request) {}, "", engine.ErrNoCredentials},
		{"bearer", func(r *engine.Request) { r.Header.Set("Authorization", "Bearer "+tok) }, "alice", nil},
		{"bearer lowercase scheme", func(r *engine.Request) { r.Header.Set("Authorization", "bearer "+tok) }, "alice", nil},
		{"basic scheme is not ours", func(r *engine.Request) { r.Header.Set("Authorization", "Basic dXNlcjpwYXNz") }, "", engine.ErrNoCredentials},
		{"api key bearer falls through", func(r *engine.Request) { r.Header.Set("Authorization", "Bearer pk_live_abc123") }, "", engine.ErrNoCredentials},
		{"named header with prefix", func(r *engine.Request) { r.Header.Set("X-Token", "Token "+tok) }, "alice", nil},
		{"named header without prefix", func(r *engine.Request) { r.Header.Set("X-Token", tok) }, "", engine.ErrNoCredentials},
		{"cookie", func(r *engine.Request) { r.Header.Set("Cookie", "a=b; session="+tok+"; c=d") }, "alice", nil},
		{"query", func(r *engine.Request) { r.RawQuery = "x=1&access_token=" + tok }, "alice", nil},
		{"first source wins", func(r *engine.Request) {
			r.Header.Set("Authorization", "Bearer "+tok)
			r.RawQuery = "access_token=" + other
		}, "alice", nil},
		{"same token twice is fine", func(r *engine.Request) {
			r.Header.Add("Authorization", "Bearer "+tok)
			r.Header.Add("Authorization", "Bearer "+tok)
		}, "alice", nil},
		{"two bearer tokens are ambiguous", func(r *engine.Request) {
			r.Header.Add("Authorization", "Bearer "+tok)
			r.Header.Add("Authorization", "Bearer "+other)
		}, "", errAmbiguous},
		{"two cookies are ambiguous", func(r *engine.Request) { r.Header.Set("Cookie", "session="+tok+"; session="+other) }, "", errAmbiguous},
		{"two query values are ambiguous", func(r *engine.Request) { r.RawQuery = "access_token=" + tok + "&access_token=" + other }, "", errAmbiguous},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := enginetest.NewRequest("GET", "/ws")
			tc.build(r)
			id, err := a.Authenticate(context.Background(), r)
			switch {
			case tc.wantErr == engine.ErrNoCredentials:
				if !errors.Is(err, engine.ErrNoCredentials) {
					t.Fatalf("want no credentials, got %v", err)
				}
			case tc.wantErr != nil:
				var den *engine.Denial
				if !errors.As(err, &den) || den.Reason != ReasonMalformed {
					t.Fatalf("want malformed denial, got %v", err)
				}
			case err != nil:
				t.Fatal(err)
			case id.Subject != tc.subject:
				t.Fatalf("subject %q", id.Subject)
			}
		})
	}
	if got := a.QueryParams(); !slices.Equal(got, []string{"access_token"}) {
		t.Fatalf("query params %v", got)
	}
	if got := a.CredentialHeaders(); !slices.Equal(got, []string{"authorization", "x-token"}) {
		t.Fatalf("credential headers %v", got)
	}
}

func TestIdentity(t *testing.T) {
	es := newKey(t, ES256, "es")
	a := newAuth(t, jwks(t, es), func(o *Options) {
		o.SubjectClaim = "user.id"
		o.ScopeClaims = []string{"scope", "roles", "https://example.com/groups"}
		o.ClaimHeaders = []ClaimHeader{
			{Claim: "tenant.id", Header: "X-Tenant"},
			{Claim: "tenant.tier", Header: "x-tier"},
			{Claim: "roles", Header: "x-roles"},
			{Claim: "evil", Header: "x-evil"},
			{Claim: "missing", Header: "x-missing"},
		}
		o.PayloadHeader = "X-JWT-Payload"
	})
	tok := es.token(t, claims(map[string]any{
		"user":                       map[string]any{"id": "u-42"},
		"scope":                      "read write read",
		"roles":                      []string{"admin", "ops"},
		"https://example.com/groups": []string{"eng"},
		"tenant":                     map[string]any{"id": "t-7", "tier": 3},
		"evil":                       "a\r\nx-injected: 1",
	}))
	id, err := a.Authenticate(context.Background(), bearerRequest(tok))
	if err != nil {
		t.Fatal(err)
	}
	if id.Subject != "u-42" || id.Method != engine.AuthJWT || id.Issuer != "https://issuer.test/" || id.KeyID != "es" {
		t.Fatalf("identity %+v", id)
	}
	if want := []string{"read", "write", "admin", "ops", "eng"}; !slices.Equal(id.Scopes, want) || id.ScopesHeader != "read write admin ops eng" {
		t.Fatalf("scopes %v %q", id.Scopes, id.ScopesHeader)
	}
	if !id.Expires.Equal(testNow.Add(time.Hour)) {
		t.Fatalf("expires %v", id.Expires)
	}
	seg := splitSeg(tok, 1)
	want := []engine.HeaderValue{
		{Name: "x-tenant", Value: "t-7"}, {Name: "x-tier", Value: "3"}, {Name: "x-roles", Value: "admin,ops"},
		{Name: "x-jwt-payload", Value: seg},
	}
	if !slices.Equal(id.Headers, want) {
		t.Fatalf("headers %v", id.Headers)
	}
	if _, err := base64.RawURLEncoding.DecodeString(seg); err != nil {
		t.Fatal(err)
	}
}

func splitSeg(tok string, i int) string {
	for n := 0; n < i; n++ {
		tok = tok[indexDot(tok)+1:]
	}
	if j := indexDot(tok); j >= 0 {
		return tok[:j]
	}
	return tok
}

func indexDot(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			return i
		}
	}
	return -1
}

func TestClaimRules(t *testing.T) {
	es := newKey(t, ES256, "es")
	a := newAuth(t, jwks(t, es), func(o *Options) {
		o.Claims = []ClaimRule{
			{Claim: "tenant.id", Equals: "t-7"},
			{Claim: "tier", OneOf: []string{"2", "3"}},
			{Claim: "groups", Contains: "eng"},
			{Claim: "scope", Contains: "api"},
			{Claim: "email_verified", Equals: "true"},
			{Claim: "org"},
		}
	})
	base := map[string]any{
		"tenant": map[string]any{"id": "t-7"}, "tier": 3, "groups": []string{"ops", "eng"},
		"scope": "read api", "email_verified": true, "org": "acme",
	}
	with := func(k string, v any) map[string]any {
		m := claims(base)
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	if _, err := a.Authenticate(context.Background(), bearerRequest(es.token(t, claims(base)))); err != nil {
		t.Fatal(err)
	}
	bad := []map[string]any{
		with("tenant", map[string]any{"id": "t-8"}),
		with("tier", 1),
		with("tier", "3x"),
		with("groups", []string{"ops"}),
		with("groups", "eng-team"),
		with("scope", "apis"),
		with("email_verified", false),
		with("org", nil),
	}
	for i, c := range bad {
		den := denialOf(t, a, es.token(t, c))
		if den.Reason != ReasonClaim {
			t.Fatalf("case %d: %s", i, den.Reason)
		}
	}
}

func TestRevocation(t *testing.T) {
	es := newKey(t, ES256, "es")
	var mu sync.Mutex
	revoked := map[string]bool{}
	checkErr := error(nil)
	a := newAuth(t, jwks(t, es), func(o *Options) {
		o.DenyJTIs = []string{"jti-bad"}
		o.DenySubjects = []string{"mallory"}
		o.Revocation = RevocationCheckerFunc(func(_ context.Context, jti, sub string) (bool, error) {
			mu.Lock()
			defer mu.Unlock()
			return revoked[jti] || revoked[sub], checkErr
		})
	})
	for _, c := range []map[string]any{{"jti": "jti-bad"}, {"sub": "mallory"}} {
		if den := denialOf(t, a, es.token(t, claims(c))); den.Reason != ReasonRevoked {
			t.Fatal(den.Reason)
		}
	}
	tok := es.token(t, claims(map[string]any{"jti": "j-1"}))
	if _, err := a.Authenticate(context.Background(), bearerRequest(tok)); err != nil {
		t.Fatal(err)
	}
	// Revoked after it was cached: the hit must still be refused.
	mu.Lock()
	revoked["j-1"] = true
	mu.Unlock()
	if den := denialOf(t, a, tok); den.Reason != ReasonRevoked {
		t.Fatal(den.Reason)
	}
	// A failing store is a technical error, not a denial and not a pass.
	mu.Lock()
	revoked["j-1"], checkErr = false, errors.New("store down")
	mu.Unlock()
	_, err := a.Authenticate(context.Background(), bearerRequest(tok))
	var den *engine.Denial
	if err == nil || errors.As(err, &den) {
		t.Fatalf("want a technical error, got %v", err)
	}
}

func TestCacheHitSkipsVerificationButRechecksTime(t *testing.T) {
	es := newKey(t, ES256, "es")
	now := testNow
	var mu sync.Mutex
	a := newAuth(t, jwks(t, es), func(o *Options) {
		o.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	})
	tok := es.token(t, claims(map[string]any{"exp": testNow.Add(10 * time.Minute).Unix()}))
	for i := 0; i < 5; i++ {
		if _, err := a.Authenticate(context.Background(), bearerRequest(tok)); err != nil {
			t.Fatal(err)
		}
	}
	if n := a.verifications.Load(); n != 1 {
		t.Fatalf("verified %d times, want 1", n)
	}
	mu.Lock()
	now = testNow.Add(20 * time.Minute)
	mu.Unlock()
	if den := denialOf(t, a, tok); den.Reason != ReasonExpired {
		t.Fatal(den.Reason)
	}
}

func TestConcurrentFirstUseVerifiesOnce(t *testing.T) {
	rs := newKey(t, RS256, "rs")
	a := newAuth(t, jwks(t, rs), nil)
	tok := rs.token(t, claims(nil))
	// All goroutines start together on one unseen token.
	var wg sync.WaitGroup
	start := make(chan struct{})
	const n = 16
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, err := a.Authenticate(context.Background(), bearerRequest(tok))
			errs <- err
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	// Goroutines that arrive after the first finished hit the cache; those during it
	// share its flight. Either way: one verification.
	if v := a.verifications.Load(); v != 1 {
		t.Fatalf("verified %d times, want 1", v)
	}
}

func TestCacheBound(t *testing.T) {
	es := newKey(t, ES256, "es")
	const size = 64
	a := newAuth(t, jwks(t, es), func(o *Options) { o.CacheSize = size })
	for i := 0; i < 4*size; i++ {
		tok := es.token(t, claims(map[string]any{"jti": fmt.Sprint(i)}))
		if _, err := a.Authenticate(context.Background(), bearerRequest(tok)); err != nil {
			t.Fatal(err)
		}
		if n := a.cache.Len(); n > size {
			t.Fatalf("cache holds %d > %d after %d tokens", n, size, i+1)
		}
	}
	if a.cache.Len() < size/2 {
		t.Fatalf("cache holds only %d", a.cache.Len())
	}
	off := newAuth(t, jwks(t, es), func(o *Options) { o.CacheSize = -1 })
	tok := es.token(t, claims(nil))
	for i := 0; i < 3; i++ {
		if _, err := off.Authenticate(context.Background(), bearerRequest(tok)); err != nil {
			t.Fatal(err)
		}
	}
	if off.cache.Len() != 0 || off.verifications.Load() != 3 {
		t.Fatal("a disabled cache must not cache")
	}
}

func TestCheckAndStatus(t *testing.T) {
	es := newKey(t, ES256, "es")
	a := newAuth(t, jwks(t, es), nil)
	if !a.Ready() || a.Status().Keys != 1 || a.Start(context.Background()) != nil || a.Close() != nil {
		t.Fatal("static keys are ready at once")
	}
	_, err := a.Check(context.Background(), es.token(t, claims(map[string]any{"aud": "other"})))
	var ve *VerifyError
	if !errors.As(err, &ve) || ve.Reason != ReasonAudience {
		t.Fatalf("check: %v", err)
	}
}

func TestOptionsValidation(t *testing.T) {
	keys := jwks(t, newKey(t, ES256, "es"))
	bad := []Options{
		{},
		{Name: "x"},
		{Name: "x", Keys: KeysOptions{JWKS: keys, URL: "https://a.test/jwks"}},
		{Name: "x", Keys: KeysOptions{URL: "http://a.test/jwks"}},
		{Name: "x", Keys: KeysOptions{Discovery: true}},
		{Name: "x", Keys: KeysOptions{JWKS: keys}, Sources: []Source{{Kind: FromCookie}}},
		{Name: "x", Keys: KeysOptions{JWKS: keys}, ClaimHeaders: []ClaimHeader{{Claim: "a", Header: "bad header"}}},
		{Name: "x", Keys: KeysOptions{JWKS: keys}, Claims: []ClaimRule{{}}},
		{Name: "x", Keys: KeysOptions{JWKS: []byte(`{"keys":[]}`)}},
		{Name: "x", Keys: KeysOptions{File: "/nonexistent/jwks.json"}},
	}
	for i, o := range bad {
		if _, err := New(o); err == nil {
			t.Errorf("case %d: want an error", i)
		}
	}
}
