package config

import (
	"fmt"
	"reflect"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// decoder walks a yaml.v3 node tree into Go values, checking every mapping key
// against the target's yaml tags, recording the position of every value by YAML path
// and collecting every error instead of stopping at the first.
type decoder struct {
	file    string
	baseDir string // directory that relative file: secret references are resolved against
	errs    Errors
	pos     map[string]Position
	failed  map[string]bool // paths with decode errors (see Document.failed)
	below   map[string]bool // parents of failed paths
	budget  int             // node visits left; bounds alias expansion ("billion laughs")
	stopped bool
}

// nodeDecoder is implemented by types with their own YAML shape (stages, secrets,
// hashes). It is called for every node, including null ones.
type nodeDecoder interface {
	decodeYAML(d *decoder, path string, n *yaml.Node)
}

// defaulter is implemented by list and map elements whose defaults are set before
// their node is decoded.
type defaulter interface {
	setDefaults()
}

var positionType = reflect.TypeFor[Position]()

// maxKeyBytes bounds mapping keys, which become part of every path below them.
const maxKeyBytes = 256

func newDecoder(file, baseDir string, root *yaml.Node) *decoder {
	return &decoder{
		file:    file,
		baseDir: baseDir,
		pos:     make(map[string]Position),
		failed:  make(map[string]bool),
		below:   make(map[string]bool),
		budget:  10*countNodes(root, 0) + 10000,
	}
}

// countNodes counts the nodes of a tree without following aliases.
func countNodes(n *yaml.Node, depth int) int {
	if n == nil || depth > 10000 {
		return 0
	}
	c := 1
	for _, ch := range n.Content {
		c += countNodes(ch, depth+1)
	}
	return c
}

func (d *decoder) errorf(n *yaml.Node, path, format string, args ...any) {
	d.fail(path)
	d.errs = append(d.errs, &Error{File: d.file, Line: n.Line, Col: n.Column, Path: path, Msg: fmt.Sprintf(format, args...)})
}

// fail marks path as failed to decode, and its parents as having a failure below.
func (d *decoder) fail(path string) {
	d.failed[path] = true
	for p := path; p != ""; {
		p = parentPath(p)
		if d.below[p] {
			return
		}
		d.below[p] = true
	}
}

// decode decodes n into *target.
func (d *decoder) decode(path string, n *yaml.Node, target any) {
	d.value(path, n, valueOf(target))
}

// value decodes n into v, which must be settable.
func (d *decoder) value(path string, n *yaml.Node, v reflect.Value) {
	if !d.spend(n, path, 1) {
		return
	}
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if _, seen := d.pos[path]; !seen {
		d.pos[path] = Position{Path: path, Line: n.Line, Col: n.Column}
	}
	if nd, ok := v.Addr().Interface().(nodeDecoder); ok {
		nd.decodeYAML(d, path, n)
		return
	}
	if isNull(n) {
		return // not given: the default stays
	}
	if decodeSpecialScalar(d, path, n, v) {
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.value(path, n, v.Elem())
	case reflect.Struct:
		d.structure(path, n, v)
	case reflect.Slice:
		d.sequence(path, n, v)
	case reflect.Map:
		d.mapping(path, n, v)
	default:
		decodeScalar(d, path, n, v)
	}
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" }

// entries calls fn for each key/value pair of a mapping node, after checking that
// keys are scalars, unique and not merge keys. It reports a non-mapping node.
func (d *decoder) entries(path string, n *yaml.Node, fn func(key string, k, v *yaml.Node)) bool {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "expected a mapping, got %s", describe(n))
		return false
	}
	seen := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		for k.Kind == yaml.AliasNode && k.Alias != nil {
			k = k.Alias
		}
		if k.Kind != yaml.ScalarNode {
			d.errorf(k, path, "mapping keys must be plain strings, got %s", describe(k))
			continue
		}
		key := k.Value
		if len(key) > maxKeyBytes {
			d.errorf(k, path, "key longer than %d bytes", maxKeyBytes)
			continue
		}
		if key == "<<" && k.ShortTag() == "!!merge" {
			d.errorf(k, path, "merge keys (<<) are not supported; repeat the keys")
			continue
		}
		if line, dup := seen[key]; dup {
			d.errorf(k, joinPath(path, key), "duplicate key %q (first at line %d)", key, line)
			continue
		}
		seen[key] = k.Line
		fn(key, k, v)
	}
	return true
}

