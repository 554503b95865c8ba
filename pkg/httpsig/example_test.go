package httpsig_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/portcullis/portcullis/pkg/httpsig"
)

// A client signs every request through Signer.Transport; the server verifies with a
// Verifier using the default policy (@method, @target-uri and the Content-Digest of
// the body covered, created at most five minutes old).
func ExampleSigner_Transport() {
	key, err := httpsig.NewHMACKey("client-1", []byte("a shared secret of 32 bytes ....."))
	if err != nil {
		panic(err)
	}
	verifier, err := httpsig.NewVerifier(httpsig.NewKeySet(key), httpsig.Policy{})
	if err != nil {
		panic(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		res, err := verifier.Verify(r.Context(), httpsig.MessageFromRequest(r, body))
		if err != nil {
			http.Error(w, "invalid signature", http.StatusUnauthorized)
			return
		}
		fmt.Fprintf(w, "hello %s", res.Key.ID())
	}))
	defer srv.Close()

	signer, err := httpsig.NewSigner(key, httpsig.SignerOptions{})
	if err != nil {
		panic(err)
	}
	client := &http.Client{Transport: signer.Transport(nil)}
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, srv.URL+"/orders", strings.NewReader(`{"qty":1}`))
	resp, err := client.Do(req)
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.StatusCode, string(out))
	// Output: 200 hello client-1
}
