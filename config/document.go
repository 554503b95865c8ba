package config

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// MaxDocumentBytes bounds the size of a document file.
const MaxDocumentBytes = 16 << 20

// Document is a decoded, defaulted and validated policy document (schema v1). Its
// values are read-only once Parse returns; the registry compiles it into a route table.
type Document struct {
	Listeners Listeners          `yaml:"listeners"`
	Upstream  Upstream           `yaml:"upstream"`
	Network   Network            `yaml:"network"`
	Identity  Identity           `yaml:"identity"`
	Server    Server             `yaml:"server"`
	Log       Log                `yaml:"log"`
	Default   DefaultRoute       `yaml:"default"`
	Providers Providers          `yaml:"providers"`
	Store     Store              `yaml:"store"`
	RLS       RLS                `yaml:"rls"`
	Policies  map[string]*Policy `yaml:"policies"`
	Routes    []Route            `yaml:"routes"`

	// Source is the file the document was read from, as given to Parse or Load.
	Source string `yaml:"-"`
	// Digest is the SHA-256 of the bytes the document was parsed from: what a reload
	// compares the file with, so the running version is the one that was read, not a
	// second read of a file that may have changed in between.
	Digest [sha256.Size]byte `yaml:"-"`

	pos map[string]Position // every value written in the file, by YAML path
	env map[string]string   // paths set by environment overrides -> variable name
	// failed holds the paths whose decoding failed; validation stays quiet about
	// them, their parents and their children, which hold defaults, not the user's intent.
	failed, failedBelow map[string]bool
}

// Defaults returns a document holding every default and nothing else. Decoding
// starts from it: a key present in the file replaces the default.
func Defaults() *Document {
	return &Document{
		Listeners: Listeners{Proxy: "127.0.0.1:8000", GRPC: "127.0.0.1:9001", Admin: "127.0.0.1:9002"},
		Upstream: Upstream{
			Timeouts:            UpstreamTimeouts{Dial: 5 * time.Second, ResponseHeader: 30 * time.Second, IdleConn: 90 * time.Second},
			MaxIdleConnsPerHost: 256,
		},
		Identity: Identity{HeaderPrefix: "x-portcullis-"},
		Server: Server{
			ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second, ShutdownTimeout: 15 * time.Second,
			StreamIdleTimeout: 5 * time.Minute,
			MaxHeaderBytes:    61440, MaxHeaderCount: 100, MaxBodyBytes: 10 << 20,
			WebSocket: ServerWebSocket{MaxMessageBytes: 1 << 20},
		},
		Log:   Log{Level: "info", Decisions: "all"},
		Store: defaultStore(),
	}
}

// Load reads the document at path, then parses, defaults and validates it.
func Load(path string) (*Document, error) {
	return loadWith(path, nil)
}

func loadWith(path string, lookup func(key string) (string, bool)) (*Document, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	return parse(path, data, lookup)
}

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxDocumentBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read config %s: %w", path, err)
	}
	if len(data) > MaxDocumentBytes {
		return nil, fmt.Errorf("read config %s: larger than %d bytes", path, MaxDocumentBytes)
	}
	return data, nil
}

// Parse decodes data (named file in errors), applies defaults and validates. On any
// problem it returns a nil document and an Errors listing all of them.
func Parse(file string, data []byte) (*Document, error) {
	return parse(file, data, nil)
}

// parse is Parse with environment overrides looked up by key ("listeners.proxy").
func parse(file string, data []byte, lookup func(key string) (string, bool)) (*Document, error) {
	root, perr := parseYAML(file, data)
	if perr != nil {
		return nil, Errors{perr}
	}
	doc := Defaults()
	doc.Source = file
	doc.Digest = sha256.Sum256(data)
	d := newDecoder(file, filepath.Dir(file), root)
	d.decode("", root, doc)
	if d.stopped {
		return nil, d.errs.sorted() // what was decoded is partial; validating it is noise
	}
	doc.pos, doc.failed, doc.failedBelow = d.pos, d.failed, d.below
	doc.finish()
	if lookup != nil {
		doc.applyOverrides(lookup)
	}
	errs := append(d.errs, validateDocument(doc)...)
	if len(errs) > 0 {
		return nil, errs.sorted()
	}
	return doc, nil
}

