package datastore

import (
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"pbsfs/lock"
)

// The PBS regexes (pbs-api-types), checked with Go's regexp engine as an
// independent oracle for the hand-written validators.
var (
	safeIDRE     = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._\-]*$`)
	backupTimeRE = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$`)
	backupTypeRE = regexp.MustCompile(`^(?:host|vm|ct)$`)
)

// FuzzNames feeds arbitrary names to the validators every path of the
// mount goes through (a namespace given as "a/b", a backup type, a backup
// id, a snapshot time) and checks that
//
//   - ValidSafeID, ValidBackupID, ValidBackupType and ValidBackupTime agree
//     with PBS's regexes;
//   - NS.Validate accepts exactly the namespaces of at most 7 SAFE_ID
//     components whose joined name is at most 256 bytes;
//   - whatever passes Snapshot.Validate maps to datastore paths and lock
//     paths (all three schemes) that are clean, relative to their root,
//     never contain "..", "." or an empty component, and have exactly the
//     expected shape — so no accepted name can make pbsfs touch anything
//     outside the datastore or the lock directory.
//
// Seed corpus: testdata/fuzz/FuzzNames.
func FuzzNames(f *testing.F) {
	f.Add("", "vm", "100", "2024-06-05T14:22:01Z")
	f.Add("prod/db", "ct", "my-host.example", "1970-01-01T00:00:01Z")
	f.Add("..", "vm", "..", "2024-06-05T14:22:01Z")
	f.Add("a//b", "host", ".hidden", "2024-06-05T14:22:01Z\n")
	f.Add("a/b/c/d/e/f/g/h", "VM", "-x", "2024-6-5T14:22:01Z")
	f.Add(strings.Repeat("x", 300), "vm", "a/b", "２０２４-06-05T14:22:01Z")
	f.Add("ns", "vm", "a\x00b", "9999-99-99T99:99:99Z")
	f.Fuzz(func(t *testing.T, nsStr, typ, id, tm string) {
		for _, s := range []string{nsStr, typ, id, tm} {
			if got, want := ValidSafeID(s), safeIDRE.MatchString(s); got != want {
				t.Errorf("ValidSafeID(%q) = %v, regex says %v", s, got, want)
			}
			if got, want := ValidBackupID(s), safeIDRE.MatchString(s); got != want {
				t.Errorf("ValidBackupID(%q) = %v, regex says %v", s, got, want)
			}
			if got, want := ValidBackupTime(s), backupTimeRE.MatchString(s); got != want {
				t.Errorf("ValidBackupTime(%q) = %v, regex says %v", s, got, want)
			}
			if got, want := ValidBackupType(s), backupTypeRE.MatchString(s); got != want {
				t.Errorf("ValidBackupType(%q) = %v, regex says %v", s, got, want)
			}
		}

		var ns NS
		if nsStr != "" {
			ns = strings.Split(nsStr, "/")
		}
		nsOK := len(ns) <= MaxNamespaceDepth && len(nsStr) <= MaxNamespaceLength
		for _, c := range ns {
			nsOK = nsOK && safeIDRE.MatchString(c)
		}
		if err := ns.Validate(); (err == nil) != nsOK {
			t.Fatalf("NS%q.Validate() = %v, want ok=%v", []string(ns), err, nsOK)
		}
		if nsOK && ns.String() != nsStr {
			t.Errorf("NS%q.String() = %q", []string(ns), ns.String())
		}

		sn := Snapshot{Group: Group{NS: ns, Type: typ, ID: id}, Time: tm}
		snOK := nsOK && backupTypeRE.MatchString(typ) && safeIDRE.MatchString(id) && backupTimeRE.MatchString(tm)
		if err := sn.Validate(); (err == nil) != snOK {
			t.Fatalf("%#v.Validate() = %v, want ok=%v", sn, err, snOK)
		}
		if !snOK {
			return
		}

		// The datastore path: [ns/<c>/]...<type>/<id>/<time>.
		var want []string
		for _, c := range ns {
			want = append(want, "ns", c)
		}
		want = append(want, typ, id, tm)
		checkRel(t, "Snapshot.Dir", sn.Dir(), want)
		checkRel(t, "Group.Dir", sn.Group.Dir(), want[:len(want)-1])
		checkRel(t, "NS.Dir", ns.Dir(), want[:len(want)-3])
		checkRel(t, "manifest", path.Join(sn.Dir(), ManifestName), append(want, ManifestName))

		// Lock paths stay below their roots in every scheme.
		const base, dir = "/srv/store", "/run/locks"
		for _, scheme := range []lock.Scheme{lock.Run, lock.Dirs, lock.Legacy} {
			l, err := lock.New(lock.Config{Scheme: scheme, Dir: dir, Store: "store", Base: base, UID: -1, GID: -1})
			if err != nil {
				t.Fatal(err)
			}
			root := base
			if scheme != lock.Legacy {
				root = dir + "/store"
			}
			lp := sn.lockPath()
			checkBelow(t, string(scheme)+" manifest lock", l.ManifestLockPath(lp), root)
			if scheme == lock.Run {
				checkBelow(t, "run snapshot lock", l.SnapshotLockPath(lp), root)
				checkBelow(t, "run group lock", l.GroupLockPath(sn.Group.lockPath()), root)
			} else {
				checkRel(t, string(scheme)+" snapshot lock", mustRel(t, base, l.SnapshotLockPath(lp)), want)
				checkRel(t, string(scheme)+" group lock", mustRel(t, base, l.GroupLockPath(sn.Group.lockPath())), want[:len(want)-1])
			}
		}
	})
}

// checkRel checks that rel is a clean relative path made of exactly the
// components want.
func checkRel(t *testing.T, what, rel string, want []string) {
	t.Helper()
	if len(want) == 0 {
		if rel != "" {
			t.Errorf("%s = %q, want empty", what, rel)
		}
		return
	}
	if rel != strings.Join(want, "/") || path.Clean(rel) != rel || path.IsAbs(rel) {
		t.Errorf("%s = %q, want %q", what, rel, strings.Join(want, "/"))
	}
	for _, c := range strings.Split(rel, "/") {
		if c == "" || c == "." || c == ".." {
			t.Errorf("%s = %q has component %q", what, rel, c)
		}
	}
}

// checkBelow checks that p is a clean path strictly below root with no
// "." or ".." component.
func checkBelow(t *testing.T, what, p, root string) {
	t.Helper()
	if filepath.Clean(p) != p || !strings.HasPrefix(p, root+"/") {
		t.Errorf("%s = %q, not a clean path below %s", what, p, root)
		return
	}
	for _, c := range strings.Split(strings.TrimPrefix(p, root+"/"), "/") {
		if c == "" || c == "." || c == ".." {
			t.Errorf("%s = %q has component %q", what, p, c)
		}
	}
}

func mustRel(t *testing.T, root, p string) string {
	t.Helper()
	rel, err := filepath.Rel(root, p)
	if err != nil {
		t.Fatalf("%s not relative to %s: %v", p, root, err)
	}
	return rel
}
