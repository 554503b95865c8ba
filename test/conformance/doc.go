// Package conformance runs the project's implementations against public test vectors
// kept in the shared conformance folder (../shared/conformance from the repository
// root): Wycheproof JOSE cases and the RFC 7515, 7520 and 8037 JWS examples. The data
// is read-only; known errata in it are listed explicitly by the tests that use it.
package conformance
