package ratelimit

import (
	"fmt"
	"net/netip"
	"sync"

	"github.com/portcullis/portcullis/pkg/engine"
)

// KeyPart names one component of a limit's key.
type KeyPart uint8

// The key parts. A limit keyed by several parts counts each combination separately.
const (
	KeyIP      KeyPart = iota + 1 // client address (engine.Request.Peer.IP)
	KeyIPNet                      // client network: the /24 of an IPv4, the /64 of an IPv6
	KeySubject                    // authenticated subject ("" when anonymous)
	KeyAPIKey                     // API key id (engine.Identity.KeyID)
	KeyHeader                     // the value of LimitOptions.Header (first value, hashed)
	KeyRoute                      // the matched route's name
	KeyMethod                     // the request method
	KeyPath                       // the normalized path (hashed)
)

var keyPartNames = [...]string{"", "ip", "ip_net", "subject", "api_key", "header", "route", "method", "path"}

func (k KeyPart) String() string {
	if int(k) < len(keyPartNames) && k > 0 {
		return keyPartNames[k]
	}
	return fmt.Sprintf("keypart(%d)", uint8(k))
}

// ParseKeyPart parses a key part name: ip, ip_net, subject, api_key, header, route,
// method or path.
func ParseKeyPart(s string) (KeyPart, error) {
	for i := 1; i < len(keyPartNames); i++ {
		if keyPartNames[i] == s {
			return KeyPart(i), nil
		}
	}
	return 0, fmt.Errorf("unknown rate limit key %q (want ip, ip_net, subject, api_key, header, route, method or path)", s)
}

// needsIdentity reports whether the part reads the identity (limit phase only).
func (k KeyPart) needsIdentity() bool { return k == KeySubject || k == KeyAPIKey }

// maxRaw is the longest value kept verbatim in a key; longer values are hashed, so a
// key's size is bounded whatever a client sends.
const maxRaw = 64

// keyBuf is a pooled buffer for building keys without allocating.
type keyBuf struct{ b []byte }

var keyBufs = sync.Pool{New: func() any { return &keyBuf{b: make([]byte, 0, 256)} }}

// appendKey appends the key of limit l for r: "name:" then each part as a tag byte, a
// length byte and the value, or a tag with the high bit set and an 8-byte FNV-1a hash
// for hashed values. The encoding is unambiguous, so different values never share a
// key except by a hash collision.
func (l *limit) appendKey(b []byte, r *engine.Request, d *engine.Decision) []byte {
	b = append(b, l.name...)
	b = append(b, ':')
	for _, p := range l.parts {
		switch p {
		case KeyIP:
			b = appendAddr(b, byte(p), r.Peer.IP, 128)
		case KeyIPNet:
			b = appendAddr(b, byte(p), r.Peer.IP, 64)
		case KeySubject:
			if d.Identity != nil {
				b = appendValue(b, byte(p), d.Identity.Subject, false)
			} else {
				b = appendValue(b, byte(p), "", false)
			}
		case KeyAPIKey:
			if d.Identity != nil {
				b = appendValue(b, byte(p), d.Identity.KeyID, false)
			} else {
				b = appendValue(b, byte(p), "", false)
			}
		case KeyHeader:
			b = appendValue(b, byte(p), r.Header.Get(l.header), true)
		case KeyRoute:
			b = appendValue(b, byte(p), d.Route, false)
		case KeyMethod:
			b = appendValue(b, byte(p), r.Method, false)
		case KeyPath:
			b = appendValue(b, byte(p), r.Path, true)
		}
	}
	return b
}

// appendAddr appends a (unmapped) truncated to /24 (IPv4) or v6bits (IPv6): 4 or 16
// raw bytes. An invalid address is encoded as an empty value.
func appendAddr(b []byte, tag byte, a netip.Addr, v6bits int) []byte {
	a = a.Unmap()
	switch {
	case a.Is4():
		if v6bits < 128 {
			a = netip.PrefixFrom(a, 24).Masked().Addr()
		}
		v := a.As4()
		return append(append(b, tag, 4), v[:]...)
	case a.Is6():
		if v6bits < 128 {
			a = netip.PrefixFrom(a.WithZone(""), v6bits).Masked().Addr()
		}
		v := a.As16()
		return append(append(b, tag, 16), v[:]...)
	}
	return append(b, tag, 0)
}

// appendValue appends s verbatim, or its hash when hash is set or s is long.
func appendValue(b []byte, tag byte, s string, hash bool) []byte {
	if !hash && len(s) <= maxRaw {
		return append(append(b, tag, byte(len(s))), s...)
	}
	h := fnv1a(s)
	return append(b, tag|0x80, byte(h>>56), byte(h>>48), byte(h>>40), byte(h>>32),
		byte(h>>24), byte(h>>16), byte(h>>8), byte(h))
}

// fnv1a is the 64-bit FNV-1a hash. It is stable across replicas (unlike maphash),
// which a shared store needs. It is not collision resistant, and need not be: to make
// a value share another client's bucket an attacker must know that value's hash, i.e.
// the value, which it could send as is.
func fnv1a(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}
