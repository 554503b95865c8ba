package jwt

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/pkg/engine"
)

// BenchmarkVerify compares, per algorithm and in one run:
//   - stdlib: the bare standard-library signature check of one token (SHA-256 of the
//     signing input and ecdsa.VerifyASN1 / rsa.VerifyPKCS1v15 / ed25519.Verify with a
//     pre-parsed key and pre-decoded signature): the floor;
//   - full: Authenticate on a token not in the cache (source extraction, hashing, cache
//     lookup, singleflight, strict parsing, key lookup, signature, claims, identity,
//     cache insertion);
//   - hit: Authenticate on a cached token;
//   - paired: stdlib and full alternated within each iteration, each timed, reporting
//     both and their ratio (full/stdlib). On a shared machine whose speed drifts between
//     sub-benchmarks, this ratio is the robust one: both sides see the same moments.
func BenchmarkVerify(b *testing.B) {
	for _, alg := range []Alg{ES256, RS256, EdDSA} {
		k := newKey(b, alg, "k1")
		const pool = 64
		reqs := make([]*engine.Request, pool)
		toks := make([]string, pool)
		for i := range reqs {
			toks[i] = k.token(b, claims(map[string]any{"jti": fmt.Sprint(i), "scope": "read write"}))
			reqs[i] = bearerRequest(toks[i])
		}
		b.Run(alg.String()+"/stdlib", func(b *testing.B) {
			verify := stdlibVerifier(b, k, toks[0])
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if !verify() {
					b.Fatal("bad signature")
				}
			}
		})
		b.Run(alg.String()+"/paired", func(b *testing.B) {
			verify := stdlibVerifier(b, k, toks[0])
			a := newAuth(b, jwks(b, k), func(o *Options) { o.CacheSize = 1 })
			ctx := context.Background()
			var std, full time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				ok := verify()
				t1 := time.Now()
				_, err := a.Authenticate(ctx, reqs[i%pool])
				std, full = std+t1.Sub(t0), full+time.Since(t1)
				if !ok || err != nil {
					b.Fatal("verification failed:", err)
				}
			}
			b.ReportMetric(float64(std)/float64(b.N), "stdlib-ns/op")
			b.ReportMetric(float64(full)/float64(b.N), "full-ns/op")
			b.ReportMetric(float64(full)/float64(std), "full/stdlib")
		})
		b.Run(alg.String()+"/full", func(b *testing.B) {
			a := newAuth(b, jwks(b, k), func(o *Options) { o.CacheSize = 1 })
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := a.Authenticate(ctx, reqs[i%pool]); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(alg.String()+"/hit", func(b *testing.B) {
			a := newAuth(b, jwks(b, k), nil)
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := a.Authenticate(ctx, reqs[0]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// stdlibVerifier returns the bare standard-library check of tok's signature.
func stdlibVerifier(b *testing.B, k *testKey, tok string) func() bool {
	dot := strings.LastIndexByte(tok, '.')
	input := []byte(tok[:dot])
	sig := must(b64.DecodeString(tok[dot+1:]))
	var verify func() bool
	switch p := k.priv.(type) {
	case *ecdsa.PrivateKey:
		der := asn1Signature(nil, sig[:32], sig[32:])
		verify = func() bool { h := sha256.Sum256(input); return ecdsa.VerifyASN1(&p.PublicKey, h[:], der) }
	case *rsa.PrivateKey:
		verify = func() bool {
			h := sha256.Sum256(input)
			return rsa.VerifyPKCS1v15(&p.PublicKey, crypto.SHA256, h[:], sig) == nil
		}
	case ed25519.PrivateKey:
		pub := p.Public().(ed25519.PublicKey)
		verify = func() bool { return ed25519.Verify(pub, input, sig) }
	default:
		b.Fatalf("no stdlib verifier for %T", k.priv)
	}
	return verify
}
