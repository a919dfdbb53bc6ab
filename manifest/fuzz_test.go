package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// Seed corpora live in testdata/fuzz/<FuzzName>/ (written by
// TestWriteFuzzSeedCorpus); the f.Add calls below add a few more in code.

func FuzzDecodeBlob(f *testing.F) {
	for _, s := range blobSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		b, perr := ParseBlob(raw)
		if perr != nil && !errors.Is(perr, ErrCorrupt) {
			t.Fatalf("ParseBlob error %q is not ErrCorrupt", perr)
		}
		data, err := DecodeBlob(raw)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrEncrypted) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("DecodeBlob error %q has no sentinel", err)
			}
			if errors.Is(err, ErrEncrypted) && (perr != nil || !b.Encrypted()) {
				t.Fatalf("ErrEncrypted for a non-encrypted blob")
			}
			return
		}
		if perr != nil {
			t.Fatalf("DecodeBlob succeeded where ParseBlob failed: %v", perr)
		}
		if len(data) > MaxBlobSize {
			t.Fatalf("decoded %d bytes", len(data))
		}
		if !b.Compressed() && !bytes.Equal(data, raw[HeaderSize:]) {
			t.Fatal("uncompressed payload differs from the bytes after the header")
		}
		// Re-encoding gives a blob that decodes to the same data.
		for _, compress := range []bool{false, true} {
			re, err := EncodeBlob(data, compress)
			if err != nil {
				t.Fatal(err)
			}
			back, err := DecodeBlob(re)
			if err != nil || !bytes.Equal(back, data) {
				t.Fatalf("re-encoded blob (compress=%v) does not round-trip: %v", compress, err)
			}
		}
	})
}

func FuzzParseManifest(f *testing.F) {
	for _, s := range manifestSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text []byte) {
		// Differential check of the generic parser against encoding/json:
		// whatever we accept must be valid JSON, and valid JSON may only be
		// refused for one of our documented extra rules.
		v, jerr := parseJSON(text)
		if jerr == nil && !json.Valid(text) {
			t.Fatalf("accepted invalid JSON")
		}
		if jerr != nil && json.Valid(text) {
			msg := jerr.Error()
			if !strings.Contains(msg, "duplicate object key") && !strings.Contains(msg, "surrogate") &&
				!strings.Contains(msg, "nesting deeper") && !strings.Contains(msg, "invalid UTF-8") {
				t.Fatalf("refused valid JSON: %v", jerr)
			}
		}
		if jerr == nil {
			// Compact output must itself parse to the same compact output.
			c1, _ := appendCompact(nil, &v, false)
			v2, err := parseJSON(c1)
			if err != nil {
				t.Fatalf("compact output does not parse: %v\n%s", err, c1)
			}
			if c2, _ := appendCompact(nil, &v2, false); !bytes.Equal(c1, c2) {
				t.Fatalf("compact output not a fixed point:\n%s\n%s", c1, c2)
			}
		}

		m, err := Parse(text)
		if err != nil {
			if !errors.Is(err, ErrBadManifest) || !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Parse error %q is not ErrBadManifest", err)
			}
			return
		}
		if jerr != nil {
			t.Fatalf("Parse accepted what parseJSON refused: %v", jerr)
		}
		out := m.MarshalPretty()
		if !utf8.Valid(out) || !json.Valid(out) {
			t.Fatalf("pretty output is not valid UTF-8 JSON:\n%s", out)
		}
		checkSerdeForm(t, out)
		m2, err := Parse(out)
		if err != nil {
			t.Fatalf("pretty output does not parse: %v\n%s", err, out)
		}
		if out2 := m2.MarshalPretty(); !bytes.Equal(out, out2) {
			t.Fatalf("pretty output not a fixed point:\n%s\n%s", out, out2)
		}
		c1, err1 := m.CanonicalSigned()
		c2, err2 := m2.CanonicalSigned()
		if err1 != nil || err2 != nil || !bytes.Equal(c1, c2) {
			t.Fatalf("canonical bytes differ after round trip: %v %v", err1, err2)
		}
		if _, err := CanonicalJSON(c1); err != nil {
			t.Fatalf("canonical signed bytes are not canonical JSON: %v", err)
		}
	})
}

