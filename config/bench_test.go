package config

import (
	"fmt"
	"strings"
	"testing"
)

// bigDocument returns a valid document with n routes, n policies and n keys.
func bigDocument(n int) []byte {
	var b strings.Builder
	b.WriteString("upstream: {url: http://127.0.0.1:8080}\nproviders:\n  apikeys:\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "    - {id: key%05d, subject: s%d, hash: %s, scopes: [a, b]}\n", i, i, testHash)
	}
	b.WriteString("policies:\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "  p%d:\n    inspect: [{ip: {deny: [192.0.2.0/24]}}]\n    authenticate: [{apikey: {keys: [key%05d]}}]\n    authorize: [{scopes: {any: [a]}}]\n", i, i)
	}
	b.WriteString("routes:\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "  - {name: r%d, policy: p%d, match: {hosts: [\"*.example.com\"], path: {prefix: /r%d/}, methods: [GET], headers: [{name: x-t, regex: \"^a+$\"}]}}\n", i, i, i)
	}
	return []byte(b.String())
}

func BenchmarkParse1000(b *testing.B) {
	data := bigDocument(1000)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Parse("big.yaml", data); err != nil {
			b.Fatal(err)
		}
	}
}

func TestBigDocument(t *testing.T) {
	doc, err := Parse("big.yaml", bigDocument(200))
	if err != nil {
		t.Fatal(err)
	}
	if len(doc.Routes) != 200 || len(doc.Policies) != 200 || len(doc.Providers.APIKeys) != 200 {
		t.Errorf("got %d routes, %d policies, %d keys", len(doc.Routes), len(doc.Policies), len(doc.Providers.APIKeys))
	}
}
