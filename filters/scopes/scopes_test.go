package scopes

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/portcullis/portcullis/pkg/engine"
)

func TestCheck(t *testing.T) {
	jwt := func(s ...string) *engine.Identity {
		return &engine.Identity{Subject: "u", Method: engine.AuthJWT, Scopes: s}
	}
	key := func(s ...string) *engine.Identity {
		return &engine.Identity{Subject: "k", Method: engine.AuthAPIKey, Scopes: s}
	}
	anon := &engine.Identity{Method: engine.AuthAnonymous}
	tests := []struct {
		name      string
		opts      Options
		id        *engine.Identity
		deny      bool
		challenge string
	}{
		{"all present", Options{All: []string{"a", "b"}}, jwt("b", "x", "a"), false, ""},
		{"all one missing", Options{All: []string{"a", "b"}}, jwt("a"), true, `Bearer error="insufficient_scope", scope="a b"`},
		{"all none", Options{All: []string{"a"}}, jwt(), true, `Bearer error="insufficient_scope", scope="a"`},
		{"any one present", Options{Any: []string{"a", "b"}}, key("b"), false, ""},
		{"any none present", Options{Any: []string{"a", "b"}}, key("c"), true, ""},
		{"all and any pass", Options{All: []string{"r"}, Any: []string{"a", "b"}}, jwt("r", "b"), false, ""},
		{"all ok any missing", Options{All: []string{"r"}, Any: []string{"a", "b"}}, jwt("r"), true, `Bearer error="insufficient_scope", scope="r a b"`},
		{"any ok all missing", Options{All: []string{"r"}, Any: []string{"a", "b"}}, jwt("a"), true, `Bearer error="insufficient_scope", scope="r a b"`},
		{"case sensitive", Options{All: []string{"Admin"}}, key("admin"), true, ""},
		{"no prefix match", Options{All: []string{"invoices:read"}}, key("invoices:read:own", "invoices"), true, ""},
		{"space-joined scope is not two", Options{All: []string{"a"}}, key("a b"), true, ""},
		{"anonymous denied", Options{Any: []string{"a"}}, anon, true, ""},
		{"nil identity denied", Options{Any: []string{"a"}}, nil, true, ""},
		{"duplicates ignored", Options{All: []string{"a", "a"}}, jwt(), true, `Bearer error="insufficient_scope", scope="a"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := New(tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			err = f.Check(context.Background(), &engine.Request{}, &engine.Decision{Identity: tt.id})
			if !tt.deny {
				if err != nil {
					t.Fatalf("Check = %v, want pass", err)
				}
				return
			}
			var d *engine.Denial
			if !errors.As(err, &d) {
				t.Fatalf("Check = %v, want denial", err)
			}
			if d.Status != 403 || d.Reason != ReasonInsufficient || d.Header.Get("Www-Authenticate") != tt.challenge {
				t.Fatalf("denial %d %s %q, want 403 %s %q", d.Status, d.Reason, d.Header.Get("Www-Authenticate"),
					ReasonInsufficient, tt.challenge)
			}
		})
	}
}

func TestNewRejects(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"empty", Options{}, "any or all is required"},
		{"empty scope", Options{All: []string{""}}, "invalid scope"},
		{"space", Options{Any: []string{"a b"}}, "invalid scope"},
		{"quote breaks challenge", Options{All: []string{`a"`}}, "invalid scope"},
		{"backslash", Options{All: []string{`a\`}}, "invalid scope"},
		{"non-ascii", Options{All: []string{"é"}}, "invalid scope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.opts); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestCheckAllocs(t *testing.T) {
	f, err := New(Options{All: []string{"a"}, Any: []string{"x", "y"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []*engine.Identity{
		{Method: engine.AuthJWT, Scopes: []string{"a", "y"}},
		{Method: engine.AuthJWT, Scopes: []string{"a"}},
	} {
		d := &engine.Decision{Identity: id}
		if n := testing.AllocsPerRun(100, func() { _ = f.Check(context.Background(), nil, d) }); n != 0 {
			t.Errorf("%v: %v allocations per Check, want 0", id.Scopes, n)
		}
	}
}
