package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

var (
	csumA = strings.Repeat("ab", 32)
	csumB = strings.Repeat("0123456789abcdef", 4)
)

// goldenInput is compact, unsorted and uses JSON escapes that serde writes
// differently (\u escapes for printable characters, \/).
const goldenInput = `{"unprotected":{"zz-extra":{"b":[1,2,{}],"a":[],"big":18446744073709551616000,"f":-0.5e-10,"n":null,"t":true},` +
	`"notes":"He said \"hi\"\nline2\ttab\r\u0001\u001F \/ <b>&amp; \u2028\u2029 \u00fc€😀 \\ \b\f\u007f",` +
	`"verify_state":{"upid":"UPID:pbs:000004D2:00000001:00000002:66600000:verifysnapshot:store:root@pam:","state":"ok"}},` +
	`"files":[{"size":200,"filename":"qemu-server.conf.blob","csum":"ABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABAB","x-unknown":{"k":[false]},"crypt-mode":"none"},` +
	`{"filename":"drive-scsi0.img.fidx","csum":"` + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" + `","size":34359738368}],` +
	`"backup-type":"vm","backup-time":1717597321,"backup-id":"100","a-top-extra":null,"signature":null,"zzz":[]}`

// goldenPretty is written by hand following serde_json's PrettyFormatter and
// escaping rules; «LS», «PS» and «DEL» stand for raw U+2028, U+2029, U+007F.
const goldenPretty = `{
  "a-top-extra": null,
  "backup-id": "100",
  "backup-time": 1717597321,
  "backup-type": "vm",
  "files": [
    {
      "crypt-mode": "none",
      "csum": "abababababababababababababababababababababababababababababababab",
      "filename": "qemu-server.conf.blob",
      "size": 200,
      "x-unknown": {
        "k": [
          false
        ]
      }
    },
    {
      "crypt-mode": "none",
      "csum": "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
      "filename": "drive-scsi0.img.fidx",
      "size": 34359738368
    }
  ],
  "signature": null,
  "unprotected": {
    "notes": "He said \"hi\"\nline2\ttab\r\u0001\u001f / <b>&amp; «LS»«PS» ü€😀 \\ \b\f«DEL»",
    "verify_state": {
      "state": "ok",
      "upid": "UPID:pbs:000004D2:00000001:00000002:66600000:verifysnapshot:store:root@pam:"
    },
    "zz-extra": {
      "a": [],
      "b": [
        1,
        2,
        {}
      ],
      "big": 18446744073709551616000,
      "f": -0.5e-10,
      "n": null,
      "t": true
    }
  },
  "zzz": []
}`

var goldenNotes = "He said \"hi\"\nline2\ttab\r\x01\x1f / <b>&amp; \u2028\u2029 ü€😀 \\ \b\f\x7f"

func expand(s string) string {
	return strings.NewReplacer("«LS»", "\u2028", "«PS»", "\u2029", "«DEL»", "\x7f").Replace(s)
}

func TestPrettyGolden(t *testing.T) {
	m, err := Parse([]byte(goldenInput))
	if err != nil {
		t.Fatal(err)
	}
	want := expand(goldenPretty)
	got := string(m.MarshalPretty())
	if got != want {
		t.Fatalf("MarshalPretty mismatch\n got: %q\nwant: %q\n%s", got, want, firstDiff(got, want))
	}
	if m.Notes() != goldenNotes {
		t.Errorf("Notes = %q, want %q", m.Notes(), goldenNotes)
	}
	// Written output parses back to the same output (fixed point), also via
	// a blob.
	raw, err := m.EncodeBlob()
	if err != nil {
		t.Fatal(err)
	}
	m2, err := Load(raw)
	if err != nil {
		t.Fatal(err)
	}
	if got2 := string(m2.MarshalPretty()); got2 != want {
		t.Fatalf("second round differs: %s", firstDiff(got2, want))
	}
	// Getters.
	if m.BackupType() != "vm" || m.BackupID() != "100" || m.BackupTime() != 1717597321 {
		t.Errorf("getters: %q %q %d", m.BackupType(), m.BackupID(), m.BackupTime())
	}
	wantFiles := []FileInfo{
		{Filename: "qemu-server.conf.blob", CryptMode: "none", Csum: csumA, Size: 200},
		{Filename: "drive-scsi0.img.fidx", CryptMode: "none", Csum: csumB, Size: 34359738368},
	}
	if !reflect.DeepEqual(m.Files(), wantFiles) {
		t.Errorf("Files = %+v", m.Files())
	}
	if _, ok := m.Signature(); ok {
		t.Error("null signature reported as signed")
	}
	if v, ok := m.Unprotected().Get("zz-extra"); !ok || string(v) != `{"a":[],"b":[1,2,{}],"big":18446744073709551616000,"f":-0.5e-10,"n":null,"t":true}` {
		t.Errorf("Get(zz-extra) = %s, %v", v, ok)
	}
	if k := m.Unprotected().Keys(); !reflect.DeepEqual(k, []string{"notes", "verify_state", "zz-extra"}) {
		t.Errorf("Keys = %q", k)
	}
}

func firstDiff(a, b string) string {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			lo := max(0, i-40)
			return "first difference at byte " + itoa(i) + ": got …" + a[lo:min(len(a), i+40)] + "… want …" + b[lo:min(len(b), i+40)] + "…"
		}
	}
	return "lengths " + itoa(len(a)) + " and " + itoa(len(b))
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestParseDefaults(t *testing.T) {
	in := `{"backup-type":"host","backup-id":"h1","backup-time":-5,"files":[{"filename":"a.blob","size":0,"csum":"` + csumA + `"}]}`
	m, err := Parse([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := `{
  "backup-id": "h1",
  "backup-time": -5,
  "backup-type": "host",
  "files": [
    {
      "crypt-mode": "none",
      "csum": "` + csumA + `",
      "filename": "a.blob",
      "size": 0
    }
  ],
  "signature": null,
  "unprotected": {}
}`
	if got := string(m.MarshalPretty()); got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	// unprotected: null is read as {}, empty files as [].
	m, err = Parse([]byte(`{"backup-type":"ct","backup-id":"1","backup-time":0,"files":[],"unprotected":null,"signature":"abc"}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(m.MarshalPretty()); !strings.Contains(got, `"files": [],`) || !strings.Contains(got, `"unprotected": {}`) || !strings.Contains(got, `"signature": "abc",`) {
		t.Fatalf("got\n%s", got)
	}
	if s, ok := m.Signature(); !ok || s != "abc" {
		t.Errorf("Signature = %q %v", s, ok)
	}
}

