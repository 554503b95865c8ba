package apikey

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/pkg/engine"
)

var epoch = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// fixture is a set of generated keys and an authenticator over them.
type fixture struct {
	a    *Authenticator
	keys map[string]Generated // by name
}

func newFixture(t testing.TB, opts Options) fixture {
	t.Helper()
	names := []string{"good", "rotated", "expired", "disabled", "ipbound", "future"}
	f := fixture{keys: make(map[string]Generated)}
	var keys []Key
	for _, n := range names {
		g, err := Generate(nil)
		if err != nil {
			t.Fatal(err)
		}
		f.keys[n] = g
		h, err := ParseHash(g.Hash)
		if err != nil {
			t.Fatal(err)
		}
		k := Key{ID: g.ID, Subject: "billing", Hash: h, Scopes: []string{"invoices:read", "invoices:write"}}
		switch n {
		case "expired":
			k.Expires = epoch
		case "future":
			k.Expires = epoch.Add(time.Second)
		case "disabled":
			k.Disabled = true
		case "ipbound":
			k.AllowedIPs = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/32")}
		}
		keys = append(keys, k)
	}
	if opts.Now == nil {
		opts.Now = func() time.Time { return epoch }
	}
	a, err := New(keys, opts)
	if err != nil {
		t.Fatal(err)
	}
	f.a = a
	return f
}

func request(h http.Header, query, ip string) *engine.Request {
	if h == nil {
		h = http.Header{}
	}
	r := &engine.Request{Header: h, RawQuery: query}
	if ip != "" {
		r.Peer.IP = netip.MustParseAddr(ip)
	}
	return r
}

