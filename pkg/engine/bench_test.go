package engine_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/portcullis/portcullis/pkg/engine"
	"github.com/portcullis/portcullis/pkg/engine/enginetest"
)

func benchTable(b testing.TB) *engine.RouteTable {
	p := authPipeline(nil)
	var routes []*engine.Route
	for _, prefix := range []string{"/a/", "/b/", "/c/", "/d/", "/e/", "/f/", "/g/", "/api/"} {
		routes = append(routes, &engine.Route{Name: prefix, Match: engine.Match{PathPrefix: prefix,
			Methods: []string{"GET", "POST"}}, Pipeline: p})
	}
	return newTable(b, engine.TableOptions{}, routes...)
}

func BenchmarkRouteLookup(b *testing.B) {
	tab := benchTable(b)
	r := enginetest.NewRequest("GET", "/api/items")
	b.ReportAllocs()
	for b.Loop() {
		if tab.Lookup(r) == nil {
			b.Fatal("no route")
		}
	}
}

func TestRouteLookupDoesNotAllocate(t *testing.T) {
	tab := benchTable(t)
	r := enginetest.NewRequest("GET", "/api/items")
	if n := testing.AllocsPerRun(100, func() { tab.Lookup(r) }); n != 0 {
		t.Fatalf("route lookup allocates %v times", n)
	}
}

func BenchmarkDecide(b *testing.B) {
	e := engine.New(benchTable(b))
	ctx := context.Background()
	h := http.Header{"Authorization": {"Bearer good"}, "Accept": {"*/*"}}
	b.ReportAllocs()
	for b.Loop() {
		r := engine.Request{Method: "GET", Path: "/api/items", Header: h}
		if d := e.Decide(ctx, &r); !d.Allow {
			b.Fatal(d.Reason)
		}
	}
}
