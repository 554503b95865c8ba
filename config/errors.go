package config

import (
	"fmt"
	"sort"
	"strings"
)

// Position is where a value was written in the document: its 1-based line and column,
// and its YAML path (e.g. "policies.api.authenticate[0]"). Line is 0 when the value
// did not come from the file (a default or an environment override).
type Position struct {
	Path      string
	Line, Col int
}

// Error is one problem in a document, with the place it refers to.
type Error struct {
	File      string
	Line, Col int
	Path      string // YAML path, e.g. "routes[1].policy"; "" for the whole document
	Msg       string
}

// Error formats the problem as FILE:LINE:COL: path: message. Parts that are unknown
// (no column, no line, no path) are left out.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
		if e.Col > 0 {
			fmt.Fprintf(&b, ":%d", e.Col)
		}
	}
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in a document, in file order. Parse and Load return
// it (as error) when the document is not usable; use errors.As to get the list.
type Errors []*Error

// Error returns one problem per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// sort orders the errors by position, then path and message, and drops duplicates.
func (es Errors) sorted() Errors {
	sort.SliceStable(es, func(i, j int) bool {
		a, b := es[i], es[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		if a.Col != b.Col {
			return a.Col < b.Col
		}
		if a.Path != b.Path {
			return a.Path < b.Path
		}
		return a.Msg < b.Msg
	})
	out := es[:0]
	for i, e := range es {
		if i > 0 && *e == *es[i-1] {
			continue
		}
		out = append(out, e)
	}
	return out
}

// joinPath appends a mapping key to a YAML path. Keys that are not plain words are
// quoted: policies["a b"].
func joinPath(path, key string) string {
	if !plainKey(key) {
		return path + "[" + fmt.Sprintf("%q", key) + "]"
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

// indexPath appends a sequence index to a YAML path.
func indexPath(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

// parentPath strips the last element of a YAML path ("" at the top).
func parentPath(p string) string {
	switch {
	case strings.HasSuffix(p, `"]`):
		if i := strings.LastIndex(p, `["`); i >= 0 {
			return p[:i]
		}
	case strings.HasSuffix(p, "]"):
		if i := strings.LastIndexByte(p, '['); i >= 0 {
			return p[:i]
		}
	}
	if i := strings.LastIndexByte(p, '.'); i >= 0 {
		return p[:i]
	}
	return ""
}

func plainKey(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