func TestParseErrors(t *testing.T) {
	base := func(repl ...string) string {
		s := `{"backup-type":"vm","backup-id":"100","backup-time":1,"files":[{"filename":"f.blob","crypt-mode":"none","size":1,"csum":"` + csumA + `"}],"unprotected":{"notes":"n"},"signature":null}`
		for i := 0; i < len(repl); i += 2 {
			if !strings.Contains(s, repl[i]) {
				panic("test setup: " + repl[i])
			}
			s = strings.Replace(s, repl[i], repl[i+1], 1)
		}
		return s
	}
	deep := strings.Repeat("[", 126) + strings.Repeat("]", 126) // 128 levels with top and unprotected
	tests := []struct{ name, in, msg string }{
		{"empty", "", "unexpected end of input"},
		{"not json", "hello", "expected a value"},
		{"bom", "\ufeff" + base(), "expected a value"},
		{"trailing", base() + " x", "trailing characters"},
		{"two values", base() + base(), "trailing characters"},
		{"array", "[]", "JSON array, expected an object"},
		{"string", `"x"`, "JSON string, expected an object"},
		{"unterminated string", base()[:40], "unterminated string"},
		{"unterminated object", base()[:len(base())-1], "unexpected end of input in object"},
		{"missing type", base(`"backup-type":"vm",`, ``), "missing field backup-type"},
		{"missing id", base(`"backup-id":"100",`, ``), "missing field backup-id"},
		{"missing time", base(`"backup-time":1,`, ``), "missing field backup-time"},
		{"missing files", base(`"files":[{"filename":"f.blob","crypt-mode":"none","size":1,"csum":"`+csumA+`"}],`, ``), "missing field files"},
		{"bad type", base(`"vm"`, `"VM"`), `backup-type: unknown value "VM"`},
		{"type number", base(`"vm"`, `5`), "backup-type: expected a string, got number"},
		{"id number", base(`"100"`, `100`), "backup-id: expected a string, got number"},
		{"time string", base(`"backup-time":1`, `"backup-time":"1"`), "backup-time: expected an integer, got string"},
		{"time float", base(`"backup-time":1`, `"backup-time":1.5`), "backup-time: 1.5 is not a 64-bit integer"},
		{"time exp", base(`"backup-time":1`, `"backup-time":1e3`), "backup-time: 1e3 is not"},
		{"time overflow", base(`"backup-time":1`, `"backup-time":9223372036854775808`), "9223372036854775808 is not a 64-bit integer"},
		{"files object", base(`"files":[`, `"files":{"a":[`, `}],"unprotected"`, `}]},"unprotected"`), "files: expected an array, got object"},
		{"file string", base(`[{"filename"`, `["x",{"filename"`), "files[0]: expected an object, got string"},
		{"file no name", base(`"filename":"f.blob",`, ``), "files[0]: missing field filename"},
		{"file no size", base(`"size":1,`, ``), "files[0]: missing field size"},
		{"file no csum", base(`,"csum":"`+csumA+`"`, ``), "files[0]: missing field csum"},
		{"file name null", base(`"f.blob"`, `null`), "files[0].filename: expected a string, got null"},
		{"size negative", base(`"size":1`, `"size":-1`), "files[0].size: -1 is not a 64-bit unsigned integer"},
		{"size float", base(`"size":1`, `"size":1.0`), "files[0].size: 1.0 is not"},
		{"size overflow", base(`"size":1`, `"size":18446744073709551616`), "18446744073709551616 is not"},
		{"size string", base(`"size":1`, `"size":"1"`), "files[0].size: expected an unsigned integer, got string"},
		{"csum short", base(csumA, csumA[2:]), "files[0].csum: \"" + csumA[2:] + "\": want 64 hex digits, got 62"},
		{"csum nonhex", base(csumA, "zz"+csumA[2:]), "is not hex"},
		{"crypt mode", base(`"crypt-mode":"none"`, `"crypt-mode":"Encrypt"`), `files[0].crypt-mode: unknown value "Encrypt"`},
		{"signature number", base(`"signature":null`, `"signature":1`), "signature: expected a string or null, got number"},
		{"unprotected array", base(`{"notes":"n"}`, `[]`), "unprotected: expected an object, got array"},
		{"unprotected string", base(`{"notes":"n"}`, `"x"`), "unprotected: expected an object, got string"},
		{"duplicate top", base(`"backup-id":"100",`, `"backup-id":"100","backup-id":"101",`), `duplicate object key "backup-id"`},
		{"duplicate unprotected", base(`{"notes":"n"}`, `{"notes":"n","notes":"m"}`), `duplicate object key "notes"`},
		{"invalid utf8 notes", base(`"notes":"n"`, "\"notes\":\"a\xffb\""), "invalid UTF-8 in string"},
		{"truncated utf8 notes", base(`"notes":"n"`, "\"notes\":\"a\xe2\x82\""), "invalid UTF-8 in string"},
		{"invalid utf8 key", base(`"notes":"n"`, "\"no\xc0\":\"n\""), "invalid UTF-8 in string"},
		{"overlong utf8", base(`"notes":"n"`, "\"notes\":\"\xc0\xaf\""), "invalid UTF-8"},
		{"surrogate utf8", base(`"notes":"n"`, "\"notes\":\"\xed\xa0\x80\""), "invalid UTF-8"},
		{"lone lead surrogate", base(`"notes":"n"`, `"notes":"\ud800x"`), "lone leading surrogate"},
		{"lead+lead surrogate", base(`"notes":"n"`, `"notes":"\ud800\ud800"`), "lone leading surrogate"},
		{"lone trail surrogate", base(`"notes":"n"`, `"notes":"\udc00"`), "lone trailing surrogate"},
		{"raw control", base(`"notes":"n"`, "\"notes\":\"a\nb\""), "unescaped control character 0x0a"},
		{"bad escape", base(`"notes":"n"`, `"notes":"\x41"`), `invalid escape character 'x'`},
		{"short unicode escape", base(`"notes":"n"`, `"notes":"\u12"`), `invalid \u escape`},
		{"too deep", base(`"notes":"n"`, `"notes":`+deep), "nesting deeper than 127"},
		{"leading zero", base(`"size":1`, `"size":01`), "expected ',' or '}'"},
		{"bare minus", base(`"size":1`, `"size":-`), "expected a digit"},
		{"dot no digit", base(`"size":1`, `"size":1.`), "expected a digit after '.'"},
		{"exp no digit", base(`"size":1`, `"size":1e+`), "expected a digit in exponent"},
		{"leading dot", base(`"size":1`, `"size":.5`), "expected a value"},
		{"bad literal", base(`"signature":null`, `"signature":nul`), `expected "null"`},
		{"trailing comma", base(`"notes":"n"}`, `"notes":"n",}`), "expected a string object key"},
		{"single quotes", base(`"notes":"n"`, `'notes':"n"`), "expected a string object key"},
		{"missing colon", base(`"notes":"n"`, `"notes" "n"`), "expected ':' after object key \"notes\""},
		{"nan", base(`"size":1`, `"size":NaN`), "expected a value"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Parse([]byte(tc.in))
			if err == nil {
				t.Fatalf("Parse succeeded: %s", m.MarshalPretty())
			}
			if !errors.Is(err, ErrBadManifest) || !errors.Is(err, ErrCorrupt) {
				t.Errorf("error %q is not ErrBadManifest/ErrCorrupt", err)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not mention %q", err, tc.msg)
			}
			// Through a blob the same error comes out, with context.
			raw, _ := EncodeBlob([]byte(tc.in), true)
			if _, err := Load(raw); !errors.Is(err, ErrBadManifest) || !strings.HasPrefix(err.Error(), "load manifest: ") {
				t.Errorf("Load: %v", err)
			}
		})
	}
}

