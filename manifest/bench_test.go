package manifest

import (
	"encoding/json"
	"strings"
	"testing"
)

// realisticManifest is a VM backup as PBS writes it: six files, upload
// statistics, a verify state, a key fingerprint, a signature and 200 bytes
// of notes.
func realisticManifest(tb testing.TB) *Manifest {
	tb.Helper()
	files := []FileInfo{
		{Filename: "qemu-server.conf.blob", CryptMode: "sign-only", Size: 582, Csum: strings.Repeat("3f", 32)},
		{Filename: "fw.conf.blob", CryptMode: "sign-only", Size: 211, Csum: strings.Repeat("a0", 32)},
		{Filename: "drive-efidisk0.img.fidx", CryptMode: "sign-only", Size: 540672, Csum: strings.Repeat("17", 32)},
		{Filename: "drive-tpmstate0-backup.img.fidx", CryptMode: "sign-only", Size: 4194304, Csum: strings.Repeat("c2", 32)},
		{Filename: "drive-scsi0.img.fidx", CryptMode: "sign-only", Size: 34359738368, Csum: strings.Repeat("9b", 32)},
		{Filename: "drive-scsi1.img.fidx", CryptMode: "sign-only", Size: 1099511627776, Csum: strings.Repeat("e4", 32)},
	}
	m, err := New("vm", "100", 1717597321, files)
	if err != nil {
		tb.Fatal(err)
	}
	u := m.Unprotected()
	must := func(err error) {
		if err != nil {
			tb.Fatal(err)
		}
	}
	must(u.Set("chunk_upload_stats", json.RawMessage(`{"compressed_size":8123456789,"count":9876,"duplicates":1234,"size":41234567890}`)))
	must(u.Set("verify_state", json.RawMessage(`{"state":"ok","upid":"UPID:pbs:00001A2B:0001E240:00000003:66604A9B:verificationjob:store1\\x3av-1a2b3c4d-5e6f:root@pam:"}`)))
	must(u.SetNotes(benchNotes(0)))
	must(m.Sign(DeriveIDKey([]byte("0123456789abcdef0123456789abcdef"))))
	return m
}

// benchNotes returns 200 bytes of multi-line notes with a few characters that
// need escaping.
func benchNotes(i int) string {
	s := "Pre-upgrade snapshot #" + itoa(i) + "\nkernel 6.8 -> 6.11, \"do not delete\" until 2025-01-01\n" +
		"owner: ops <ops@example.com>\tticket: OPS-1234\n"
	for len(s) < 200 {
		s += "lorem ipsum dolor sit amet "
	}
	return s[:200]
}

func BenchmarkMarshalPretty(b *testing.B) {
	m := realisticManifest(b)
	b.SetBytes(int64(len(m.MarshalPretty())))
	b.ReportAllocs()
	for b.Loop() {
		m.MarshalPretty()
	}
}

func BenchmarkParse(b *testing.B) {
	text := realisticManifest(b).MarshalPretty()
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(text); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLoad(b *testing.B) {
	raw, err := realisticManifest(b).EncodeBlob()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Load(raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeBlob(b *testing.B) {
	m := realisticManifest(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.EncodeBlob(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUpdateBlob is one notes save as the datastore does it: load,
// set notes, encode, and the re-load check.
func BenchmarkUpdateBlob(b *testing.B) {
	raw, err := realisticManifest(b).EncodeBlob()
	if err != nil {
		b.Fatal(err)
	}
	notes := [2]string{benchNotes(1), benchNotes(2)}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		out, _, err := UpdateBlob(raw, func(u *Unprotected) error { return u.SetNotes(notes[i&1]) })
		if err != nil {
			b.Fatal(err)
		}
		raw = out
		i++
	}
}

func BenchmarkUpdateBlobParallel(b *testing.B) {
	raw, err := realisticManifest(b).EncodeBlob()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		notes := benchNotes(3)
		for pb.Next() {
			if _, _, err := UpdateBlob(raw, func(u *Unprotected) error { return u.SetNotes(notes) }); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func TestPrettySizeEstimate(t *testing.T) {
	// The estimate should cover the output (one allocation) without being
	// wasteful.
	ms := append(randomManifests(t, 100, true), realisticManifest(t))
	for i, m := range ms {
		est, got := m.prettySize(), len(m.MarshalPretty())
		if est < got && got-est > got/8 {
			t.Errorf("manifest %d: estimate %d for %d bytes", i, est, got)
		}
		if est > 2*got+512 {
			t.Errorf("manifest %d: estimate %d for only %d bytes", i, est, got)
		}
	}
	m := realisticManifest(t)
	if est, got := m.prettySize(), len(m.MarshalPretty()); est < got {
		t.Errorf("realistic manifest: estimate %d < %d bytes", est, got)
	}
	if a := testing.AllocsPerRun(100, func() { m.MarshalPretty() }); a != 1 {
		t.Errorf("MarshalPretty allocates %v times, want 1", a)
	}
}
