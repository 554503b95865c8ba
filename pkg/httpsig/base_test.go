package httpsig

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/portcullis/portcullis/pkg/httpsig/sfv"
)

// rfcRequest is the request of RFC 9421 Section 2.2 plus the fields of Section 2.1.
func rfcRequest() *Message {
	h := http.Header{}
	h.Set("Date", "Tue, 20 Apr 2021 02:07:56 GMT")
	h.Set("X-Ows-Header", "   Leading and trailing whitespace.   ")
	h["Cache-Control"] = []string{"max-age=60", "   must-revalidate"}
	h.Set("Example-Dict", " a=1,    b=2;x=1;y=2,   c=(a   b   c)")
	h.Set("X-Empty-Header", "")
	h["Example-Header"] = []string{"value, with, lots", "of, commas"}
	return &Message{
		Method: "POST", Scheme: "https", Authority: "www.Example.com:443",
		RawPath: "/path", RawQuery: "param=value&foo=bar&baz=bat%2Dman", Header: h,
	}
}

func componentValue(t *testing.T, m *Message, id string) (string, error) {
	t.Helper()
	c, err := ParseComponent(id)
	if err != nil {
		return "", err
	}
	types := map[string]sfv.Type{"example-dict": sfv.TypeDictionary}
	b, err := appendComponentValue(nil, m, &c, types)
	return string(b), err
}

