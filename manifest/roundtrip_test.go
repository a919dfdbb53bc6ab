package manifest

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"maps"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// gen produces random manifest documents as Go values (map[string]any with
// json.Number leaves), independent of the package's own parser and writer.
type gen struct{ r *rand.Rand }

func newGen(seed uint64) *gen { return &gen{rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))} }

var specialRunes = []rune{0, 1, 0x08, 0x09, 0x0a, 0x0c, 0x0d, 0x1b, 0x1f, 0x7f, '"', '\\', '/', '<', '>', '&', '\'',
	0x80, 0xe9, 0x2028, 0x2029, 0xfeff, 0xfffd, 0x4e2d, 0x1f600, 0x10ffff, 0xe000, 0xd7ff}

func (g *gen) str(maxLen int) string {
	n := g.r.IntN(maxLen + 1)
	var sb strings.Builder
	for range n {
		switch g.r.IntN(4) {
		case 0:
			sb.WriteRune(specialRunes[g.r.IntN(len(specialRunes))])
		case 1:
			r := rune(g.r.IntN(0x110000))
			if !utf8.ValidRune(r) {
				r = 'x'
			}
			sb.WriteRune(r)
		default:
			sb.WriteByte(byte(' ' + g.r.IntN(95)))
		}
	}
	return sb.String()
}

var numberLiterals = []string{"0", "-0", "1", "-17", "4294967296", "18446744073709551615", "18446744073709551616000",
	"-9223372036854775809", "1.5", "-0.5e-10", "1E+2", "6.02e23", "0.000001"}

func (g *gen) value(depth int) any {
	k := g.r.IntN(7)
	if depth <= 0 {
		k = g.r.IntN(4)
	}
	switch k {
	case 0:
		return nil
	case 1:
		return g.r.IntN(2) == 0
	case 2:
		return json.Number(numberLiterals[g.r.IntN(len(numberLiterals))])
	case 3:
		return g.str(20)
	case 4:
		a := make([]any, g.r.IntN(4))
		for i := range a {
			a[i] = g.value(depth - 1)
		}
		return a
	default:
		o := map[string]any{}
		for range g.r.IntN(5) {
			o[g.str(6)] = g.value(depth - 1)
		}
		return o
	}
}

const idChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-"

// doc returns (input document, expected document after parse and re-emit).
// With extras, unknown keys are added at the top level and in file entries.
func (g *gen) doc(extras bool) (in, want map[string]any) {
	in, want = map[string]any{}, map[string]any{}
	set := func(k string, v, w any) { in[k], want[k] = v, w }

	typ := []string{"vm", "ct", "host"}[g.r.IntN(3)]
	set("backup-type", typ, typ)
	id := string(idChars[g.r.IntN(37)])
	for range g.r.IntN(12) {
		id += string(idChars[g.r.IntN(len(idChars))])
	}
	set("backup-id", id, id)
	bt := []int64{0, 1593179765, -1, math.MaxInt64, math.MinInt64, g.r.Int64()}[g.r.IntN(6)]
	set("backup-time", json.Number(strconv.FormatInt(bt, 10)), json.Number(strconv.FormatInt(bt, 10)))

	var files, wfiles []any
	for range g.r.IntN(8) {
		f, wf := map[string]any{}, map[string]any{}
		name := g.str(30)
		if name == "" {
			name = "x.blob"
		}
		f["filename"], wf["filename"] = name, name
		var sum [32]byte
		for i := range sum {
			sum[i] = byte(g.r.Uint32())
		}
		cs := hex.EncodeToString(sum[:])
		wf["csum"] = cs
		if g.r.IntN(4) == 0 {
			cs = strings.ToUpper(cs)
		}
		f["csum"] = cs
		size := []uint64{0, 1, math.MaxUint64, g.r.Uint64(), uint64(g.r.IntN(1 << 30))}[g.r.IntN(5)]
		f["size"], wf["size"] = json.Number(strconv.FormatUint(size, 10)), json.Number(strconv.FormatUint(size, 10))
		if g.r.IntN(5) == 0 {
			wf["crypt-mode"] = "none" // default for a missing crypt-mode
		} else {
			cm := []string{"none", "encrypt", "sign-only"}[g.r.IntN(3)]
			f["crypt-mode"], wf["crypt-mode"] = cm, cm
		}
		if extras && g.r.IntN(3) == 0 {
			k := "x-" + g.str(5)
			v := g.value(2)
			f[k], wf[k] = v, v
		}
		files, wfiles = append(files, f), append(wfiles, wf)
	}
	if files == nil {
		files, wfiles = []any{}, []any{}
	}
	set("files", files, wfiles)

	switch g.r.IntN(3) {
	case 0:
		want["signature"] = nil // missing
	case 1:
		set("signature", nil, nil)
	default:
		s := hex.EncodeToString([]byte(g.str(32)))
		set("signature", s, s)
	}

	u := map[string]any{}
	if g.r.IntN(4) != 0 {
		u["notes"] = g.str(200)
	}
	for range g.r.IntN(4) {
		u[g.str(10)] = g.value(3)
	}
	switch g.r.IntN(6) {
	case 0:
		want["unprotected"] = map[string]any{} // missing
	case 1:
		in["unprotected"], want["unprotected"] = nil, map[string]any{}
	default:
		set("unprotected", u, u)
	}
	if extras {
		for range g.r.IntN(3) {
			k := g.str(8)
			if _, known := in[k]; known {
				continue
			}
			v := g.value(3)
			set(k, v, v)
		}
		if _, known := in["unprotected"]; !known {
			// A random key might have been named like an omitted known field.
			delete(in, "unprotected")
			want["unprotected"] = map[string]any{}
		}
	}
	return in, want
}

