package httpsig

import (
	"errors"
	"fmt"
	"strings"
)

var errBadEscape = errors.New("invalid percent-encoding")

// formDecode decodes application/x-www-form-urlencoded text ('+' is a space). It
// allocates only when s contains an escape.
func formDecode(s string) (string, error) {
	if strings.IndexByte(s, '%') < 0 && strings.IndexByte(s, '+') < 0 {
		return s, nil
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c, n, err := formByte(s, i)
		if err != nil {
			return "", err
		}
		b = append(b, c)
		i += n
	}
	return string(b), nil
}

// formByte decodes the byte at s[i] and returns it with the number of extra bytes the
// escape consumed.
func formByte(s string, i int) (byte, int, error) {
	switch s[i] {
	case '+':
		return ' ', 0, nil
	case '%':
		if i+2 >= len(s) {
			return 0, 0, errBadEscape
		}
		hi, ok1 := unhex(s[i+1])
		lo, ok2 := unhex(s[i+2])
		if !ok1 || !ok2 {
			return 0, 0, errBadEscape
		}
		return hi<<4 | lo, 2, nil
	}
	return s[i], 0, nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// appendFormReencoded decodes raw (form-urlencoded) and appends it re-encoded with
// the application/x-www-form-urlencoded percent-encode set, spaces as %20
// (RFC 9421 Section 2.2.8).
func appendFormReencoded(b []byte, raw string) ([]byte, error) {
	const hexdigits = "0123456789ABCDEF"
	for i := 0; i < len(raw); i++ {
		c, n, err := formByte(raw, i)
		if err != nil {
			return b, err
		}
		i += n
		if isFormSafe(c) {
			b = append(b, c)
		} else {
			b = append(b, '%', hexdigits[c>>4], hexdigits[c&15])
		}
	}
	return b, nil
}

func isFormSafe(c byte) bool {
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		c == '*' || c == '-' || c == '.' || c == '_'
}

// formNameEqual reports whether the form-encoded raw decodes to name.
func formNameEqual(raw, name string) (bool, error) {
	j := 0
	for i := 0; i < len(raw); i++ {
		c, n, err := formByte(raw, i)
		if err != nil {
			return false, err
		}
		i += n
		if j >= len(name) || name[j] != c {
			return false, validateRest(raw, i+1)
		}
		j++
	}
	return j == len(name), nil
}

// validateRest checks the escapes of raw[i:] so a malformed name never compares as
// merely different.
func validateRest(raw string, i int) error {
	for ; i < len(raw); i++ {
		_, n, err := formByte(raw, i)
		if err != nil {
			return err
		}
		i += n
	}
	return nil
}

// appendQueryParam appends the re-encoded value of the one query parameter called
// name. A missing parameter is ErrMissingComponent; a repeated one is ErrMalformed,
// since RFC 9421 forbids signing an ambiguous parameter.
func appendQueryParam(b []byte, rawQuery, name string) ([]byte, error) {
	var value string
	found := 0
	for rest := rawQuery; rest != ""; {
		var pair string
		pair, rest, _ = strings.Cut(rest, "&")
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		eq, err := formNameEqual(k, name)
		if err != nil {
			return b, fmt.Errorf("%w: query: %v", ErrMalformed, err)
		}
		if eq {
			found++
			value = v
		}
	}
	switch found {
	case 0:
		return b, fmt.Errorf("%w: query parameter %q absent", ErrMissingComponent, name)
	case 1:
		out, err := appendFormReencoded(b, value)
		if err != nil {
			return b, fmt.Errorf("%w: query parameter %q: %v", ErrMalformed, name, err)
		}
		return out, nil
	}
	return b, fmt.Errorf("%w: query parameter %q repeated", ErrMalformed, name)
}
