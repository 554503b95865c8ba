package telemetry

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

var jsonStringCases = []string{
	"", "a", "/api/items", "b1b2c3d4-0000-4000-8000-000000000001",
	`"`, `\`, `a"b\c`, "<script>&</script>", "\x00\x01\x1f\x7f", "tab\there\nnew",
	"é", "日本語", "\u2028\u2029", "\xff", "a\xffb", "\xe2\x82", "ok\xe2\x82\xacok", "\U0001F600x",
	"x<", ">x", "&&&", "plain then \x00",
}

// checkJSONString holds appendJSONString's output for s to what the bodies and log
// lines promise: one valid JSON string that decodes to s as encoding/json would carry
// it (each invalid UTF-8 byte U+FFFD), with no raw control byte, DEL, <, > or &.
func checkJSONString(t *testing.T, s string) {
	t.Helper()
	out := appendJSONString(nil, s)
	var got string
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%q: invalid JSON %s: %v", s, out, err)
	}
	var want string
	m, _ := json.Marshal(s)
	_ = json.Unmarshal(m, &want)
	if got != want {
		t.Fatalf("%q: decodes to %q, want %q", s, got, want)
	}
	if i := bytes.IndexFunc(out, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '<' || r == '>' || r == '&' }); i >= 0 {
		t.Fatalf("%q: raw %q in %s", s, out[i], out)
	}
}

func TestAppendJSONString(t *testing.T) {
	for _, s := range jsonStringCases {
		checkJSONString(t, s)
	}
	// Escapes are written as before the run-copying change.
	for s, want := range map[string]string{
		"/api/items": `"/api/items"`, `a"b\c`: `"a\"b\\c"`, "<&>": `"\u003c\u0026\u003e"`,
		"\x00\x1f\x7f": `"\u0000\u001f\u007f"`, "a\xffb": `"a\ufffdb"`, "é\u2028": "\"é\u2028\"",
	} {
		if got := string(appendJSONString(nil, s)); got != want {
			t.Errorf("%q: got %s, want %s", s, got, want)
		}
	}
}

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range jsonStringCases {
		f.Add(s)
	}
	f.Fuzz(checkJSONString)
}

// The cached second must never show: every timestamp reads as AppendFormat's, also
// when seconds, locations and fractions change from one call to the next.
func TestAppendRFC3339NanoMatchesAppendFormat(t *testing.T) {
	locs := []*time.Location{time.UTC, time.Local, time.FixedZone("odd", -(3*3600 + 30*60 + 17)), time.FixedZone("plus", 5*3600+45*60)}
	if ny, err := time.LoadLocation("America/New_York"); err == nil {
		locs = append(locs, ny)
	}
	base := []time.Time{
		time.Date(2026, 11, 23, 7, 35, 12, 0, time.UTC),
		time.Date(2026, 3, 8, 6, 59, 59, 999_999_999, time.UTC), // a DST change in New York
		time.Date(1970, 1, 1, 0, 0, 0, 1, time.UTC),
		time.Date(1969, 12, 31, 23, 59, 59, 500_000_000, time.UTC),
		time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 5, time.UTC),
		time.Date(-1, 6, 1, 0, 0, 0, 0, time.UTC),
	}
	nanos := []int{0, 1, 10, 120_000_000, 123_456_789, 999_999_999, 500_000_000, 100}
	for _, b0 := range base {
		for _, loc := range locs {
			for _, step := range []time.Duration{0, time.Nanosecond, 999 * time.Millisecond, time.Second, time.Hour} {
				for _, ns := range nanos {
					tm := b0.Add(step).Truncate(time.Second).Add(time.Duration(ns)).In(loc)
					if got, want := string(appendRFC3339Nano(nil, tm)), tm.Format(time.RFC3339Nano); got != want {
						t.Fatalf("%v: got %s, want %s", tm, got, want)
					}
				}
			}
		}
	}
}

func FuzzAppendRFC3339Nano(f *testing.F) {
	f.Add(int64(1_795_000_000), int64(123_456_789), int32(0), int64(1))
	f.Add(int64(-62_135_596_800), int64(0), int32(-3600), int64(-1))
	f.Fuzz(func(t *testing.T, sec, nsec int64, offset int32, next int64) {
		loc := time.FixedZone("z", int(offset%(18*3600)))
		for _, tm := range []time.Time{time.Unix(sec, nsec).In(loc), time.Unix(sec, nsec+next).In(loc), time.Unix(sec, nsec).UTC()} {
			if got, want := string(appendRFC3339Nano(nil, tm)), tm.Format(time.RFC3339Nano); got != want {
				t.Fatalf("%v: got %s, want %s", tm, got, want)
			}
		}
	})
}