func TestAuthenticate(t *testing.T) {
	f := newFixture(t, Options{Sources: []Source{{Bearer: true}, {Header: "X-API-Key"}, {Header: "x-custom-key"}, {Query: "api_key"}}})
	good := f.keys["good"].Key
	otherSecret := f.keys["rotated"].Key[len(Prefix)+IDLen:]
	unknown := Prefix + "zzzzzzzz" + good[len(Prefix)+IDLen:]
	swapped := good[:len(Prefix)+IDLen] + otherSecret
	const jwt = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"
	tests := []struct {
		name      string
		h         http.Header
		query, ip string
		subject   string // expect success as this key
		keyName   string
		reason    string // expect this denial
		status    int
		challenge string
		noCreds   bool
	}{
		{name: "bearer", h: http.Header{"Authorization": {"Bearer " + good}}, keyName: "good"},
		{name: "bearer lowercase scheme", h: http.Header{"Authorization": {"bearer " + good}}, keyName: "good"},
		{name: "x-api-key", h: http.Header{"X-Api-Key": {good}}, keyName: "good"},
		{name: "custom header", h: http.Header{"X-Custom-Key": {good}}, keyName: "good"},
		{name: "query", query: "a=1&api_key=" + good, keyName: "good"},
		{name: "rotation second key", h: http.Header{"X-Api-Key": {f.keys["rotated"].Key}}, keyName: "rotated"},
		{name: "not yet expired", h: http.Header{"X-Api-Key": {f.keys["future"].Key}}, keyName: "future"},
		{name: "ip allowed v4", h: http.Header{"X-Api-Key": {f.keys["ipbound"].Key}}, ip: "10.1.2.3", keyName: "ipbound"},
		{name: "ip allowed v4-mapped", h: http.Header{"X-Api-Key": {f.keys["ipbound"].Key}}, ip: "::ffff:10.1.2.3", keyName: "ipbound"},
		{name: "ip allowed v6", h: http.Header{"X-Api-Key": {f.keys["ipbound"].Key}}, ip: "2001:db8::1", keyName: "ipbound"},
		{name: "first source wins", h: http.Header{"Authorization": {"Bearer " + good}, "X-Api-Key": {"garbage"}}, keyName: "good"},

		{name: "none", noCreds: true},
		{name: "empty header", h: http.Header{"X-Api-Key": {""}}, noCreds: true},
		{name: "bearer jwt passes through", h: http.Header{"Authorization": {"Bearer " + jwt}}, noCreds: true},
		{name: "basic passes through", h: http.Header{"Authorization": {"Basic dXNlcjpwYXNz"}}, noCreds: true},
		{name: "bearer jwt then api key header", h: http.Header{"Authorization": {"Bearer " + jwt}, "X-Api-Key": {good}}, keyName: "good"},
		{name: "two jwt authorization headers not ours", h: http.Header{"Authorization": {"Bearer " + jwt, "Bearer " + jwt}}, noCreds: true},
		{name: "unrelated query", query: "x=1", noCreds: true},

		{name: "wrong secret", h: http.Header{"X-Api-Key": {swapped}}, reason: ReasonInvalid, status: 401, challenge: challengeAPIKey},
		{name: "wrong secret bearer", h: http.Header{"Authorization": {"Bearer " + swapped}}, reason: ReasonInvalid, status: 401, challenge: challengeBearer},
		{name: "unknown id", h: http.Header{"X-Api-Key": {unknown}}, reason: ReasonUnknown, status: 401, challenge: challengeAPIKey},
		{name: "expired", h: http.Header{"X-Api-Key": {f.keys["expired"].Key}}, reason: ReasonExpired, status: 401, challenge: challengeAPIKey},
		{name: "disabled", h: http.Header{"Authorization": {"Bearer " + f.keys["disabled"].Key}}, reason: ReasonDisabled, status: 401, challenge: challengeBearer},
		{name: "ip not allowed", h: http.Header{"X-Api-Key": {f.keys["ipbound"].Key}}, ip: "192.0.2.1", reason: ReasonIPNotAllowed, status: 403},
		{name: "ip unknown", h: http.Header{"X-Api-Key": {f.keys["ipbound"].Key}}, reason: ReasonIPNotAllowed, status: 403},
		{name: "malformed short", h: http.Header{"X-Api-Key": {good[:KeyLen-1]}}, reason: ReasonMalformed, status: 401, challenge: challengeAPIKey},
		{name: "malformed long", h: http.Header{"X-Api-Key": {good + "a"}}, reason: ReasonMalformed, status: 401, challenge: challengeAPIKey},
		{name: "malformed uppercase", h: http.Header{"X-Api-Key": {strings.ToUpper(good)}}, reason: ReasonMalformed, status: 401, challenge: challengeAPIKey},
		{name: "malformed bearer", h: http.Header{"Authorization": {"Bearer pk_nope"}}, reason: ReasonMalformed, status: 401, challenge: challengeBearer},
		{name: "malformed bearer trailing junk", h: http.Header{"Authorization": {"Bearer " + good + " x"}}, reason: ReasonMalformed, status: 401, challenge: challengeBearer},
		{name: "malformed jwt in api key header", h: http.Header{"X-Api-Key": {jwt}}, reason: ReasonMalformed, status: 401, challenge: challengeAPIKey},
		{name: "envoy-joined duplicates", h: http.Header{"X-Api-Key": {good + "," + good}}, reason: ReasonMalformed, status: 401, challenge: challengeAPIKey},
		{name: "duplicate authorization", h: http.Header{"Authorization": {"Bearer " + good, "Bearer " + good}}, reason: ReasonAmbiguous, status: 400, challenge: challengeBearerRequest},
		{name: "authorization jwt and key", h: http.Header{"Authorization": {"Bearer " + jwt, "Bearer " + good}}, reason: ReasonAmbiguous, status: 400, challenge: challengeBearerRequest},
		{name: "duplicate x-api-key", h: http.Header{"X-Api-Key": {good, good}}, reason: ReasonAmbiguous, status: 400},
		{name: "duplicate query", query: "api_key=" + good + "&api_key=" + good, reason: ReasonAmbiguous, status: 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := f.a.Authenticate(context.Background(), request(tt.h, tt.query, tt.ip))
			switch {
			case tt.noCreds:
				if !errors.Is(err, engine.ErrNoCredentials) || id != nil {
					t.Fatalf("got %v, %v; want ErrNoCredentials", id, err)
				}
			case tt.keyName != "":
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				g := f.keys[tt.keyName]
				if id.Subject != "billing" || id.KeyID != g.ID || id.Method != engine.AuthAPIKey ||
					id.ScopesHeader != "invoices:read invoices:write" || !id.HasScope("invoices:write") {
					t.Fatalf("identity %+v", id)
				}
			default:
				var den *engine.Denial
				if !errors.As(err, &den) {
					t.Fatalf("got %v, %v; want denial %s", id, err, tt.reason)
				}
				if den.Reason != tt.reason || den.Status != tt.status || den.Header.Get("Www-Authenticate") != tt.challenge {
					t.Fatalf("denial %d %s %q; want %d %s %q", den.Status, den.Reason,
						den.Header.Get("Www-Authenticate"), tt.status, tt.reason, tt.challenge)
				}
			}
		})
	}
}

