package engine_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/portcullis/portcullis/pkg/engine"
	"github.com/portcullis/portcullis/pkg/engine/enginetest"
)

func TestDecideWithoutBody(t *testing.T) {
	tests := []struct {
		name     string
		pipeline *engine.Pipeline
		auth     string // Authorization header, if any
		decided  bool
	}{
		{"no credential on a route that needs one", authPipeline(nil), "", true},
		{"another scheme is no credential either", authPipeline(nil), "Basic eDp5", true},
		{"a valid credential: the body decides", authPipeline(nil), "Bearer good", false},
		{"an invalid credential: Decide denies it with its own reason", authPipeline(nil), "Bearer bad", false},
		{"anonymous route", authPipeline(func(p *engine.Pipeline) { p.Anonymous = true }), "", false},
		{"no authenticator, not anonymous", &engine.Pipeline{Name: "closed"}, "", true},
		{"all credentials required, none sent", authPipeline(func(p *engine.Pipeline) {
			p.AuthMode = engine.AuthAll
			p.Authenticate = append(p.Authenticate, enginetest.Stage("token2", engine.PhaseAuthenticate, enginetest.TokenAuth{}))
		}), "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obs := &countingObserver{}
			tt.pipeline.Observers = []engine.Observer{obs}
			e := engine.New(newTable(t, engine.TableOptions{}, &engine.Route{Name: "r", Pipeline: tt.pipeline}))
			r := enginetest.NewRequest("POST", "/upload")
			if tt.auth != "" {
				r.Header.Set("Authorization", tt.auth)
			}
			d, ok := e.DecideWithoutBody(context.Background(), r)
			if ok != tt.decided {
				t.Fatalf("decided %v, want %v (%+v)", ok, tt.decided, d)
			}
			if !ok {
				if obs.n != 0 || d.Allow || d.Status != 0 {
					t.Fatalf("undecided, yet observed %d decisions or returned %+v", obs.n, d)
				}
				return
			}
			// The same denial Decide makes for the same request.
			full := e.Decide(context.Background(), r)
			if d.Allow || d.Status != http.StatusUnauthorized || d.Reason != full.Reason || d.Route != "r" ||
				d.Response.Get("Www-Authenticate") != full.Response.Get("Www-Authenticate") {
				t.Fatalf("head-only decision %+v, Decide's %+v", d, full)
			}
			if obs.n != 2 || obs.denies != 2 {
				t.Fatalf("observers saw %d decisions (%d denies), want the head-only one and Decide's", obs.n, obs.denies)
			}
		})
	}
}

func TestDecideWithoutBodyNotReady(t *testing.T) {
	e := engine.New(nil)
	if _, ok := e.DecideWithoutBody(context.Background(), enginetest.NewRequest("POST", "/")); ok {
		t.Fatal("an engine without a table decided")
	}
}