func TestParseAcceptedEdgeCases(t *testing.T) {
	deep := strings.Repeat("[", 125) + strings.Repeat("]", 125) // 127 levels with top and unprotected
	for _, in := range []string{
		`{"backup-type":"vm","backup-id":"","backup-time":-9223372036854775808,"files":[]}`,
		`{"backup-type":"vm","backup-id":"x","backup-time":9223372036854775807,"files":[{"filename":"","size":18446744073709551615,"csum":"` + csumA + `","crypt-mode":"sign-only"}]}`,
		" \t\r\n" + `{"backup-type":"ct","backup-id":"x","backup-time":0,"files":[],"unprotected":{"a":` + deep + `}}` + "\n ",
		`{"backup-type":"host","backup-id":"x","backup-time":0,"files":[],"unprotected":{"notes":"\ud83d\ude00\u0000\/"}}`,
		`{"backup-type":"host","backup-id":"x","backup-time":0,"files":[],"":{"":""}}`,
	} {
		m, err := Parse([]byte(in))
		if err != nil {
			t.Errorf("Parse(%.60q): %v", in, err)
			continue
		}
		// Fixed point after one round.
		out := m.MarshalPretty()
		m2, err := Parse(out)
		if err != nil {
			t.Fatalf("reparse of %s: %v", out, err)
		}
		if out2 := m2.MarshalPretty(); !bytes.Equal(out, out2) {
			t.Errorf("not a fixed point:\n%s\n%s", out, out2)
		}
	}
	m, _ := Parse([]byte(`{"backup-type":"host","backup-id":"x","backup-time":0,"files":[],"unprotected":{"notes":"\ud83d\ude00\u0000\/"}}`))
	if m.Notes() != "😀\x00/" {
		t.Errorf("escapes decoded to %q", m.Notes())
	}
	if !strings.Contains(string(m.MarshalPretty()), `"notes": "😀\u0000/"`) {
		t.Errorf("escapes re-encoded as %s", m.MarshalPretty())
	}
}