// TestIdentityShared checks that a key's identity is built once and reused.
func TestIdentityShared(t *testing.T) {
	f := newFixture(t, Options{})
	r := request(http.Header{"X-Api-Key": {f.keys["good"].Key}}, "", "")
	a, err1 := f.a.Authenticate(context.Background(), r)
	b, err2 := f.a.Authenticate(context.Background(), r)
	if err1 != nil || err2 != nil || a != b {
		t.Fatalf("identities %p %p, errors %v %v", a, b, err1, err2)
	}
}

// TestKeyNeverEchoed attacks every denial path with real keys and checks that no part
// of the secret reaches anything a client or log sees.
func TestKeyNeverEchoed(t *testing.T) {
	f := newFixture(t, Options{Sources: []Source{{Bearer: true}, {Header: "X-API-Key"}, {Query: "k"}}})
	for name, g := range f.keys {
		secret := g.Key[len(Prefix)+IDLen+1:]
		variants := []string{g.Key, g.Key[:KeyLen-1], g.Key + "x", strings.ToUpper(g.Key),
			g.Key[:len(Prefix)] + "zzzzzzzz" + g.Key[len(Prefix)+IDLen:]}
		for _, v := range variants {
			reqs := []*engine.Request{
				request(http.Header{"Authorization": {"Bearer " + v}}, "", "192.0.2.9"),
				request(http.Header{"Authorization": {"Bearer " + v, "Bearer " + v}}, "", "192.0.2.9"),
				request(http.Header{"X-Api-Key": {v}}, "", "192.0.2.9"),
				request(nil, "k="+v+"&k="+v, "192.0.2.9"),
			}
			for _, r := range reqs {
				_, err := f.a.Authenticate(context.Background(), r)
				var den *engine.Denial
				if !errors.As(err, &den) {
					continue // the valid key itself
				}
				seen := []string{err.Error(), den.Reason, den.Message}
				for _, vs := range den.Header {
					seen = append(seen, vs...)
				}
				for _, s := range seen {
					if strings.Contains(strings.ToLower(s), strings.ToLower(secret[:16])) {
						t.Fatalf("%s: denial leaks the key: %q", name, s)
					}
				}
			}
		}
	}
}

