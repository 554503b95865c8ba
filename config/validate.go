package config

import (
	"fmt"
	"net"
	"reflect"
	"sort"
	"strconv"
	"strings"
)

// Validatable is implemented by parts of the document that check themselves. Validate
// reports every problem through v, with paths at or below path. It is called after
// decoding, defaults and environment overrides, on every value of the document in
// turn (parents before children), so a part checks only its own fields and the
// cross-references it makes.
type Validatable interface {
	Validate(v *Validator, path string)
}

// Validator collects validation errors, placing each at the position of its path.
type Validator struct {
	doc  *Document
	errs Errors
}

// Document returns the document being validated (for cross-references).
func (v *Validator) Document() *Document { return v.doc }

// Errorf records a problem at path. It stays quiet when decoding already reported a
// problem at path, above it or below it.
func (v *Validator) Errorf(path, format string, args ...any) {
	if v.doc.decodeFailedNear(path) {
		return
	}
	v.errs = append(v.errs, v.doc.Errorf(path, format, args...))
}

// Has reports whether the key at path was written in the document (as opposed to
// left at its default).
func (v *Validator) Has(path string) bool {
	_, ok := v.doc.pos[path]
	return ok
}

// decodeFailedNear reports whether decoding failed at path, at one of its parents or
// below it.
func (doc *Document) decodeFailedNear(path string) bool {
	if len(doc.failed) == 0 {
		return false
	}
	if path != "" && doc.failedBelow[path] {
		return true
	}
	for p := path; ; p = parentPath(p) {
		if doc.failed[p] {
			return true
		}
		if p == "" {
			return false
		}
	}
}

// validateDocument runs every Validate hook of the document.
func validateDocument(doc *Document) Errors {
	v := &Validator{doc: doc}
	v.walk("", reflect.ValueOf(doc).Elem())
	return v.errs
}

// walk calls the Validate hook of rv, then walks its yaml fields, elements and map
// values (maps in key order, for stable output), and a stage's spec.
func (v *Validator) walk(path string, rv reflect.Value) {
	if rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return
		}
		rv = rv.Elem()
	}
	if rv.CanAddr() {
		if h, ok := rv.Addr().Interface().(Validatable); ok {
			h.Validate(v, path)
		}
	}
	switch rv.Kind() {
	case reflect.Struct:
		if st, ok := rv.Addr().Interface().(*Stage); ok {
			if st.Spec != nil {
				v.walk(joinPath(path, st.Kind), reflect.ValueOf(st.Spec))
			}
			return
		}
		t := rv.Type()
		for i := 0; i < t.NumField(); i++ {
			if name := yamlName(t.Field(i)); name != "" {
				v.walk(joinPath(path, name), rv.Field(i))
			}
		}
	case reflect.Slice:
		for i := 0; i < rv.Len(); i++ {
			v.walk(indexPath(path, i), rv.Index(i))
		}
	case reflect.Map:
		keys := rv.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
		for _, k := range keys {
			e := reflect.New(rv.Type().Elem()).Elem()
			e.Set(rv.MapIndex(k))
			v.walk(joinPath(path, k.String()), e)
		}
	}
}

// checkName reports a name that is not 1-64 of letters, digits, '_', '-' and '.',
// starting with a letter or digit (names appear in metrics, logs and Envoy config).
func checkName(v *Validator, path, what, name string) {
	if name == "" {
		v.Errorf(path, "%s is required", what)
		return
	}
	ok := len(name) <= 64 && isAlnum(name[0])
	for i := 0; ok && i < len(name); i++ {
		c := name[i]
		ok = isAlnum(c) || c == '_' || c == '-' || c == '.'
	}
	if !ok {
		v.Errorf(path, "invalid %s %q: use 1-64 letters, digits, '_', '-' or '.', starting with a letter or digit", what, name)
	}
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// isToken reports whether s is an HTTP token (RFC 9110 §5.6.2), as header names and
// methods must be.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isAlnum(c) && !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(c)) {
			return false
		}
	}
	return true
}

// isScope reports whether s is an OAuth scope token (RFC 6749 §3.3): printable ASCII
// without space, '"' or '\'. Scopes travel space-separated in one header.
func isScope(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

func checkScopes(v *Validator, path string, scopes []string) {
	for i, s := range scopes {
		if !isScope(s) {
			v.Errorf(indexPath(path, i), "invalid scope %q: scopes are printable ASCII without spaces or quotes", s)
		}
	}
}

// checkAddress returns a message when addr is not host:port with a numeric port.
func checkAddress(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Sprintf("invalid address %q: expected host:port such as 127.0.0.1:8000", addr)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || port != strconv.FormatUint(n, 10) {
		return fmt.Sprintf("invalid address %q: port must be a number from 0 to 65535", addr)
	}
	if strings.ContainsAny(host, " /\t%") {
		return fmt.Sprintf("invalid address %q: bad host", addr)
	}
	return ""
}

func oneOf(s string, allowed ...string) bool {
	for _, a := range allowed {
		if s == a {
			return true
		}
	}
	return false
}

// checkUnique reports each item whose key repeats an earlier item's, at
// path[i].field, as: duplicate WHAT "key" (first is path[j]). Empty keys are skipped;
// required-field checks report them.
func checkUnique[T any](v *Validator, path, field, what string, items []T, key func(*T) string) {
	first := make(map[string]int, len(items))
	for i := range items {
		k := key(&items[i])
		if k == "" {
			continue
		}
		if j, dup := first[k]; dup {
			v.Errorf(joinPath(indexPath(path, i), field), "duplicate %s %q (first is %s)", what, k, indexPath(path, j))
			continue
		}
		first[k] = i
	}
}
