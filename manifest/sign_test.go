package manifest

import (
	"errors"
	"strings"
	"testing"

	"golang.org/x/crypto/scrypt"
)

// testKey is the key of PBS's test_manifest_signature: scrypt("test", "",
// n=65536, r=8, p=1, 32 bytes).
func testKey(t testing.TB) []byte {
	t.Helper()
	k, err := scrypt.Key([]byte("test"), nil, 65536, 8, 1, 32)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func vectorManifest(t testing.TB) *Manifest {
	t.Helper()
	m, err := New("host", "elsa", 1593179765, []FileInfo{
		{Filename: "test1.img.fidx", Size: 200, Csum: strings.Repeat("01", 32), CryptMode: "encrypt"},
		{Filename: "abc.blob", Size: 200, Csum: strings.Repeat("02", 32), CryptMode: "none"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestSignatureVector(t *testing.T) {
	key := testKey(t)
	m := vectorManifest(t)

	wantCanon := `{"backup-id":"elsa","backup-time":1593179765,"backup-type":"host","files":[` +
		`{"crypt-mode":"encrypt","csum":"` + strings.Repeat("01", 32) + `","filename":"test1.img.fidx","size":200},` +
		`{"crypt-mode":"none","csum":"` + strings.Repeat("02", 32) + `","filename":"abc.blob","size":200}]}`
	canon, err := m.CanonicalSigned()
	if err != nil || string(canon) != wantCanon {
		t.Fatalf("CanonicalSigned = %s, %v\nwant %s", canon, err, wantCanon)
	}

	idKey := DeriveIDKey(key)
	sig, err := m.ComputeSignature(idKey)
	if err != nil || sig != "d7b446fb7db081662081d4b40fedd858a1d6307a5aff4ecff7d5bf4fd35679e9" {
		t.Fatalf("signature = %s, %v", sig, err)
	}
	const wantFP = "12:b9:b7:74:bb:3d:89:95:2b:97:cb:c2:82:f0:0c:14:2b:83:ba:7f:96:62:6a:a1:5a:44:9a:63:e8:91:fe:25"
	if fp := Fingerprint(key); fp != wantFP {
		t.Fatalf("Fingerprint = %s", fp)
	}

	if err := m.Sign(idKey); err != nil {
		t.Fatal(err)
	}
	if s, ok := m.Signature(); !ok || s != sig {
		t.Fatalf("Signature after Sign = %q %v", s, ok)
	}
	if v, ok := m.Unprotected().Get("key-fingerprint"); !ok || string(v) != `"`+wantFP+`"` {
		t.Fatalf("key-fingerprint = %s", v)
	}
	if err := m.CheckSignature(idKey); err != nil {
		t.Fatal(err)
	}
	// Unprotected edits keep the signature valid (the point of the design).
	if err := m.Unprotected().SetNotes("edited"); err != nil {
		t.Fatal(err)
	}
	if err := m.CheckSignature(idKey); err != nil {
		t.Fatalf("after notes edit: %v", err)
	}
	// And it survives a blob round trip.
	raw, err := m.EncodeBlob()
	if err != nil {
		t.Fatal(err)
	}
	m2, err := Load(raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := m2.CheckSignature(idKey); err != nil {
		t.Fatalf("after reload: %v", err)
	}
}

func TestCheckSignatureFailures(t *testing.T) {
	key := testKey(t)
	idKey := DeriveIDKey(key)
	other := DeriveIDKey([]byte("another key, 32 bytes long......"))

	m := vectorManifest(t)
	// Unsigned manifests are accepted, as in PBS.
	if err := m.CheckSignature(idKey); err != nil {
		t.Fatalf("unsigned: %v", err)
	}
	if err := m.Sign(idKey); err != nil {
		t.Fatal(err)
	}
	err := m.CheckSignature(other)
	if !errors.Is(err, ErrBadSignature) || errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "wrong key") {
		t.Errorf("wrong key: %v", err)
	}
	m.Unprotected().Delete("key-fingerprint")
	if err := m.CheckSignature(other); !errors.Is(err, ErrBadSignature) || !strings.Contains(err.Error(), "wrong signature in manifest") {
		t.Errorf("wrong key without fingerprint: %v", err)
	}

	// A manifest whose signed part differs from what was signed.
	txt := strings.Replace(string(m.MarshalPretty()), `"size": 200`, `"size": 201`, 1)
	tampered, err := Parse([]byte(txt))
	if err != nil {
		t.Fatal(err)
	}
	if err := tampered.CheckSignature(idKey); !errors.Is(err, ErrBadSignature) || !strings.Contains(err.Error(), "wrong signature") {
		t.Errorf("tampered: %v", err)
	}
	for _, sig := range []string{`"zz"`, `"` + strings.Repeat("0", 64) + `"`} {
		txt := strings.Replace(string(m.MarshalPretty()), `"signature": "d7b4`, `"signature": `+sig+`, "x": "`, 1)
		bad, err := Parse([]byte(txt))
		if err != nil {
			t.Fatal(err)
		}
		if err := bad.CheckSignature(idKey); !errors.Is(err, ErrBadSignature) {
			t.Errorf("signature %s: %v", sig, err)
		}
	}
	if _, err := m.ComputeSignature(nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("empty key: %v", err)
	}
	if err := m.Unprotected().Set("key-fingerprint", []byte(`5`)); err != nil {
		t.Fatal(err)
	}
	if err := m.CheckSignature(idKey); !errors.Is(err, ErrBadSignature) || !strings.Contains(err.Error(), "not a string") {
		t.Errorf("non-string fingerprint: %v", err)
	}
}

func TestCanonicalJSON(t *testing.T) {
	got, err := CanonicalJSON([]byte(` {"b": 1, "a": [true, {"d": "x\u00e9\/", "c": -1.5e3}], "": "\u001f"} `))
	if want := `{"":"\u001f","a":[true,{"c":-1.5e3,"d":"xé/"}],"b":1}`; err != nil || string(got) != want {
		t.Errorf("CanonicalJSON = %s, %v; want %s", got, err, want)
	}
	for _, in := range []string{`null`, `{"a":null}`, `[1,[2,null]]`, `{"a":{"b":[{"c":null}]}}`} {
		_, err := CanonicalJSON([]byte(in))
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "got unexpected null value") {
			t.Errorf("CanonicalJSON(%s) = %v", in, err)
		}
	}
	if _, err := CanonicalJSON([]byte(`{"a":1,"a":1}`)); !errors.Is(err, ErrInvalid) {
		t.Errorf("duplicate: %v", err)
	}
}

func TestDeriveIDKey(t *testing.T) {
	k := DeriveIDKey(make([]byte, 32))
	if len(k) != 32 {
		t.Fatalf("len %d", len(k))
	}
	// (HMAC zero-pads keys, so the inputs must differ in content, not length.)
	if string(k) == string(DeriveIDKey(append(make([]byte, 31), 1))) {
		t.Error("different keys derive the same id key")
	}
}