func TestNewValidation(t *testing.T) {
	good := []FileInfo{{Filename: "a.blob", Csum: strings.ToUpper(csumA), Size: 1}}
	m, err := New("vm", "100", 5, good)
	if err != nil {
		t.Fatal(err)
	}
	if f := m.Files()[0]; f.CryptMode != "none" || f.Csum != csumA {
		t.Errorf("defaults not applied: %+v", f)
	}
	for _, tc := range []struct {
		typ, id string
		files   []FileInfo
		msg     string
	}{
		{"VM", "100", nil, `backup type "VM"`},
		{"vm", "", nil, `backup id ""`},
		{"vm", "a/b", nil, `backup id "a/b"`},
		{"vm", "-x", nil, `backup id "-x"`},
		{"vm", "1", []FileInfo{{Filename: "", Csum: csumA}}, "filename"},
		{"vm", "1", []FileInfo{{Filename: "a\xff", Csum: csumA}}, "not UTF-8"},
		{"vm", "1", []FileInfo{{Filename: "a", Csum: csumA, CryptMode: "bogus"}}, `crypt mode "bogus"`},
		{"vm", "1", []FileInfo{{Filename: "a", Csum: "00"}}, "want 64 hex digits"},
	} {
		_, err := New(tc.typ, tc.id, 0, tc.files)
		if !errors.Is(err, ErrInvalid) || errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("New(%q, %q, %+v) error %v, want ErrInvalid mentioning %q", tc.typ, tc.id, tc.files, err, tc.msg)
		}
	}
}

