package engine_test

import (
	"errors"
	"testing"

	"github.com/portcullis/portcullis/pkg/engine"
)

func TestCleanPath(t *testing.T) {
	tests := []struct {
		in, dec, enc string
		err          error
	}{
		{"/", "/", "/", nil},
		{"/api/v1/items", "/api/v1/items", "/api/v1/items", nil},
		{"/public/../admin", "/admin", "/admin", nil},
		{"/public/%2e%2e/admin", "/admin", "/admin", nil},
		{"/public/%2E%2e/admin", "/admin", "/admin", nil},
		{"//admin", "/admin", "/admin", nil},
		{"/a//b///c", "/a/b/c", "/a/b/c", nil},
		{"/./a/./b/.", "/a/b/", "/a/b/", nil},
		{"/../../etc/passwd", "/etc/passwd", "/etc/passwd", nil},
		{"/a/b/..", "/a/", "/a/", nil},
		{"/%7Euser/%41", "/~user/A", "/~user/A", nil},
		{"/caf%c3%a9", "/café", "/caf%C3%A9", nil},
		{"/a%20b", "/a b", "/a%20b", nil},
		{"/admin;x=1", "", "", engine.ErrPathForbiddenByte},
		{"/admin%3bx=1", "", "", engine.ErrPathForbiddenByte},
		{"/admin%00.png", "", "", engine.ErrPathForbiddenByte},
		{"/a%2fb", "", "", engine.ErrPathForbiddenByte},
		{"/a%5Cb", "", "", engine.ErrPathForbiddenByte},
		{"/a\\b", "", "", engine.ErrPathForbiddenByte},
		{"/a\x00b", "", "", engine.ErrPathForbiddenByte},
		{"/a%zz", "", "", engine.ErrPathBadEncoding},
		{"/a%4", "", "", engine.ErrPathBadEncoding},
		{"/a%", "", "", engine.ErrPathBadEncoding},
		{"admin", "", "", engine.ErrPathNotAbsolute},
		{"", "", "", engine.ErrPathNotAbsolute},
		{"*", "", "", engine.ErrPathNotAbsolute},
	}
	for _, tc := range tests {
		dec, enc, err := engine.CleanPath(tc.in)
		if !errors.Is(err, tc.err) || dec != tc.dec || enc != tc.enc {
			t.Errorf("CleanPath(%q) = %q, %q, %v; want %q, %q, %v", tc.in, dec, enc, err, tc.dec, tc.enc, tc.err)
		}
	}
}

func FuzzCleanPath(f *testing.F) {
	for _, s := range []string{"/", "/a/../b", "/%2e%2e/x", "//a", "/a%2Fb", "/caf%C3%A9", "/a/./b/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		dec, enc, err := engine.CleanPath(in)
		if err != nil {
			return
		}
		// Idempotent: the forwarded path cleans to itself, so the upstream and the
		// policy agree on the resource.
		dec2, enc2, err := engine.CleanPath(enc)
		if err != nil || dec2 != dec || enc2 != enc {
			t.Fatalf("not idempotent: %q -> %q -> %q (%v)", in, enc, enc2, err)
		}
		if len(dec) == 0 || dec[0] != '/' {
			t.Fatalf("decoded path %q not absolute", dec)
		}
	})
}
