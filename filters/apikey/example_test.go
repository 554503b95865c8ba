package apikey_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/portcullis/portcullis/filters/apikey"
	"github.com/portcullis/portcullis/pkg/engine"
)

func Example() {
	// `portcullis keys new` does this: the key goes to its owner once, ID and Hash to
	// the configuration.
	g, err := apikey.Generate(nil)
	if err != nil {
		panic(err)
	}
	hash, err := apikey.ParseHash(g.Hash)
	if err != nil {
		panic(err)
	}
	a, err := apikey.New([]apikey.Key{{
		ID: g.ID, Subject: "billing", Hash: hash, Scopes: []string{"invoices:read"},
	}}, apikey.Options{})
	if err != nil {
		panic(err)
	}

	r := &engine.Request{Header: http.Header{"Authorization": {"Bearer " + g.Key}}}
	id, err := a.Authenticate(context.Background(), r)
	fmt.Println(id.Subject, id.Method, id.ScopesHeader, err)

	r.Header.Set("Authorization", "Bearer "+g.Key[:len(g.Key)-1]+"1") // 1 is not base32
	_, err = a.Authenticate(context.Background(), r)
	fmt.Println(err)

	fmt.Println(strings.Join(a.CredentialHeaders(), " "))
	// Output:
	// billing apikey invoices:read <nil>
	// denied 401 apikey.malformed
	// authorization x-api-key
}
