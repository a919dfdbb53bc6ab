package lock

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

const (
	tm   = "2024-06-05T14:22:01Z"
	tmEs = `2024\x2d06\x2d05T14\x3a22\x3a01Z`
)

func mustNew(t *testing.T, cfg Config) *Locker {
	t.Helper()
	l, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	return l
}

// TestSpecExamples checks the §6.4 example table (Run) and the §6.2/§6.3
// paths of the other schemes.
func TestSpecExamples(t *testing.T) {
	run := mustNew(t, Config{Scheme: Run, Store: "store1", UID: -1, GID: -1})
	group := Path{Rel: "vm/100"}
	snap := Path{Rel: "vm/100/" + tm}
	nsSnap := Path{NS: []string{"a", "b"}, Rel: "host/my-host.example/" + tm}
	for _, c := range []struct{ name, got, want string }{
		{"group", run.GroupLockPath(group), `/run/proxmox-backup/locks/store1/vm-100`},
		{"snapshot", run.SnapshotLockPath(snap), `/run/proxmox-backup/locks/store1/vm-100-` + tmEs},
		{"manifest", run.ManifestLockPath(snap), `/run/proxmox-backup/locks/store1/vm-100-` + tmEs + `-.index.json.lck`},
		{"ns snapshot", run.SnapshotLockPath(nsSnap), `/run/proxmox-backup/locks/store1/a:b/host-my\x2dhost.example-` + tmEs},
		{"ns group", run.GroupLockPath(Path{NS: []string{"a", "b"}, Rel: "host/my-host.example"}), `/run/proxmox-backup/locks/store1/a:b/host-my\x2dhost.example`},
	} {
		if c.got != c.want {
			t.Errorf("run %s: got %s, want %s", c.name, c.got, c.want)
		}
	}
	// The form quoted verbatim in PBS commit ebf5d2131's message.
	aaaa := mustNew(t, Config{Scheme: Run, Store: "aaaa", UID: -1, GID: -1})
	if got, want := aaaa.SnapshotLockPath(Path{Rel: "host/28/2026-04-29T14:38:19Z"}),
		`/run/proxmox-backup/locks/aaaa/host-28-2026\x2d04\x2d29T14\x3a38\x3a19Z`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}

	dirs := mustNew(t, Config{Scheme: Dirs, Store: "store1", Base: "/ds", UID: -1, GID: -1})
	for _, c := range []struct{ name, got, want string }{
		{"group", dirs.GroupLockPath(group), "/ds/vm/100"},
		{"snapshot", dirs.SnapshotLockPath(snap), "/ds/vm/100/" + tm},
		{"manifest", dirs.ManifestLockPath(snap), "/run/proxmox-backup/locks/store1/vm/100/" + tm + "/" + tm + ".index.json.lck"},
		{"ns snapshot", dirs.SnapshotLockPath(nsSnap), "/ds/ns/a/ns/b/host/my-host.example/" + tm},
		{"ns manifest", dirs.ManifestLockPath(nsSnap), "/run/proxmox-backup/locks/store1/ns/a/ns/b/host/my-host.example/" + tm + "/" + tm + ".index.json.lck"},
	} {
		if c.got != c.want {
			t.Errorf("dirs %s: got %s, want %s", c.name, c.got, c.want)
		}
	}

	legacy := mustNew(t, Config{Scheme: Legacy, Base: "/ds", UID: -1, GID: -1})
	for _, c := range []struct{ name, got, want string }{
		{"group", legacy.GroupLockPath(group), "/ds/vm/100"},
		{"snapshot", legacy.SnapshotLockPath(snap), "/ds/vm/100/" + tm},
		{"manifest", legacy.ManifestLockPath(snap), "/ds/vm/100/" + tm + "/.index.json.lck"},
	} {
		if c.got != c.want {
			t.Errorf("legacy %s: got %s, want %s", c.name, c.got, c.want)
		}
	}
}