// decodeIndependently decodes JSON with encoding/json (numbers kept as text).
func decodeIndependently(t testing.TB, b []byte) any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("encoding/json cannot decode our output: %v\n%s", err, b)
	}
	return v
}

// checkSerdeForm checks properties of serde_json's pretty output that do not
// depend on this package's writer: layout equal to encoding/json's
// Compact+Indent (which keep string bytes and write "[]", "{}", `"k": v`),
// keys strictly ascending byte-wise in every object, and only serde's
// escapes inside strings.
func checkSerdeForm(t testing.TB, out []byte) {
	t.Helper()
	var compact, indented bytes.Buffer
	if err := json.Compact(&compact, out); err != nil {
		t.Fatalf("output is not JSON: %v", err)
	}
	if err := json.Indent(&indented, compact.Bytes(), "", "  "); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(indented.Bytes(), out) {
		t.Fatalf("layout differs from Compact+Indent: %s", firstDiff(string(out), indented.String()))
	}
	checkSortedKeys(t, out)
	inStr := false
	for i := 0; i < len(out); i++ {
		c := out[i]
		switch {
		case !inStr:
			if c == '"' {
				inStr = true
			}
		case c == '"':
			inStr = false
		case c < 0x20:
			t.Fatalf("raw control byte %#x in string at %d", c, i)
		case c == '\\':
			i++
			switch e := out[i]; e {
			case '"', '\\', 'b', 'f', 'n', 'r', 't':
			case 'u':
				code, err := strconv.ParseUint(string(out[i+1:i+5]), 16, 16)
				if err != nil || code >= 0x20 || strings.ContainsAny(string(out[i+1:i+5]), "ABCDEF") ||
					code == '\b' || code == '\f' || code == '\n' || code == '\r' || code == '\t' {
					t.Fatalf("escape \\u%s at %d is not serde's", out[i+1:i+5], i)
				}
				i += 4
			default:
				t.Fatalf("escape \\%c at %d is not serde's", e, i)
			}
		}
	}
}