func TestComponentValues(t *testing.T) {
	resp := &Message{Status: 200, Header: http.Header{"Content-Type": {"text/plain"}}, Request: rfcRequest()}
	q := rfcRequest()
	q.RawQuery = "var=this%20is%20a%20big%0Avalue&bar=with+plus+whitespace&fa%C3%A7ade%22%3A%20=something"
	tests := []struct {
		m    *Message
		id   string
		want string
		err  error
	}{
		{rfcRequest(), "@method", "POST", nil},
		{rfcRequest(), "@target-uri", "https://www.example.com/path?param=value&foo=bar&baz=bat%2Dman", nil},
		{rfcRequest(), "@authority", "www.example.com", nil},
		{rfcRequest(), "@scheme", "https", nil},
		{rfcRequest(), "@request-target", "/path?param=value&foo=bar&baz=bat%2Dman", nil},
		{rfcRequest(), "@path", "/path", nil},
		{rfcRequest(), "@query", "?param=value&foo=bar&baz=bat%2Dman", nil},
		{&Message{Method: "GET"}, "@query", "?", nil},
		{&Message{Method: "GET"}, "@path", "/", nil},
		{rfcRequest(), `"@query-param";name="baz"`, "bat-man", nil},
		{q, `@query-param;name=var`, "this%20is%20a%20big%0Avalue", nil},
		{q, `@query-param;name=bar`, "with%20plus%20whitespace", nil},
		{q, `"@query-param";name="fa%C3%A7ade%22%3A%20"`, "something", nil},
		{q, `@query-param;name=nope`, "", ErrMissingComponent},
		{&Message{RawQuery: "a=1&a=2"}, `@query-param;name=a`, "", ErrMalformed},
		{&Message{RawQuery: "a%ZZ=1"}, `@query-param;name=a`, "", ErrMalformed},
		{rfcRequest(), "x-ows-header", "Leading and trailing whitespace.", nil},
		{rfcRequest(), "cache-control", "max-age=60, must-revalidate", nil},
		{rfcRequest(), "example-dict", "a=1,    b=2;x=1;y=2,   c=(a   b   c)", nil},
		{rfcRequest(), `"example-dict";sf`, "a=1, b=2;x=1;y=2, c=(a b c)", nil},
		{rfcRequest(), `"example-dict";key="a"`, "1", nil},
		{rfcRequest(), `example-dict;key=b`, "2;x=1;y=2", nil},
		{rfcRequest(), `"example-dict";key="c"`, "(a b c)", nil},
		{rfcRequest(), `"example-dict";key="zz"`, "", ErrMissingComponent},
		{rfcRequest(), "x-empty-header", "", nil},
		{rfcRequest(), `"example-header";bs`, ":dmFsdWUsIHdpdGgsIGxvdHM=:, :b2YsIGNvbW1hcw==:", nil},
		{rfcRequest(), "x-absent", "", ErrMissingComponent},
		{rfcRequest(), `"cache-control";sf`, "", ErrMalformed}, // structured type unknown
		{rfcRequest(), "@status", "", ErrMissingComponent},
		{rfcRequest(), `"@method";req`, "", ErrMalformed},
		{resp, "@status", "200", nil},
		{resp, "content-type", "text/plain", nil},
		{resp, `"@authority";req`, "www.example.com", nil},
		{resp, `"@method";req`, "POST", nil},
		{resp, "@method", "", ErrMissingComponent},
		{&Message{Status: 200}, `"@method";req`, "", ErrMissingComponent},
		{&Message{Method: "GET", Header: http.Header{"X-Inject": {"a\n\"@method\": POST"}}}, "x-inject", "", ErrMalformed},
		{&Message{Method: "GET\n"}, "@method", "", ErrMalformed},
		{&Message{Scheme: "HTTP", Authority: "A.example:80"}, "@target-uri", "http://a.example/", nil},
	}
	for _, tt := range tests {
		got, err := componentValue(t, tt.m, tt.id)
		if tt.err != nil {
			if !errors.Is(err, tt.err) {
				t.Errorf("%s: error %v, want %v", tt.id, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%s = %q, %v; want %q", tt.id, got, err, tt.want)
		}
	}
}

func TestParseComponent(t *testing.T) {
	valid := map[string]string{
		"@method":                         `"@method"`,
		`"content-digest"`:                `"content-digest"`,
		"example-dict;key=a":              `"example-dict";key="a"`,
		`"example-dict";sf`:               `"example-dict";sf`,
		"@query-param;name=Pet":           `"@query-param";name="Pet"`,
		`"x";req;bs`:                      `"x";req;bs`,
		`"@authority";req`:                `"@authority";req`,
		` "@path" `:                       `"@path"`,
		`"x-custom_header.v1"`:            `"x-custom_header.v1"`,
		`"@query-param";name="a%20b";req`: `"@query-param";name="a%20b";req`,
	}
	for in, want := range valid {
		c, err := ParseComponent(in)
		if err != nil {
			t.Errorf("ParseComponent(%q): %v", in, err)
			continue
		}
		if got := c.String(); got != want {
			t.Errorf("ParseComponent(%q).String() = %s, want %s", in, got, want)
		}
	}
	invalid := []string{
		"", `""`, "@unknown", "@signature-params", "Content-Type", `"x";sf=?0`, `"x";bs;sf`,
		`"x";bs;key="a"`, `"@method";sf`, `"@path";key="a"`, "@query-param", `"x";name="a"`,
		`"x";tr`, `"x";key=1`, `"a b"`, "x;foo", `"x"junk`, `"x";key="a";unknown`, `:AA==:`,
	}
	for _, in := range invalid {
		if _, err := ParseComponent(in); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseComponent(%q) error = %v, want ErrMalformed", in, err)
		}
	}
}

func TestSignatureBaseRejectsDuplicates(t *testing.T) {
	a, _ := ParseComponent("@method")
	b, _ := ParseComponent(`"@method"`)
	_, err := SignatureBase(rfcRequest(), []Component{a, b}, nil, nil)
	if !errors.Is(err, ErrMalformed) {
		t.Fatalf("duplicate component: %v", err)
	}
	comps := make([]Component, maxComponents+1)
	if _, err := SignatureBase(rfcRequest(), comps, nil, nil); !errors.Is(err, ErrMalformed) {
		t.Fatalf("too many components: %v", err)
	}
}

// FuzzSignatureBase builds signature bases from fuzzed Signature-Input values and
// message parts: it must never panic, and a base never contains a line that the
// input did not cover.
func FuzzSignatureBase(f *testing.F) {
	f.Add(`sig=("@method" "@target-uri" "x" "@query-param";name="a" "d";key="k" "d";sf "x";bs);created=1`, "GET", "/p", "a=1&b=2", "k=1, j=(a b)")
	f.Add(`sig=("@status" "x";req "@path";req)`, "POST", "", "", "")
	f.Add(`sig=("x" "x")`, "GET", "/%zz", "a=%", "\n")
	f.Fuzz(func(t *testing.T, input, method, path, query, hv string) {
		sigs, err := ParseSignatureFields(input, "sig=:AA==:")
		if err != nil || len(sigs) == 0 {
			return
		}
		m := &Message{Method: method, Scheme: "https", Authority: "h", RawPath: path, RawQuery: query,
			Header: http.Header{"X": {hv, hv}, "D": {hv}}}
		types := map[string]sfv.Type{"d": sfv.TypeDictionary}
		base, err := sigs[0].Base(m, types)
		if err != nil {
			return
		}
		lines := strings.Split(string(base), "\n")
		if len(lines) != len(sigs[0].Components)+1 {
			t.Fatalf("base has %d lines for %d components: %q", len(lines), len(sigs[0].Components), base)
		}
	})
}
