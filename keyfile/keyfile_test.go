package keyfile

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"pbsfs/manifest"
)

// seqKey is the key of PBS's own key-config tests: bytes 0..31. Its
// fingerprint is listed there (fingerprint_checks).
func seqKey() []byte {
	k := make([]byte, 32)
	for i := range k {
		k[i] = byte(i)
	}
	return k
}

const seqFingerprint = "0e:ab:d4:46:0b:6e:b9:ca:34:50:23:de:e2:b7:78:c7:90:e5:4a:16:83:b9:65:9c:0a:57:ae:19:90:90:15:9b"

const password = "correct horse"

// The files in testdata were made with Python (hashlib.scrypt,
// hashlib.pbkdf2_hmac, cryptography's AESGCM with a 16-byte nonce) from the
// format in pbs-key-config/src/lib.rs: an implementation independent of this
// package. scrypt.json uses PBS's default parameters and a padded salt,
// pbkdf2.json an unpadded salt, no fingerprint and a hint.
func TestGoldenFiles(t *testing.T) {
	for _, name := range []string{"scrypt.json", "pbkdf2.json"} {
		t.Run(name, func(t *testing.T) {
			c, err := Load(filepath.Join("testdata", name))
			if err != nil {
				t.Fatal(err)
			}
			if !c.Encrypted() {
				t.Fatal("not encrypted")
			}
			key, fp, err := c.Decrypt([]byte(password))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(key, seqKey()) || fp != seqFingerprint {
				t.Errorf("key %x fingerprint %s", key, fp)
			}
			_, _, err = c.Decrypt([]byte("wrong horse"))
			if !errors.Is(err, ErrPassword) {
				t.Errorf("wrong password: %v", err)
			}
			if c.Hint != "" && !strings.Contains(err.Error(), c.Hint) {
				t.Errorf("error does not show the hint: %v", err)
			}
			if _, _, err := c.Decrypt([]byte("abcd")); !errors.Is(err, ErrPassword) {
				t.Errorf("short password: %v", err)
			}
		})
	}
	c, _ := Load(filepath.Join("testdata", "scrypt.json"))
	if c.KDF.Name != Scrypt || c.KDF.N != 65536 || c.KDF.R != 8 || c.KDF.P != 1 || len(c.KDF.Salt) != 32 {
		t.Errorf("kdf %+v", c.KDF)
	}
	want := time.Date(2024, 6, 5, 14, 22, 1, 0, time.UTC)
	if !c.Created.Equal(want) || !c.Modified.Equal(want) {
		t.Errorf("created %v modified %v", c.Created, c.Modified)
	}
}

func TestRoundTrip(t *testing.T) {
	created := time.Date(2025, 3, 1, 12, 0, 0, 0, time.FixedZone("", 3600))
	key := bytes.Repeat([]byte{0x5a}, 32)
	small := &KDF{Name: Scrypt, N: 1024, R: 8, P: 1, Salt: []byte("salt-salt-salt-salt-salt-salt-32")}
	pb := &KDF{Name: PBKDF2, Iter: 1000, Salt: []byte("0123456789abcdef0123456789abcdef")}
	for _, tc := range []struct {
		name string
		kdf  *KDF
	}{{"none", nil}, {"scrypt", small}, {"pbkdf2", pb}} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(key, []byte(password), tc.kdf, created)
			if err != nil {
				t.Fatal(err)
			}
			text := c.Marshal()
			if !bytes.Contains(text, []byte(`"created":"2025-03-01T12:00:00+01:00"`)) {
				t.Errorf("time format: %s", text)
			}
			p, err := Parse(text)
			if err != nil {
				t.Fatalf("%s: %v", text, err)
			}
			got, fp, err := p.Decrypt([]byte(password))
			if err != nil || !bytes.Equal(got, key) || fp != manifest.Fingerprint(key) {
				t.Fatalf("Decrypt: %x %s %v", got, fp, err)
			}
			if tc.kdf == nil {
				if !strings.HasPrefix(string(text), `{"kdf":null,`) {
					t.Errorf("plain key file: %s", text)
				}
				// No password needed.
				if _, _, err := p.Decrypt(nil); err != nil {
					t.Error(err)
				}
			}
		})
	}
}