func checkSortedKeys(t testing.TB, out []byte) {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(out))
	type frame struct {
		obj     bool
		lastKey *string
		wantKey bool
	}
	var stack []frame
	for {
		tok, err := d.Token()
		if err != nil {
			break
		}
		if len(stack) > 0 && stack[len(stack)-1].obj && stack[len(stack)-1].wantKey {
			if k, ok := tok.(string); ok {
				top := &stack[len(stack)-1]
				if top.lastKey != nil && !(*top.lastKey < k) {
					t.Fatalf("keys not ascending: %q then %q", *top.lastKey, k)
				}
				top.lastKey, top.wantKey = &k, false
				continue
			}
		}
		if len(stack) > 0 && stack[len(stack)-1].obj {
			stack[len(stack)-1].wantKey = true
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, frame{obj: true, wantKey: true})
		case json.Delim('['):
			stack = append(stack, frame{})
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
			if len(stack) > 0 && stack[len(stack)-1].obj {
				stack[len(stack)-1].wantKey = true
			}
		}
	}
}

func TestRandomRoundTrip(t *testing.T) {
	g := newGen(1)
	for i := range 400 {
		in, want := g.doc(i%2 == 0)
		text, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		m, err := Parse(text)
		if err != nil {
			t.Fatalf("doc %d: Parse: %v\n%s", i, err, text)
		}
		out := m.MarshalPretty()
		checkSerdeForm(t, out)
		if got := decodeIndependently(t, out); !reflect.DeepEqual(got, any(want)) {
			t.Fatalf("doc %d: content differs\n got %#v\nwant %#v", i, got, want)
		}
		if n, _ := want["unprotected"].(map[string]any)["notes"].(string); m.Notes() != n {
			t.Fatalf("doc %d: Notes %q, want %q", i, m.Notes(), n)
		}
		m2, err := Parse(out)
		if err != nil {
			t.Fatalf("doc %d: reparse: %v", i, err)
		}
		if out2 := m2.MarshalPretty(); !bytes.Equal(out, out2) {
			t.Fatalf("doc %d: not a fixed point: %s", i, firstDiff(string(out2), string(out)))
		}
		raw, err := m.EncodeBlob()
		if err != nil {
			t.Fatal(err)
		}
		m3, err := Load(raw)
		if err != nil || !bytes.Equal(m3.MarshalPretty(), out) {
			t.Fatalf("doc %d: blob round trip: %v", i, err)
		}
	}
}

// randomManifests returns parsed random manifests.
func randomManifests(t testing.TB, n int, extras bool) []*Manifest {
	g := newGen(2)
	ms := make([]*Manifest, n)
	for i := range ms {
		in, _ := g.doc(extras)
		text, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		if ms[i], err = Parse(text); err != nil {
			t.Fatal(err)
		}
	}
	return ms
}

func TestUpdateBlobRandom(t *testing.T) {
	g := newGen(3)
	idKey := DeriveIDKey([]byte("0123456789abcdef0123456789abcdef"))
	for i := range 200 {
		in, want := g.doc(true)
		text, _ := json.Marshal(in)
		m, err := Parse(text)
		if err != nil {
			t.Fatal(err)
		}
		signed := i%3 == 0
		if signed {
			if err := m.Sign(idKey); err != nil {
				t.Fatal(err)
			}
			sig, _ := m.Signature()
			want["signature"] = sig
			want["unprotected"].(map[string]any)["key-fingerprint"] = FingerprintFromIDKey(idKey)
		}
		raw, err := m.EncodeBlob()
		if err != nil {
			t.Fatal(err)
		}

		// Random edits, mirrored on the expected document.
		wu := want["unprotected"].(map[string]any)
		notes := g.str(300)
		setKey, setVal := g.str(8), g.value(3)
		delKey := ""
		if keys := slices.Sorted(maps.Keys(wu)); len(keys) > 0 {
			delKey = keys[g.r.IntN(len(keys))]
		}
		fn := func(u *Unprotected) error {
			if delKey != "" {
				u.Delete(delKey)
			}
			if err := u.SetNotes(notes); err != nil {
				return err
			}
			v, _ := json.Marshal(setVal)
			return u.Set(setKey, v)
		}
		if delKey != "" {
			delete(wu, delKey)
		}
		wu["notes"] = notes
		wu[setKey] = setVal

		newRaw, m2, err := UpdateBlob(raw, fn)
		if err != nil {
			t.Fatalf("doc %d: %v", i, err)
		}
		// Decode the new blob from scratch and compare everything.
		m3, err := Load(newRaw)
		if err != nil {
			t.Fatal(err)
		}
		out := m3.MarshalPretty()
		if !bytes.Equal(out, m2.MarshalPretty()) {
			t.Fatalf("doc %d: returned manifest differs from the returned blob", i)
		}
		checkSerdeForm(t, out)
		if got := decodeIndependently(t, out); !reflect.DeepEqual(got, any(want)) {
			t.Fatalf("doc %d: after update\n got %#v\nwant %#v", i, got, want)
		}
		before, _ := m.CanonicalSigned()
		after, _ := m3.CanonicalSigned()
		if !bytes.Equal(before, after) {
			t.Fatalf("doc %d: canonical signed bytes changed", i)
		}
		if signed {
			if err := m3.CheckSignature(idKey); err != nil {
				t.Fatalf("doc %d: %v", i, err)
			}
		}
		// The compressed/uncompressed choice follows the rule.
		b, _ := ParseBlob(newRaw)
		if b.Compressed() && len(b.Payload) > len(out) {
			t.Fatalf("doc %d: compressed form kept although larger", i)
		}
	}
}