func TestNewRejects(t *testing.T) {
	g, err := Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	h, _ := ParseHash(g.Hash)
	ok := Key{ID: g.ID, Subject: "s", Hash: h}
	with := func(mod func(*Key)) []Key { k := ok; mod(&k); return []Key{k} }
	tests := []struct {
		name    string
		keys    []Key
		sources []Source
		want    string
	}{
		{"duplicate id", []Key{ok, ok}, nil, "duplicate id"},
		{"empty subject", with(func(k *Key) { k.Subject = "" }), nil, "subject is required"},
		{"control in subject", with(func(k *Key) { k.Subject = "a\r\nb" }), nil, "control"},
		{"short id", with(func(k *Key) { k.ID = "k7f" }), nil, "id must be"},
		{"long id", with(func(k *Key) { k.ID = strings.Repeat("a", 33) }), nil, "id must be"},
		{"uppercase id", with(func(k *Key) { k.ID = "ABCDEFGH" }), nil, "id must be"},
		{"no hash", with(func(k *Key) { k.Hash = [64]byte{} }), nil, "hash is required"},
		{"bad scope", with(func(k *Key) { k.Scopes = []string{"a b"} }), nil, "invalid scope"},
		{"host bits", with(func(k *Key) { k.AllowedIPs = []netip.Prefix{netip.MustParsePrefix("10.0.0.1/8")} }), nil, "host bits"},
		{"zero prefix", with(func(k *Key) { k.AllowedIPs = []netip.Prefix{{}} }), nil, "invalid allowed IP"},
		{"empty source", []Key{ok}, []Source{{}}, "exactly one"},
		{"two fields", []Key{ok}, []Source{{Bearer: true, Header: "X"}}, "exactly one"},
		{"bad header", []Key{ok}, []Source{{Header: "X Key"}}, "invalid header"},
		{"authorization header", []Key{ok}, []Source{{Header: "authorization"}}, "use bearer"},
		{"duplicate source", []Key{ok}, []Source{{Header: "x-api-key"}, {Header: "X-API-Key"}}, "duplicate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := New(tt.keys, Options{Sources: tt.sources})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New = %v, %v; want error containing %q", a, err, tt.want)
			}
		})
	}
}

func TestSourceNames(t *testing.T) {
	a, err := New(nil, Options{Sources: []Source{{Query: "api_key"}, {Bearer: true}, {Header: "x-my-key"}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(a.CredentialHeaders(), ","); got != "authorization,x-my-key" {
		t.Errorf("CredentialHeaders = %s", got)
	}
	if got := strings.Join(a.QueryParams(), ","); got != "api_key" {
		t.Errorf("QueryParams = %s", got)
	}
	d, err := New(nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(d.CredentialHeaders(), ","); got != "authorization,x-api-key" || len(d.QueryParams()) != 0 {
		t.Errorf("defaults: headers %s, params %v", got, d.QueryParams())
	}
}

func TestAuthenticateAllocs(t *testing.T) {
	f := newFixture(t, Options{})
	for _, h := range []http.Header{
		{"Authorization": {"Bearer " + f.keys["good"].Key}},
		{"X-Api-Key": {f.keys["good"].Key}},
		{"X-Api-Key": {f.keys["rotated"].Key[:20]}}, // denials are shared too
	} {
		r := request(h, "", "10.0.0.1")
		n := testing.AllocsPerRun(100, func() { _, _ = f.a.Authenticate(context.Background(), r) })
		if n != 0 {
			t.Errorf("%v: %v allocations per Authenticate, want 0", h, n)
		}
	}
}

func BenchmarkAuthenticate(b *testing.B) {
	f := newFixture(b, Options{})
	r := request(http.Header{"Authorization": {"Bearer " + f.keys["good"].Key}}, "", "10.0.0.1")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.a.Authenticate(ctx, r); err != nil {
			b.Fatal(err)
		}
	}
}

// Keys whose id has the shortest and longest accepted length verify (the hash input is
// the whole key, whatever its length) and a wrong secret still fails.
func TestIDLengthBounds(t *testing.T) {
	secret := strings.Repeat("b", SecretLen)
	for _, id := range []string{"abcd", strings.Repeat("x", MaxIDLen), "k7f3a9c2z1y2"} {
		key := Prefix + id + "_" + secret
		h, err := ParseHash(HashKey(key))
		if err != nil {
			t.Fatal(err)
		}
		a, err := New([]Key{{ID: id, Subject: "s", Hash: h}}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			key string
			ok  bool
		}{{key, true}, {Prefix + id + "_" + strings.Repeat("c", SecretLen), false}} {
			r := &engine.Request{Header: http.Header{"X-Api-Key": {tc.key}}}
			_, err := a.Authenticate(context.Background(), r)
			if (err == nil) != tc.ok {
				t.Errorf("id %q (len %d) key ok=%v: err %v", id, len(id), tc.ok, err)
			}
		}
	}
}