func TestFingerprintMismatch(t *testing.T) {
	c, err := New(seqKey(), nil, nil, time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	c.Fingerprint = strings.Repeat("00:", 31) + "00"
	if _, _, err := c.Decrypt(nil); !errors.Is(err, ErrFingerprint) {
		t.Errorf("wrong stored fingerprint: %v", err)
	}
	// Without colons is accepted too (Fingerprint::from_str).
	c.Fingerprint = strings.ReplaceAll(seqFingerprint, ":", "")
	if _, fp, err := c.Decrypt(nil); err != nil || fp != seqFingerprint {
		t.Errorf("fingerprint without colons: %s %v", fp, err)
	}
}

func TestParseErrors(t *testing.T) {
	good := `"created":"2024-01-01T00:00:00+00:00","modified":"2024-01-01T00:00:00+00:00","data":"AAAA"`
	for name, text := range map[string]string{
		"not json":         `kdf`,
		"missing data":     `{"kdf":null,"created":"2024-01-01T00:00:00+00:00","modified":"2024-01-01T00:00:00+00:00"}`,
		"missing created":  `{"kdf":null,"modified":"2024-01-01T00:00:00+00:00","data":"AAAA"}`,
		"bad time":         `{"kdf":null,"created":"yesterday","modified":"2024-01-01T00:00:00+00:00","data":"AAAA"}`,
		"bad base64":       `{"kdf":null,"created":"2024-01-01T00:00:00+00:00","modified":"2024-01-01T00:00:00+00:00","data":"!!"}`,
		"unknown kdf":      `{"kdf":{"Argon2":{}},` + good + `}`,
		"two kdfs":         `{"kdf":{"Scrypt":{"n":2,"r":1,"p":1,"salt":""},"PBKDF2":{"iter":1,"salt":""}},` + good + `}`,
		"n not power of 2": `{"kdf":{"Scrypt":{"n":1000,"r":8,"p":1,"salt":""}},` + good + `}`,
		"scrypt too big":   `{"kdf":{"Scrypt":{"n":1048576,"r":16,"p":1,"salt":""}},` + good + `}`,
		"scrypt missing p": `{"kdf":{"Scrypt":{"n":1024,"r":8,"salt":""}},` + good + `}`,
		"iter zero":        `{"kdf":{"PBKDF2":{"iter":0,"salt":""}},` + good + `}`,
		"bad fingerprint":  `{"kdf":null,` + good + `,"fingerprint":"xx"}`,
	} {
		if _, err := Parse([]byte(text)); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// A plain key of the wrong length is refused at Decrypt.
	c, err := Parse([]byte(`{"kdf":null,` + good + `}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Decrypt(nil); !errors.Is(err, ErrFormat) {
		t.Errorf("short plain key: %v", err)
	}
	// Missing kdf is read as null (serde's Option).
	if c, err := Parse([]byte(`{` + good + `}`)); err != nil || c.Encrypted() {
		t.Errorf("missing kdf: %v", err)
	}
}

func TestReadPasswordFile(t *testing.T) {
	dir := t.TempDir()
	for content, want := range map[string]string{
		"secret\n":            "secret",
		"secret\r\nsecond\n":  "secret",
		"secret":              "secret",
		"":                    "",
		" spaces kept \nrest": " spaces kept ",
	} {
		p := filepath.Join(dir, "pw")
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := ReadPasswordFile(p)
		if err != nil || string(got) != want {
			t.Errorf("%q: %q, %v", content, got, err)
		}
	}
	if _, err := ReadPasswordFile(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing file: no error")
	}
}

func TestDefaultKDF(t *testing.T) {
	for _, name := range []string{Scrypt, PBKDF2} {
		k, err := DefaultKDF(name)
		if err != nil || k.check() != nil || len(k.Salt) != 32 {
			t.Errorf("%s: %+v %v", name, k, err)
		}
	}
	if _, err := DefaultKDF("md5"); !errors.Is(err, ErrFormat) {
		t.Error(err)
	}
}