func TestEscapeUnitPath(t *testing.T) {
	for in, want := range map[string]string{
		"":                      "-",
		"/":                     "-",
		"//vm/100":              "vm-100",
		"vm/100":                "vm-100",
		"a-b":                   `a\x2db`,
		"a:b":                   `a\x3ab`,
		".hidden/.x":            `\x2ehidden-.x`,
		"x.y_Z09":               "x.y_Z09",
		"sp ace\\\x01\xff":      `sp\x20ace\x5c\x01\xff`,
		"trailing/":             "trailing-",
		"vm/100/" + tm + "/.ix": "vm-100-" + tmEs + "-.ix",
	} {
		if got := EscapeUnitPath(in); got != want {
			t.Errorf("EscapeUnitPath(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestHashedRule: escaped names of 255 bytes or more go to hashed/ with the
// first and last 80 escaped bytes and the SHA-256 of the raw rel path.
func TestHashedRule(t *testing.T) {
	// "vm/" + id: escaped length 3 + len(id) for an id of [a-z].
	mk := func(n int) string { return "vm/" + strings.Repeat("a", n-3) }

	if rel := mk(254); RunLockName(nil, rel) != "vm-"+strings.Repeat("a", 251) {
		t.Errorf("254-byte name must not be hashed: %s", RunLockName(nil, rel))
	}
	rel := mk(255)
	enc := EscapeUnitPath(rel)
	if len(enc) != 255 {
		t.Fatalf("setup: escaped length %d", len(enc))
	}
	sum := sha256.Sum256([]byte(rel))
	want := "hashed/" + enc[:80] + "..." + enc[175:] + "-" + hex.EncodeToString(sum[:])
	if got := RunLockName(nil, rel); got != want {
		t.Errorf("255-byte name: got %s, want %s", got, want)
	}
	// Escaping counts: 100 '-' in the id escape to 400 bytes; the hash is
	// over the unescaped path; the namespace folder stays in front.
	id := strings.Repeat("-", 100)
	rel = "ct/" + id + "/" + tm
	enc = EscapeUnitPath(rel)
	sum = sha256.Sum256([]byte(rel))
	want = "n1:n2/hashed/" + enc[:80] + "..." + enc[len(enc)-80:] + "-" + hex.EncodeToString(sum[:])
	if got := RunLockName([]string{"n1", "n2"}, rel); got != want {
		t.Errorf("escaped long name: got %s, want %s", got, want)
	}
	if !strings.HasSuffix(enc, tmEs) || strings.Contains(want[len("n1:n2/hashed/"):], "/") {
		t.Errorf("unexpected hashed name %s", want)
	}
	l := mustNew(t, Config{Scheme: Run, Dir: "/L", Store: "s", UID: -1, GID: -1})
	if got := l.SnapshotLockPath(Path{NS: []string{"n1", "n2"}, Rel: rel}); got != "/L/s/"+want {
		t.Errorf("SnapshotLockPath: got %s", got)
	}
}

func TestPathValidation(t *testing.T) {
	dir := t.TempDir()
	l := mustNew(t, Config{Scheme: Run, Dir: dir, Store: "s", UID: -1, GID: -1})
	for _, p := range []Path{
		{Rel: "vm"}, {Rel: "vm/100/x/y"}, {Rel: "vm/../x"}, {Rel: "/vm/100"}, {Rel: "vm//100"},
		{NS: []string{"a/b"}, Rel: "vm/100"}, {NS: []string{".."}, Rel: "vm/100"}, {NS: []string{""}, Rel: "vm/100"},
	} {
		if lk, err := l.LockGroup(p); err == nil {
			lk.Unlock()
			t.Errorf("LockGroup(%+v) accepted an invalid path", p)
		}
	}
	if _, err := l.LockSnapshot(Path{Rel: "vm/100"}, false); err == nil {
		t.Error("LockSnapshot accepted a group path")
	}
	if _, err := l.LockManifest(context.Background(), Path{Rel: "vm/100"}, 0); err == nil {
		t.Error("LockManifest accepted a group path")
	}
}

func TestNewValidation(t *testing.T) {
	for _, cfg := range []Config{
		{Scheme: "auto", Store: "s"},
		{Scheme: Run},
		{Scheme: Run, Store: "a/b"},
		{Scheme: Run, Store: "s", Dir: "relative"},
		{Scheme: Dirs, Store: "s"},
		{Scheme: Legacy},
		{Scheme: Run, Store: "s", UID: -2},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
	l := mustNew(t, Config{Scheme: Run, Store: "s", UID: -1, GID: -1})
	if l.Config().Dir != DefaultDir || l.Scheme() != Run || !l.RemovesEmptyGroups() {
		t.Errorf("unexpected defaults %+v", l.Config())
	}
	for _, s := range []Scheme{Dirs, Legacy} {
		if mustNew(t, Config{Scheme: s, Store: "s", Base: "/x", UID: -1, GID: -1}).RemovesEmptyGroups() {
			t.Errorf("%s must not remove empty groups", s)
		}
	}
	if _, err := ParseScheme("bogus"); err == nil {
		t.Error("ParseScheme accepted bogus")
	}
	var nilLock *Lock
	if err := nilLock.Unlock(); err != nil {
		t.Error("nil Unlock")
	}
}
