// Package apikey authenticates requests carrying a Portcullis API key.
//
// # Key format
//
// A key is "pk_<id>_<secret>": id is 8 characters of [a-z0-9] chosen at random, and
// secret is 56 characters of lowercase, unpadded base32 (a-z, 2-7) encoding 35 random
// bytes, i.e. 280 bits. The alphabet has no '_', '-', '+' or '/', so a key survives
// copy and paste, shell quoting, URLs and double-click selection whole. Parsing is
// strict: the prefix, both lengths and both alphabets must match exactly, or the
// credential is malformed.
//
// The id is not secret: it names the key in configuration, logs, metrics and the
// upstream key-id header. Only the secret part protects the key.
//
// # Why SHA-512 and not a password hash
//
// Configuration stores the key id and "sha512:<hex>", the SHA-512 digest of the whole
// key string, never the key. A slow password KDF (bcrypt, scrypt, argon2) exists to make
// guessing low-entropy human passwords expensive. An API key secret is 280 random bits:
// nobody can enumerate that space however fast the hash is, so a KDF adds no protection
// against brute force while costing milliseconds of CPU on every request, which would
// turn each request into a denial-of-service lever. SHA-512 is preimage resistant (a
// leaked configuration does not reveal any key), fast on 64-bit CPUs (well under a
// microsecond for a 68-byte key), and hashing the whole key string binds the id and the
// secret together, so a secret is only valid under the id it was issued with.
//
// # Verification
//
// Keys are looked up by id in a map built at construction; the digest of the presented
// key is compared with the stored one in constant time (crypto/subtle). An unknown id
// still hashes the key and compares against a dummy digest, so a guess costs the same
// CPU and takes the same path whether or not the id exists. Only after the digest
// matches are the key's disabled flag, expiry and IP allowlist consulted, so a client
// cannot learn a key's state without holding the key.
//
// The reason codes (apikey.malformed, apikey.unknown, apikey.invalid, apikey.expired,
// apikey.disabled, apikey.ip_not_allowed, apikey.ambiguous) are for logs and metrics.
// Messages are generic and never contain the presented credential.
//
// # Challenges
//
// A denial for a key presented as "Authorization: Bearer" carries
// `WWW-Authenticate: Bearer realm="portcullis", error="invalid_token"` (RFC 6750); a key
// from any other source carries the neutral `WWW-Authenticate: APIKey realm="portcullis"`,
// because there is no registered scheme for API keys in custom headers and a Bearer
// challenge would tell the client to use a header it did not use. A key that is valid
// but used from an address outside its allowlist is denied with 403 and no challenge:
// the credential is fine, the network location is not, and retrying with other
// credentials is not the remedy.
package apikey