func TestReadOnlyAPI(t *testing.T) {
	// Every field of Manifest is unexported, so code outside the package
	// can change nothing but what Unprotected() hands out.
	rt := reflect.TypeFor[Manifest]()
	for i := range rt.NumField() {
		if f := rt.Field(i); f.IsExported() {
			t.Errorf("Manifest.%s is exported", f.Name)
		}
	}
	for i := range reflect.TypeFor[Unprotected]().NumField() {
		if f := reflect.TypeFor[Unprotected]().Field(i); f.IsExported() {
			t.Errorf("Unprotected.%s is exported", f.Name)
		}
	}
	// The only pointer-receiver methods that mutate are Sign (writers) and
	// those of Unprotected; list the exported methods to catch additions.
	var names []string
	pt := reflect.TypeFor[*Manifest]()
	for i := range pt.NumMethod() {
		names = append(names, pt.Method(i).Name)
	}
	want := []string{"BackupID", "BackupTime", "BackupType", "CanonicalSigned", "CheckSignature", "Clone", "ComputeSignature",
		"EncodeBlob", "Files", "MarshalPretty", "Notes", "Sign", "Signature", "Unprotected"}
	if !reflect.DeepEqual(names, want) {
		t.Errorf("Manifest methods = %q, want %q (a new method must not be a setter of a signed field)", names, want)
	}

	m, err := Parse([]byte(goldenInput))
	if err != nil {
		t.Fatal(err)
	}
	files := m.Files()
	files[0].Size = 999
	files[0].Filename = "evil"
	if m.Files()[0].Size != 200 || m.Files()[0].Filename != "qemu-server.conf.blob" {
		t.Error("Files() returned shared storage")
	}
}

func TestUnprotectedEdit(t *testing.T) {
	m, err := Parse([]byte(goldenInput))
	if err != nil {
		t.Fatal(err)
	}
	c := m.Clone()
	u := c.Unprotected()
	if err := u.SetNotes("new\nnotes"); err != nil {
		t.Fatal(err)
	}
	if err := u.Set("chunk_upload_stats", json.RawMessage(` {"size": 10, "count":1,"compressed_size":5,"duplicates":0} `)); err != nil {
		t.Fatal(err)
	}
	u.Delete("zz-extra")
	u.Delete("does-not-exist")
	if got := u.Keys(); !reflect.DeepEqual(got, []string{"chunk_upload_stats", "notes", "verify_state"}) {
		t.Errorf("Keys = %q", got)
	}
	if v, _ := u.Get("chunk_upload_stats"); string(v) != `{"compressed_size":5,"count":1,"duplicates":0,"size":10}` {
		t.Errorf("Get = %s", v)
	}
	// The original is untouched.
	if m.Notes() != goldenNotes || len(m.Unprotected().Keys()) != 3 {
		t.Errorf("Clone shares state: %q %q", m.Notes(), m.Unprotected().Keys())
	}
	if got := string(m.MarshalPretty()); got != expand(goldenPretty) {
		t.Error("original output changed after editing the clone")
	}
	want := `  "unprotected": {
    "chunk_upload_stats": {
      "compressed_size": 5,
      "count": 1,
      "duplicates": 0,
      "size": 10
    },
    "notes": "new\nnotes",
    "verify_state": {`
	if got := string(c.MarshalPretty()); !strings.Contains(got, want) {
		t.Errorf("clone output:\n%s", got)
	}

	// Invalid input.
	err = u.SetNotes("bad \xff notes")
	if !errors.Is(err, ErrInvalidNotes) || !errors.Is(err, ErrInvalid) || errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "offset 4") {
		t.Errorf("SetNotes(invalid) = %v", err)
	}
	if c.Notes() != "new\nnotes" {
		t.Error("failed SetNotes changed notes")
	}
	for _, bad := range []string{``, `{`, `{"a":1,"a":2}`, "\"\xff\"", `1 2`, `nul`} {
		if err := u.Set("k", json.RawMessage(bad)); !errors.Is(err, ErrInvalid) || errors.Is(err, ErrCorrupt) {
			t.Errorf("Set(%q) = %v", bad, err)
		}
	}
	if err := u.Set("bad\xffkey", json.RawMessage(`1`)); !errors.Is(err, ErrInvalid) {
		t.Errorf("Set(bad key) = %v", err)
	}
	// A non-string notes value reads as "" (PBS: as_str().unwrap_or("")).
	if err := u.Set("notes", json.RawMessage(`42`)); err != nil || u.Notes() != "" {
		t.Errorf("numeric notes: %v %q", err, u.Notes())
	}
	if _, ok := u.Get("missing"); ok {
		t.Error("Get(missing) ok")
	}
}