// structure decodes a mapping into a struct through its yaml tags. A field named Pos
// of type Position receives the struct's position.
func (d *decoder) structure(path string, n *yaml.Node, v reflect.Value) {
	fields := yamlFields(v.Type())
	d.entries(path, n, func(key string, k, val *yaml.Node) {
		i, ok := fields[key]
		if !ok {
			d.errorf(k, joinPath(path, key), "unknown key %q; expected one of: %s", key, fieldNames(fields))
			if path != "" {
				d.fail(path) // the struct's other fields may be missing because of it
			}
			return
		}
		d.value(joinPath(path, key), val, v.Field(i))
	})
	if f := v.FieldByName("Pos"); f.IsValid() && f.Type() == positionType {
		f.Set(reflect.ValueOf(d.pos[path]))
	}
}

// sequence decodes a list, replacing the slice (and so its default) entirely.
func (d *decoder) sequence(path string, n *yaml.Node, v reflect.Value) {
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, path, "expected a list, got %s", describe(n))
		return
	}
	if !d.spend(n, path, len(n.Content)) {
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, c := range n.Content {
		e := s.Index(i)
		setDefaults(e)
		d.value(indexPath(path, i), c, e)
	}
	v.Set(s)
}

// mapping decodes a mapping with string keys. An entry's position is its key's.
func (d *decoder) mapping(path string, n *yaml.Node, v reflect.Value) {
	t := v.Type()
	if t.Key().Kind() != reflect.String {
		d.errorf(n, path, "internal: unsupported map key type %s", t.Key())
		return
	}
	if !d.spend(n, path, len(n.Content)/2) {
		return
	}
	m := reflect.MakeMapWithSize(t, len(n.Content)/2)
	d.entries(path, n, func(key string, k, val *yaml.Node) {
		p := joinPath(path, key)
		d.pos[p] = Position{Path: p, Line: k.Line, Col: k.Column}
		e := reflect.New(t.Elem()).Elem()
		setDefaults(e)
		d.value(p, val, e)
		m.SetMapIndex(reflect.ValueOf(key).Convert(t.Key()), e)
	})
	v.Set(m)
}

// setDefaults allocates a nil pointer element and applies its defaults.
func setDefaults(e reflect.Value) {
	if e.Kind() == reflect.Pointer {
		e.Set(reflect.New(e.Type().Elem()))
		if df, ok := e.Interface().(defaulter); ok {
			df.setDefaults()
		}
		return
	}
	if df, ok := e.Addr().Interface().(defaulter); ok {
		df.setDefaults()
	}
}

// yamlFields maps the yaml key of each tagged field of struct type t to its index.
// Fields tagged "-" or untagged are not part of the document.
func yamlFields(t reflect.Type) map[string]int {
	m := make(map[string]int, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		if name := yamlName(t.Field(i)); name != "" {
			m[name] = i
		}
	}
	return m
}

// yamlName returns the document key of a struct field ("" when it has none).
func yamlName(f reflect.StructField) string {
	tag, ok := f.Tag.Lookup("yaml")
	if !ok || !f.IsExported() {
		return ""
	}
	name, _, _ := strings.Cut(tag, ",")
	if name == "-" {
		return ""
	}
	return name
}

func fieldNames(fields map[string]int) string {
	names := make([]string, 0, len(fields))
	for k := range fields {
		names = append(names, k)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// describe names what a node is, for error messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if isNull(n) {
			return "nothing"
		}
		return fmt.Sprintf("%q", truncate(n.Value, 40))
	}
	return "an unsupported node"
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// spend charges k node visits to the budget, which bounds both the time and the
// memory (slices are allocated only after their elements are paid for) that alias
// expansion can cost.
func (d *decoder) spend(n *yaml.Node, path string, k int) bool {
	if d.stopped {
		return false
	}
	if d.budget -= k; d.budget < 0 {
		d.stopped = true
		d.errorf(n, path, "document too complex: aliases expand beyond the node budget")
		return false
	}
	return true
}

// valueOf returns the settable value a pointer points to.
func valueOf(ptr any) reflect.Value { return reflect.ValueOf(ptr).Elem() }
