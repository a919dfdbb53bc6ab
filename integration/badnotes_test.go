package integration

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"pbsfs/datastore"
)

// TestNotesEdgeCases writes unusual notes through the mount, to a snapshot
// (stored in the manifest) and to a group (a plain file), and checks them
// against fs/README.md: empty notes are stored as "" (not deleted, as
// PBS's set_notes does), 1 MiB of multi-line UTF-8 round-trips byte for
// byte, NUL bytes are valid UTF-8 and round-trip too, and invalid UTF-8 —
// in the middle, cut at the end, overlong, a surrogate — and notes larger
// than 16 MiB are refused (EILSEQ, EFBIG) without changing anything.
func TestNotesEdgeCases(t *testing.T) {
	t.Parallel()
	store := newStore(t)
	m := startMount(t, store)
	const snap = "ns/prod/vm/300/2024-05-31T22:00:02Z"
	const group = "ns/prod/vm/300"
	blob := filepath.Join(store, snap, "index.json.blob")
	groupFile := filepath.Join(store, group, "notes")

	// onDisk reads back what the store holds for rel's notes.
	onDisk := func(rel string) (string, bool) {
		t.Helper()
		if rel == group {
			b, err := os.ReadFile(groupFile)
			if err != nil {
				t.Fatal(err)
			}
			return string(b), true
		}
		mm, _ := loadManifest(t, store, snap)
		_, present := mm.Unprotected().Get("notes")
		return mm.Notes(), present
	}

	var mib strings.Builder
	for i := 0; mib.Len() < 1<<20; i++ {
		mib.WriteString("Zeile ")
		mib.WriteString(strings.Repeat("ü✓", i%7))
		mib.WriteString(" line\n")
	}
	oneMiB := mib.String()[:1<<20-1] + "\n"

	accepted := []struct{ name, text string }{
		{"empty", ""},
		{"1 MiB", oneMiB},
		{"NUL bytes", "a\x00b\x00\x00c\n\x00"},
		{"only NUL", "\x00"},
		{"control characters", "\t\r\x01\x1f\x7f\u2028\u2029\n"},
		{"4-byte characters", "💾 Backup 🦀\n"},
	}
	refused := []struct {
		name, text string
		errno      syscall.Errno
	}{
		{"invalid UTF-8 in the middle of 1 MiB", oneMiB[:1<<19] + "\xff" + oneMiB[1<<19:], syscall.EILSEQ},
		{"character cut at the end", "Grüße\xc3", syscall.EILSEQ},
		{"overlong encoding", "\xc0\xaf", syscall.EILSEQ},
		{"surrogate", "\xed\xa0\x80", syscall.EILSEQ},
		{"Latin-1", "Gr\xfc\xdfe\n", syscall.EILSEQ},
		{"over 16 MiB", strings.Repeat("x", datastore.MaxNotesSize+1), syscall.EFBIG},
	}
	for _, rel := range []string{snap, group} {
		notes := m.path(rel, "notes")
		for _, c := range accepted {
			if err := os.WriteFile(notes, []byte(c.text), 0o644); err != nil {
				t.Errorf("%s: write %s: %v", rel, c.name, err)
				continue
			}
			// An empty text (a truncation nothing was written after) is
			// committed when the last descriptor goes: the RELEASE, which
			// the kernel sends after close(2) returned.
			eventually(t, rel+": "+c.name+" on disk", func() (bool, string) {
				got, present := onDisk(rel)
				return got == c.text && present, fmt.Sprintf("%d bytes (present %v), want %d", len(got), present, len(c.text))
			})
			if b, err := os.ReadFile(notes); err != nil || string(b) != c.text {
				t.Errorf("%s: %s read back: %d bytes, %v; want %d", rel, c.name, len(b), err, len(c.text))
			}
			if fi, err := os.Stat(notes); err != nil || fi.Size() != int64(len(c.text)) {
				t.Errorf("%s: %s: stat %v, want size %d", rel, c.name, err, len(c.text))
			}
			if rel == snap {
				mj, err := os.ReadFile(m.path(rel, "manifest.json"))
				if err != nil || !bytes.Equal(mj, expectedContent(t, store, rel+"/manifest.json")) {
					t.Errorf("%s: %s: manifest.json does not show it (%v)", rel, c.name, err)
				}
				if c.name == "NUL bytes" && !bytes.Contains(mj, []byte(`"a\u0000b\u0000\u0000c\n\u0000"`)) {
					t.Errorf("%s: NUL bytes not escaped as \\u0000 in manifest.json", rel)
				}
			}
		}

		// Refused writes change nothing, neither on disk nor in the mount.
		base := "kept\n"
		if err := os.WriteFile(notes, []byte(base), 0o644); err != nil {
			t.Fatal(err)
		}
		rawBefore, _ := os.ReadFile(blob)
		groupBefore, _ := os.ReadFile(groupFile)
		for _, c := range refused {
			if c.errno == syscall.EFBIG && rel == group {
				continue // the same code path; 16 MiB through the mount costs
			}
			err := os.WriteFile(notes, []byte(c.text), 0o644)
			wantErrno(t, rel+": write "+c.name, err, c.errno)
			if c.errno == syscall.EFBIG {
				if got, _ := onDisk(rel); got != base {
					t.Errorf("%s: %s refused, yet the notes on disk are %.40q", rel, c.name, got)
				}
				continue
			}
			f, err := os.OpenFile(notes, os.O_WRONLY|os.O_APPEND, 0)
			if err == nil {
				_, err = f.WriteString(c.text)
				if cerr := f.Close(); err == nil {
					err = cerr
				}
			}
			wantErrno(t, rel+": append "+c.name, err, c.errno)
			if got, _ := onDisk(rel); got != base {
				t.Errorf("%s: %s refused, yet the notes on disk are %.40q", rel, c.name, got)
			}
		}
		if rel == snap {
			if raw, _ := os.ReadFile(blob); !bytes.Equal(raw, rawBefore) {
				t.Errorf("%s: manifest not byte-identical after the refused writes", rel)
			}
		} else if g, _ := os.ReadFile(groupFile); !bytes.Equal(g, groupBefore) {
			t.Errorf("%s: group notes not byte-identical after the refused writes", rel)
		}
		if got, err := os.ReadFile(notes); err != nil || string(got) != base {
			t.Errorf("%s: mount shows %.40q after the refused writes, %v", rel, got, err)
		}
		// truncate -s cutting a character in two.
		if err := os.WriteFile(notes, []byte("Grüße\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		wantErrno(t, rel+": truncate inside a character", os.Truncate(notes, 3), syscall.EILSEQ)
		if got, _ := onDisk(rel); got != "Grüße\n" {
			t.Errorf("%s: notes after a refused truncate: %q", rel, got)
		}
	}
}
