package integration

// The reference model: what the mount must show, computed from the
// datastore on disk without the datastore or fs packages.

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"

	"pbsfs/manifest"
)

var (
	safeIDRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._\-]*$`)
	timeRE   = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$`)
)

// level is the kind of a mount-relative path.
type level int

const (
	lvNamespace level = iota // a namespace directory (the root is one)
	lvNSList                 // the ns/ directory listing child namespaces
	lvType                   // vm/, ct/, host/
	lvGroup
	lvSnapshot
	lvFile
	lvArchive // a pxar archive's directory (NAME.pxar in a snapshot); what is inside is not modelled here
	lvInvalid
)

func classify(rel string) level {
	lv := lvNamespace
	if rel == "" {
		return lv
	}
	for _, c := range strings.Split(filepath.ToSlash(rel), "/") {
		switch lv {
		case lvNamespace:
			switch c {
			case "ns":
				lv = lvNSList
			case "vm", "ct", "host":
				lv = lvType
			default:
				return lvInvalid
			}
		case lvNSList:
			lv = lvNamespace
		case lvType:
			lv = lvGroup
		case lvGroup:
			if timeRE.MatchString(c) {
				lv = lvSnapshot
			} else {
				lv = lvFile
			}
		case lvSnapshot:
			lv = lvFile
			if strings.HasSuffix(c, ".pxar") {
				lv = lvArchive
			}
		default:
			return lvInvalid
		}
	}
	return lv
}

func isDir(p string) bool {
	fi, err := os.Lstat(p)
	return err == nil && fi.IsDir()
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// subdirs lists the subdirectories of p whose names match re.
func subdirs(t *testing.T, p string, re *regexp.Regexp) []string {
	t.Helper()
	ents, err := os.ReadDir(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() && re.MatchString(e.Name()) {
			out = append(out, e.Name())
		}
	}
	return out
}

// expectedNames is the sorted listing the mount must show for the
// mount-relative directory rel.
func expectedNames(t *testing.T, store, rel string) []string {
	t.Helper()
	p := filepath.Join(store, rel)
	var names []string
	switch classify(rel) {
	case lvNamespace:
		for _, typ := range []string{"vm", "ct", "host"} {
			if isDir(filepath.Join(p, typ)) {
				names = append(names, typ)
			}
		}
		if len(subdirs(t, filepath.Join(p, "ns"), safeIDRE)) > 0 {
			names = append(names, "ns")
		}
	case lvNSList, lvType:
		names = subdirs(t, p, safeIDRE)
	case lvGroup:
		names = append(names, "notes")
		if exists(filepath.Join(p, "owner")) {
			names = append(names, "owner")
		}
		names = append(names, subdirs(t, p, timeRE)...)
	case lvSnapshot:
		if exists(filepath.Join(p, "index.json.blob")) {
			names = append(names, "manifest.json", "notes")
			for name := range expectedArchives(t, store, rel) {
				names = append(names, name)
			}
		}
	default:
		t.Fatalf("expectedNames(%q): not a directory of the mount", rel)
	}
	sort.Strings(names)
	return names
}

// expectedTree maps every directory of the mount (mount-relative, "" for
// the root) to its expected listing, pxar archives' directories excepted
// (pxar_test.go checks what they hold).
func expectedTree(t *testing.T, store string) map[string][]string {
	t.Helper()
	tree := map[string][]string{}
	var walk func(rel string)
	walk = func(rel string) {
		names := expectedNames(t, store, rel)
		tree[rel] = names
		for _, n := range names {
			child := filepath.Join(rel, n)
			if lv := classify(child); lv != lvFile && lv != lvArchive {
				walk(child)
			}
		}
	}
	walk("")
	return tree
}

// loadManifest decodes a snapshot's index.json.blob from the store.
func loadManifest(t *testing.T, store, snapRel string) (*manifest.Manifest, []byte) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(store, snapRel, "index.json.blob"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := manifest.Load(raw)
	if err != nil {
		t.Fatalf("%s: %v", snapRel, err)
	}
	return m, raw
}

// expectedContent is what reading the mount-relative file rel must return.
func expectedContent(t *testing.T, store, rel string) []byte {
	t.Helper()
	dir, name := filepath.Split(rel)
	dir = strings.TrimSuffix(dir, "/")
	switch classify(dir) {
	case lvGroup:
		switch name {
		case "owner":
			b, err := os.ReadFile(filepath.Join(store, rel))
			if err != nil {
				t.Fatal(err)
			}
			return b
		case "notes":
			b, err := os.ReadFile(filepath.Join(store, rel))
			if errors.Is(err, fs.ErrNotExist) {
				return []byte{}
			}
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
	case lvSnapshot:
		m, _ := loadManifest(t, store, dir)
		switch name {
		case "notes":
			return []byte(m.Notes())
		case "manifest.json":
			return append(m.MarshalPretty(), '\n')
		}
		if a, ok := expectedArchives(t, store, dir)[name]; ok {
			if a.encrypted {
				t.Fatalf("expectedContent(%q): encrypted; the mount has no key", rel)
			}
			a.load(t)
			if a.size > wholeFileLimit {
				t.Fatalf("expectedContent(%q): %d bytes; compare ranges (checkFile)", rel, a.size)
			}
			return a.readAt(t, 0, a.size)
		}
	}
	t.Fatalf("expectedContent(%q): not a file of the mount", rel)
	return nil
}

// readNames lists a directory, sorted.
func readNames(p string) ([]string, error) {
	ents, err := os.ReadDir(p)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(ents))
	for i, e := range ents {
		names[i] = e.Name()
	}
	sort.Strings(names)
	return names, nil
}

// treeDigest describes every file and directory below root — path, type
// and mode, owner, size, mtime and content hash (not atime) — so that two
// digests are equal only if nothing was changed.
func treeDigest(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		desc := fmt.Sprintf("%v uid=%d gid=%d size=%d mtime=%d.%09d ino=%d",
			fi.Mode(), st.Uid, st.Gid, fi.Size(), st.Mtim.Sec, st.Mtim.Nsec, st.Ino)
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			desc += " sha256=" + hex.EncodeToString(sum[:])
		}
		rel, _ := filepath.Rel(root, p)
		out[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// diffDigests reports the differences between two tree digests.
func diffDigests(t *testing.T, before, after map[string]string) {
	t.Helper()
	for p, d := range before {
		if a, ok := after[p]; !ok {
			t.Errorf("removed: %s", p)
		} else if a != d {
			t.Errorf("changed: %s\n  before %s\n  after  %s", p, d, a)
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			t.Errorf("added: %s", p)
		}
	}
}
