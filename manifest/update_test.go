package manifest

import (
	"errors"
	"testing"
)

// TestUpdateBlobRefusesChangedSignedPart hands UpdateBlob's core a faulty
// encoder that alters one part of the manifest besides unprotected; each
// alteration must be refused with ErrSignedChanged, and an encoder that
// only touches unprotected must be accepted.
func TestUpdateBlobRefusesChangedSignedPart(t *testing.T) {
	m, err := Parse([]byte(goldenInput))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Sign(DeriveIDKey(make([]byte, 32))); err != nil {
		t.Fatal(err)
	}
	raw, err := m.EncodeBlob()
	if err != nil {
		t.Fatal(err)
	}
	faults := []struct {
		name  string
		alter func(*Manifest)
		want  error
	}{
		{"unprotected only", func(c *Manifest) { c.unprot.members = nil }, nil},
		{"backup-time", func(c *Manifest) { c.backupTime++ }, ErrSignedChanged},
		{"file size", func(c *Manifest) { c.files[1].Size-- }, ErrSignedChanged},
		{"signature", func(c *Manifest) { c.signature = "00" + c.signature[2:] }, ErrSignedChanged},
		{"signature dropped", func(c *Manifest) { c.signed = false }, ErrSignedChanged},
		{"unknown top-level key", func(c *Manifest) { c.extra = c.extra[1:] }, ErrSignedChanged},
		{"unknown file key", func(c *Manifest) { c.files[0].extra = nil }, ErrSignedChanged},
	}
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			encode := func(m *Manifest) ([]byte, error) {
				c := m.Clone()
				f.alter(c)
				return c.EncodeBlob()
			}
			out, m2, err := updateBlob(raw, func(u *Unprotected) error { return u.SetNotes("new") }, encode)
			if f.want == nil {
				if err != nil || out == nil || m2 == nil {
					t.Fatalf("harmless encoder refused: %v", err)
				}
				return
			}
			if !errors.Is(err, f.want) || out != nil || m2 != nil {
				t.Fatalf("got (%d bytes, %v), want %v and no output", len(out), err, f.want)
			}
			t.Logf("refused: %v", err)
		})
	}
}