// FuzzUpdateBlob fuzzes the manifest text and the new notes; the blob is
// built from the text inside the target, so the fuzzer is not stopped by
// the CRC (blob-level corruption is FuzzDecodeBlob's job).
func FuzzUpdateBlob(f *testing.F) {
	for i, s := range manifestSeeds(f)[:6] {
		f.Add(s, updateNotesSeeds[i%len(updateNotesSeeds)])
	}
	f.Fuzz(func(t *testing.T, text []byte, notes string) {
		raw, err := EncodeBlob(text, len(text)%2 == 0)
		if err != nil {
			t.Fatal(err)
		}
		before, lerr := Load(raw)
		out, m, err := UpdateBlob(raw, func(u *Unprotected) error { return u.SetNotes(notes) })
		if err != nil {
			switch {
			case errors.Is(err, ErrSignedChanged):
				t.Fatalf("UpdateBlob changed the signed part: %v", err)
			case errors.Is(err, ErrInvalidNotes):
				if utf8.ValidString(notes) {
					t.Fatalf("valid notes refused: %v", err)
				}
			case errors.Is(err, ErrCorrupt), errors.Is(err, ErrEncrypted), errors.Is(err, ErrTooLarge):
				if lerr == nil && !errors.Is(err, ErrTooLarge) {
					t.Fatalf("UpdateBlob failed on a loadable manifest: %v", err)
				}
			default:
				t.Fatalf("UpdateBlob error %q has no sentinel", err)
			}
			return
		}
		if lerr != nil {
			t.Fatalf("UpdateBlob succeeded where Load failed: %v", lerr)
		}
		after, err := Load(out)
		if err != nil {
			t.Fatalf("new blob does not load: %v", err)
		}
		if after.Notes() != notes || m.Notes() != notes {
			t.Fatalf("notes = %q / %q, want %q", after.Notes(), m.Notes(), notes)
		}
		c1, _ := before.CanonicalSigned()
		c2, _ := after.CanonicalSigned()
		s1, ok1 := before.Signature()
		s2, ok2 := after.Signature()
		if !bytes.Equal(c1, c2) || s1 != s2 || ok1 != ok2 {
			t.Fatal("signed part or signature changed")
		}
		// Everything in unprotected but notes is unchanged.
		for _, k := range before.Unprotected().Keys() {
			if k == "notes" {
				continue
			}
			v1, _ := before.Unprotected().Get(k)
			v2, ok := after.Unprotected().Get(k)
			if !ok || !bytes.Equal(v1, v2) {
				t.Fatalf("unprotected %q changed", k)
			}
		}
	})
}

// --- seeds ---

func blobSeeds(tb testing.TB) [][]byte {
	var seeds [][]byte
	add := func(b []byte, err error) {
		if err != nil {
			tb.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	add(EncodeBlob([]byte("hello"), false))
	add(EncodeBlob(nil, false))
	add(EncodeBlob([]byte(strings.Repeat("compressible text ", 64)), true))
	add(realisticManifest(tb).EncodeBlob())
	seeds = append(seeds,
		blobWith(MagicEncrypted(), []byte("ciphertext")),
		blobWith(MagicEncryptedCompressed(), []byte("ciphertext")),
		blobWith(Magic{79, 127, 200, 4, 121, 74, 135, 239}, []byte("historic")),
		blobWith(MagicCompressed(), append(rleFrame(2, -1), rleFrame(1, 3*maxZstdBlock)...)),
		blobWith(MagicCompressed(), zstdFrames(tb, []byte("frame one "), []byte("frame two"))),
		blobWith(MagicCompressed(), []byte{0x50, 0x2a, 0x4d, 0x18, 2, 0, 0, 0, 'h', 'i'}), // skippable frame only
		[]byte("short"),
	)
	return seeds
}

func manifestSeeds(tb testing.TB) [][]byte {
	seeds := [][]byte{
		[]byte(goldenInput),
		[]byte(expand(goldenPretty)),
		realisticManifest(tb).MarshalPretty(),
		vectorManifest(tb).MarshalPretty(),
		[]byte(`{"backup-type":"host","backup-id":"x","backup-time":0,"files":[],"unprotected":{"notes":"\ud83d\ude00\u0000\/"}}`),
		[]byte(`{"backup-type":"ct","backup-id":"1","backup-time":0,"files":[],"unprotected":null,"signature":"abc"}`),
		[]byte(`{"a":1,"a":2}`),
		[]byte(`[1,{"x":[true,false,null,-0.5e-10]}]`),
	}
	for _, m := range randomManifests(tb, 4, true) {
		seeds = append(seeds, m.MarshalPretty())
	}
	return seeds
}

var updateNotesSeeds = []string{"", "new notes", "multi\nline \"quoted\" <b>&\u2028", "\xff bad", "\x00\x1f\u00e9"}
