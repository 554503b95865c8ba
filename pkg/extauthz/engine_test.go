package extauthz

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strconv"
	"testing"

	"github.com/portcullis/portcullis/pkg/engine"
	"github.com/portcullis/portcullis/pkg/engine/enginetest"
)

// alice is the identity of the token "alice-token".
var alice = &engine.Identity{
	Subject: "alice", Method: engine.AuthAPIKey, KeyID: "k1",
	Scopes: []string{"invoices:read", "invoices:write"},
}

// newTestEngine returns an engine with real stages:
//   - route "api" (prefix /api/): bearer token auth, credential hidden upstream, a
//     decorate stage setting a two-valued x-tag header;
//   - route "body" (prefix /body/): anonymous; a decorate stage reports what it saw of
//     the body in x-body-len, x-body-sha256, x-body-has and x-body-truncated;
//   - route "named" (exact /never): anonymous, reachable only by name;
//   - route "slow" (prefix /slow/): denies 429 with Retry-After.
func newTestEngine(t testing.TB) *engine.Engine {
	t.Helper()
	auth := enginetest.TokenAuth{"alice-token": alice}
	tags := engine.FilterFunc(func(_ context.Context, _ *engine.Request, d *engine.Decision) error {
		d.Upstream.SetHeader("x-tag", "one")
		d.Upstream.SetHeader("x-tag", "two")
		d.SetResponseHeader("X-Frame-Options", "DENY")
		return nil
	})
	bodyInfo := engine.FilterFunc(func(_ context.Context, r *engine.Request, d *engine.Decision) error {
		sum := sha256.Sum256(r.Body)
		d.Upstream.SetHeader("x-body-len", strconv.Itoa(len(r.Body)))
		d.Upstream.SetHeader("x-body-sha256", hex.EncodeToString(sum[:]))
		d.Upstream.SetHeader("x-body-has", strconv.FormatBool(r.HasBody))
		d.Upstream.SetHeader("x-body-truncated", strconv.FormatBool(r.BodyTruncated))
		return nil
	})
	limited := engine.FilterFunc(func(context.Context, *engine.Request, *engine.Decision) error {
		den := engine.Deny(http.StatusTooManyRequests, "ratelimit.over", "slow down")
		den.Header = http.Header{"Retry-After": {"7"}}
		return den
	})
	routes := []*engine.Route{
		{Name: "api", Match: engine.Match{PathPrefix: "/api/"}, Pipeline: &engine.Pipeline{
			Name:         "api",
			Authenticate: []engine.Stage{enginetest.Stage("token", engine.PhaseAuthenticate, auth)},
			Decorate:     []engine.Stage{enginetest.Stage("tags", engine.PhaseDecorate, tags)},
			Challenges:   []string{`Bearer realm="api"`, `ApiKey realm="api"`},
			HideHeaders:  []string{"authorization"},
			StripQuery:   []string{"api_key"},
		}},
		{Name: "body", Match: engine.Match{PathPrefix: "/body/"}, Pipeline: &engine.Pipeline{
			Name: "body", Anonymous: true, BodyLimit: 16 << 20,
			Decorate: []engine.Stage{enginetest.Stage("bodyinfo", engine.PhaseDecorate, bodyInfo)},
		}},
		{Name: "named", Match: engine.Match{PathExact: "/never"}, Pipeline: &engine.Pipeline{
			Name: "named", Anonymous: true,
		}},
		{Name: "slow", Match: engine.Match{PathPrefix: "/slow/"}, Pipeline: &engine.Pipeline{
			Name: "slow", Anonymous: true,
			Limit: []engine.Stage{enginetest.Stage("limit", engine.PhaseLimit, limited)},
		}},
	}
	tbl, err := engine.NewRouteTable(routes, engine.TableOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return engine.New(tbl)
}
