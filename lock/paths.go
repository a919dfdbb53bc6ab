package lock

import (
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
	"strings"
)

// maxEscapedName: an escaped lock file name must be shorter than this, else
// the "hashed/" form is used (PBS lock_file_path_helper).
const maxEscapedName = 255

// hashedKeep is how many bytes of the escaped name the hashed form keeps at
// each end.
const hashedKeep = 80

// GroupLockPath returns the path the group lock is taken on: the lock file
// (Run) or the group directory (Dirs, Legacy).
func (l *Locker) GroupLockPath(p Path) string {
	if l.cfg.Scheme == Run {
		return l.runLockPath(p.NS, p.Rel)
	}
	return l.objectDir(p)
}

// SnapshotLockPath returns the path the snapshot lock is taken on: the lock
// file (Run) or the snapshot directory (Dirs, Legacy).
func (l *Locker) SnapshotLockPath(p Path) string {
	if l.cfg.Scheme == Run {
		return l.runLockPath(p.NS, p.Rel)
	}
	return l.objectDir(p)
}

// ManifestLockPath returns the manifest lock file of a snapshot:
//
//	Run:    <Dir>/<store>/[a:b/]escape(<type>/<id>/<time>/.index.json.lck)
//	Dirs:   <Dir>/<store>/[ns/a/ns/b/]<type>/<id>/<time>/<time>.index.json.lck
//	Legacy: <Base>/[ns/a/ns/b/]<type>/<id>/<time>/.index.json.lck
func (l *Locker) ManifestLockPath(p Path) string {
	switch l.cfg.Scheme {
	case Run:
		return l.runLockPath(p.NS, p.Rel+"/"+manifestLockName)
	case Dirs:
		d := filepath.Join(l.cfg.Dir, l.cfg.Store, NSDir(p.NS), p.Rel)
		return filepath.Join(d, filepath.Base(p.Rel)+manifestLockName)
	default:
		return filepath.Join(l.objectDir(p), manifestLockName)
	}
}

// objectDir is the object's directory inside the datastore.
func (l *Locker) objectDir(p Path) string {
	return filepath.Join(l.cfg.Base, NSDir(p.NS), p.Rel)
}

// runLockPath is <Dir>/<store>/ + RunLockName(ns, rel).
func (l *Locker) runLockPath(ns []string, rel string) string {
	return filepath.Join(l.cfg.Dir, l.cfg.Store, RunLockName(ns, rel))
}

// RunLockName returns the lock file path below <Dir>/<store>/ in the Run
// scheme for an object at rel (relative to its namespace, e.g.
// "vm/100/2024-06-05T14:22:01Z" or ".../.index.json.lck"): the namespace
// folder (components joined by ':', none for the root namespace), then
// EscapeUnitPath(rel) if that is shorter than 255 bytes, else
// "hashed/" + first 80 + "..." + last 80 bytes of the escaped name + "-" +
// hex(SHA-256(rel)).
func RunLockName(ns []string, rel string) string {
	enc := EscapeUnitPath(rel)
	if len(enc) >= maxEscapedName {
		sum := sha256.Sum256([]byte(rel))
		enc = "hashed/" + enc[:hashedKeep] + "..." + enc[len(enc)-hashedKeep:] + "-" + hex.EncodeToString(sum[:])
	}
	if len(ns) == 0 {
		return enc
	}
	return strings.Join(ns, ":") + "/" + enc
}

// NSDir renders a namespace as its directory below the datastore root:
// "" for the root, "ns/a/ns/b" for a/b. The datastore's paths use it too,
// so that there is one rule for where a namespace lives.
func NSDir(ns []string) string {
	if len(ns) == 0 {
		return ""
	}
	var b strings.Builder
	for i, c := range ns {
		if i > 0 {
			b.WriteByte('/')
		}
		b.WriteString("ns/")
		b.WriteString(c)
	}
	return b.String()
}

// EscapeUnitPath escapes p like systemd's unit name escaping for paths
// (proxmox-systemd escape_unit(p, is_path=true)): leading '/' are stripped
// (an empty result is "-"), '/' becomes '-', the bytes [A-Za-z0-9_.] are kept
// except a '.' at the first position, every other byte becomes "\xNN" with
// two lowercase hex digits.
func EscapeUnitPath(p string) string {
	p = strings.TrimLeft(p, "/")
	if p == "" {
		return "-"
	}
	const hexDigits = "0123456789abcdef"
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '/':
			b.WriteByte('-')
		case c == '.' && i == 0:
			b.WriteString(`\x2e`)
		case c == '_' || c == '.' ||
			(c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'):
			b.WriteByte(c)
		default:
			b.WriteString(`\x`)
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&0xf])
		}
	}
	return b.String()
}
