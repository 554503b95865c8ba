package scopes_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/portcullis/portcullis/filters/scopes"
	"github.com/portcullis/portcullis/pkg/engine"
)

func Example() {
	f, err := scopes.New(scopes.Options{All: []string{"invoices:read"}, Any: []string{"tenant:a", "admin"}})
	if err != nil {
		panic(err)
	}
	for _, id := range []*engine.Identity{
		{Subject: "alice", Method: engine.AuthJWT, Scopes: []string{"invoices:read", "tenant:a"}},
		{Subject: "bob", Method: engine.AuthJWT, Scopes: []string{"invoices:read"}},
	} {
		err := f.Check(context.Background(), &engine.Request{}, &engine.Decision{Identity: id})
		var d *engine.Denial
		if errors.As(err, &d) {
			fmt.Println(id.Subject, d.Status, d.Reason, d.Header.Get("WWW-Authenticate"))
			continue
		}
		fmt.Println(id.Subject, "allowed")
	}
	// Output:
	// alice allowed
	// bob 403 scopes.insufficient Bearer error="insufficient_scope", scope="invoices:read tenant:a admin"
}