var yamlLineErr = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parseYAML parses exactly one YAML document into a node tree.
func parseYAML(file string, data []byte) (root *yaml.Node, err *Error) {
	defer func() {
		// yaml.v3 has panicked on hostile input in the past; a document is input.
		if r := recover(); r != nil {
			root, err = nil, &Error{File: file, Msg: fmt.Sprintf("malformed YAML: %v", r)}
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if e := dec.Decode(&doc); e != nil {
		if errors.Is(e, io.EOF) {
			return nil, &Error{File: file, Msg: "the document is empty"}
		}
		return nil, yamlError(file, data, e)
	}
	var extra yaml.Node
	if e := dec.Decode(&extra); !errors.Is(e, io.EOF) {
		line := extra.Line
		if e != nil {
			return nil, yamlError(file, data, e)
		}
		return nil, &Error{File: file, Line: line, Msg: "only one YAML document per file"}
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, &Error{File: file, Msg: "the document is empty"}
	}
	return doc.Content[0], nil
}

// parserProblems are yaml.v3's parser (not scanner) messages. yaml.v3 reports the
// line of these 0-based and of scanner errors 1-based; we add the missing 1.
var parserProblems = []string{
	"did not find expected ',' or ']'", "did not find expected ',' or '}'",
	"did not find expected '-' indicator", "did not find expected <document start>",
	"did not find expected <stream-start>", "did not find expected key",
	"did not find expected node content", "found duplicate %TAG directive",
	"found duplicate %YAML directive", "found incompatible YAML document",
	"found undefined tag handle",
}

// yamlError turns a yaml.v3 syntax error into an Error with its line. yaml.v3 gives no
// line for a problem on the first line, nor for an unknown anchor: the first is line 1,
// the second the line of the first reference to that anchor in data.
func yamlError(file string, data []byte, e error) *Error {
	msg := e.Error()
	if m := yamlLineErr.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		if oneOf(m[2], parserProblems...) {
			line++
		}
		return &Error{File: file, Line: line, Msg: "malformed YAML: " + m[2]}
	}
	msg = strings.TrimPrefix(msg, "yaml: ")
	line := 1
	if m := yamlUnknownAnchor.FindStringSubmatch(msg); m != nil {
		if i := bytes.Index(data, []byte("*"+m[1])); i >= 0 {
			line += bytes.Count(data[:i], []byte("\n"))
		}
	}
	return &Error{File: file, Line: line, Msg: "malformed YAML: " + msg}
}

var yamlUnknownAnchor = regexp.MustCompile(`^unknown anchor '([^']*)' referenced$`)

// finish fills what decoding derives from the structure: policy names and the
// conditional default of the default route.
func (doc *Document) finish() {
	for name, p := range doc.Policies {
		p.Name = name
		p.Pos = doc.Position(joinPath("policies", name))
	}
	if doc.Default.Policy == "" && doc.Default.Status == 0 {
		doc.Default.Status = 404
	}
}

// Position returns where path was written. A path that was not written (left at its
// default) gets the position of its nearest written parent.
func (doc *Document) Position(path string) Position {
	for p := path; ; p = parentPath(p) {
		if pos, ok := doc.pos[p]; ok {
			pos.Path = path
			return pos
		}
		if p == "" {
			return Position{Path: path}
		}
	}
}

// Errorf returns an error placed at path, for problems found after loading (the
// registry's compile errors): policy.yaml:12:9: policies.api.authenticate[0]: ...
// A value set by an environment variable names the variable instead of a line.
func (doc *Document) Errorf(path, format string, args ...any) *Error {
	msg := fmt.Sprintf(format, args...)
	if name, ok := doc.env[path]; ok {
		return &Error{File: doc.Source, Path: path, Msg: msg + " (set by " + name + ")"}
	}
	pos := doc.Position(path)
	return &Error{File: doc.Source, Line: pos.Line, Col: pos.Col, Path: path, Msg: msg}
}

// PolicyNames returns the policy names in file order.
func (doc *Document) PolicyNames() []string {
	names := make([]string, 0, len(doc.Policies))
	for n := range doc.Policies {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		a, b := doc.Policies[names[i]].Pos, doc.Policies[names[j]].Pos
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return names[i] < names[j]
	})
	return names
}

// Validate checks the references between sections.
func (doc *Document) Validate(v *Validator, _ string) {
	if doc.Listeners.Proxy != "" && doc.Upstream.URL == "" {
		v.Errorf("upstream.url", "no upstream: listeners.proxy is set, so upstream.url is required")
	}
	seen := make(map[string]int, len(doc.Routes))
	for i, r := range doc.Routes {
		if r.Name == "" {
			continue
		}
		if first, dup := seen[r.Name]; dup {
			v.Errorf(indexPath("routes", i)+".name", "duplicate route name %q (first is routes[%d])", r.Name, first)
			continue
		}
		seen[r.Name] = i
	}
}