func TestUpdateBlobErrors(t *testing.T) {
	m, err := Parse([]byte(goldenInput))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := m.EncodeBlob()
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	if _, _, err := UpdateBlob(raw, func(*Unprotected) error { return boom }); !errors.Is(err, boom) || errors.Is(err, ErrCorrupt) {
		t.Errorf("fn error: %v", err)
	}
	_, _, err = UpdateBlob(raw, func(u *Unprotected) error { return u.SetNotes("\xff") })
	if !errors.Is(err, ErrInvalidNotes) || errors.Is(err, ErrCorrupt) {
		t.Errorf("invalid notes: %v", err)
	}
	bad := bytes.Clone(raw)
	bad[len(bad)-1] ^= 1
	if _, _, err := UpdateBlob(bad, func(*Unprotected) error { t.Error("fn called on corrupt blob"); return nil }); !errors.Is(err, ErrBadCRC) {
		t.Errorf("bad CRC: %v", err)
	}
	notJSON, _ := EncodeBlob([]byte("{"), true)
	if _, _, err := UpdateBlob(notJSON, func(*Unprotected) error { return nil }); !errors.Is(err, ErrBadManifest) {
		t.Errorf("bad JSON: %v", err)
	}
	// A no-op update re-emits the canonical form: same bytes as EncodeBlob.
	out, _, err := UpdateBlob(raw, func(*Unprotected) error { return nil })
	if err != nil || !bytes.Equal(out, raw) {
		t.Errorf("no-op update changed the blob: %v", err)
	}
	if testing.Short() {
		return
	}
	// Notes larger than the blob limit.
	_, _, err = UpdateBlob(raw, func(u *Unprotected) error { return u.SetNotes(strings.Repeat("x", MaxBlobSize)) })
	if !errors.Is(err, ErrTooLarge) {
		t.Errorf("huge notes: %v", err)
	}
}

// TestCanonicalSignedMatchesGeneric checks the typed canonical writer against
// the generic one: the pretty document minus signature and unprotected,
// canonicalised, must give the same bytes.
func TestCanonicalSignedMatchesGeneric(t *testing.T) {
	for i, m := range randomManifests(t, 200, false) {
		c := m.Clone()
		c.signed = false // signature: null would be refused by CanonicalJSON
		txt := c.appendPretty(nil, false)
		txt = []byte(strings.Replace(string(txt), "\n  \"signature\": null,", "", 1))
		txt = []byte(strings.Replace(string(txt), ",\n  \"signature\": null", "", 1))
		want, err := CanonicalJSON(txt)
		if err != nil {
			t.Fatalf("manifest %d: %v\n%s", i, err, txt)
		}
		got, err := m.CanonicalSigned()
		if err != nil || string(got) != string(want) {
			t.Fatalf("manifest %d: CanonicalSigned\n%s\ngeneric\n%s", i, got, want)
		}
	}
}
