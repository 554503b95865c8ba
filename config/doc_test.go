package config

import (
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

const docPath = "../docs/config.md"

// docTables returns the rows of the markdown tables in docs/config.md whose header's
// first cell is header, as cells with surrounding spaces removed.
func docTables(t *testing.T, header string) [][]string {
	t.Helper()
	data, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatalf("the reference must exist at %s: %v", docPath, err)
	}
	var rows [][]string
	var current string // header of the table being read; "" outside tables
	row := 0
	for _, line := range strings.Split(string(data), "\n") {
		if !strings.HasPrefix(line, "|") {
			current, row = "", 0
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		row++
		switch {
		case row == 1:
			current = cells[0]
		case row > 2 && current == header:
			rows = append(rows, cells)
		}
	}
	return rows
}

func unquote(cell string) string { return strings.TrimSuffix(strings.TrimPrefix(cell, "`"), "`") }

// schemaPaths walks the Go model through its yaml tags and returns every document
// path in the reference's notation (lists "[]", map keys "<name>", stage keys
// "<stage>.").
func schemaPaths() map[string]reflect.Type {
	paths := map[string]reflect.Type{}
	var walk func(prefix string, t reflect.Type)
	walk = func(prefix string, t reflect.Type) {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		switch t.Kind() {
		case reflect.Slice:
			walk(prefix+"[]", t.Elem())
			return
		case reflect.Map:
			walk(prefix+".<name>", t.Elem())
			return
		case reflect.Struct:
		default:
			return
		}
		if t == reflect.TypeFor[Stage]() {
			walk("<stage>", reflect.TypeFor[stageCommon]())
			for _, k := range StageKinds() {
				paths["<stage>."+k.Name] = reflect.TypeOf(k.New())
				walk("<stage>."+k.Name, reflect.TypeOf(k.New()))
			}
			return
		}
		for i := 0; i < t.NumField(); i++ {
			name := yamlName(t.Field(i))
			if name == "" {
				continue
			}
			p := name
			if prefix != "" {
				p = prefix + "." + name
			}
			paths[p] = t.Field(i).Type
			walk(p, t.Field(i).Type)
		}
	}
	walk("", reflect.TypeFor[Document]())
	return paths
}

// stageCommon lists the keys every stage takes besides its kind.
type stageCommon struct {
	OnError string `yaml:"on_error"`
	Shadow  bool   `yaml:"shadow"`
}

// TestStageCommonKeys keeps stageCommon in step with Stage's tagged fields.
func TestStageCommonKeys(t *testing.T) {
	got := fieldNames(yamlFields(reflect.TypeFor[Stage]()))
	want := fieldNames(yamlFields(reflect.TypeFor[stageCommon]()))
	if got != want {
		t.Errorf("Stage keys %v, stageCommon keys %v", got, want)
	}
}

// TestDocumentedFields is the schema/doc drift test: every key is documented, every
// documented key exists.
func TestDocumentedFields(t *testing.T) {
	schema := schemaPaths()
	documented := map[string]bool{}
	for _, row := range docTables(t, "Path") {
		p := unquote(row[0])
		if documented[p] {
			t.Errorf("%s documented twice", p)
		}
		documented[p] = true
		if _, ok := schema[p]; !ok {
			t.Errorf("docs/config.md documents %q, which is not in the schema", p)
		}
	}
	var missing []string
	for p := range schema {
		if !documented[p] {
			missing = append(missing, p)
		}
	}
	sort.Strings(missing)
	for _, p := range missing {
		t.Errorf("%s is not documented in docs/config.md", p)
	}
}

// TestDocumentedDefaults checks every default written as `code` against Defaults()
// for the keys outside lists and maps.
func TestDocumentedDefaults(t *testing.T) {
	defaults := map[string]reflect.Value{}
	var walk func(prefix string, v reflect.Value)
	walk = func(prefix string, v reflect.Value) {
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			name := yamlName(t.Field(i))
			if name == "" {
				continue
			}
			p := strings.TrimPrefix(prefix+"."+name, ".")
			defaults[p] = v.Field(i)
			if v.Field(i).Kind() == reflect.Struct {
				walk(p, v.Field(i))
			}
		}
	}
	walk("", reflect.ValueOf(Defaults()).Elem())
	checked := 0
	for _, row := range docTables(t, "Path") {
		p, def := unquote(row[0]), row[2]
		v, ok := defaults[p]
		if !ok || !strings.HasPrefix(def, "`") || strings.Count(def, "`") != 2 {
			continue
		}
		lit := unquote(def)
		checked++
		if got := formatDefault(v); got != lit && !sameDuration(v, lit) {
			t.Errorf("%s: documented default %s, code has %q", p, def, got)
		}
	}
	if checked < 15 {
		t.Errorf("only %d defaults checked", checked)
	}
}

func formatDefault(v reflect.Value) string {
	switch v.Kind() {
	case reflect.String:
		if v.String() == "" {
			return `""`
		}
		return v.String()
	case reflect.Bool:
		return strconv.FormatBool(v.Bool())
	case reflect.Int, reflect.Int64:
		if v.Type() == durationType {
			return time.Duration(v.Int()).String()
		}
		return strconv.FormatInt(v.Int(), 10)
	}
	return "<" + v.Type().String() + ">"
}

func sameDuration(v reflect.Value, lit string) bool {
	d, err := time.ParseDuration(lit)
	return err == nil && v.Type() == durationType && time.Duration(v.Int()) == d
}

// TestDocumentedStageKinds checks the kind/phase table against StageKinds.
func TestDocumentedStageKinds(t *testing.T) {
	documented := map[string]string{}
	for _, row := range docTables(t, "Kind") {
		documented[unquote(row[0])] = row[1]
	}
	for _, k := range StageKinds() {
		want := strings.ReplaceAll(k.phaseList(), " or ", ", ")
		if got, ok := documented[k.Name]; !ok || got != want {
			t.Errorf("stage kind %s: documented phases %q, code %q", k.Name, got, want)
		}
		delete(documented, k.Name)
	}
	for k := range documented {
		t.Errorf("docs/config.md documents stage kind %q, which does not exist", k)
	}
}

// TestDocumentedEnvOverrides checks the variable table against EnvOverrides.
func TestDocumentedEnvOverrides(t *testing.T) {
	var got []EnvOverride
	for _, row := range docTables(t, "Variable") {
		got = append(got, EnvOverride{Key: row[1], Env: unquote(row[0])})
	}
	if want := EnvOverrides(); !reflect.DeepEqual(got, want) {
		t.Errorf("documented %v, code %v", got, want)
	}
}
