package datastore

import (
	"fmt"
	"path"
	"strings"

	"pbsfs/lock"
)

// Limits from pbs-api-types (§5 of the format notes).
const (
	MaxNamespaceDepth  = 7   // root is depth 0
	MaxNamespaceLength = 256 // components joined by "/"
)

// Backup types, the only directory names accepted at the type level.
var backupTypes = [...]string{"ct", "host", "vm"}

// NS is a namespace: its components from the root ("prod", "db" for prod/db).
// The root namespace is the empty NS.
type NS []string

// Dir is the namespace's directory relative to the datastore root:
// "" for the root, "ns/a/ns/b" for a/b.
func (ns NS) Dir() string { return lock.NSDir(ns) }

// String is the PBS form of the namespace, "a/b"; "" for the root.
func (ns NS) String() string { return strings.Join(ns, "/") }

// Child returns ns extended by name, never sharing ns's backing array.
func (ns NS) Child(name string) NS {
	c := make(NS, len(ns), len(ns)+1)
	copy(c, ns)
	return append(c, name)
}

// Validate checks depth, length and every component against SAFE_ID.
func (ns NS) Validate() error {
	if len(ns) > MaxNamespaceDepth {
		return fmt.Errorf("namespace %q: depth %d exceeds %d", ns.String(), len(ns), MaxNamespaceDepth)
	}
	if len(ns.String()) > MaxNamespaceLength {
		return fmt.Errorf("namespace %q: longer than %d bytes", ns.String(), MaxNamespaceLength)
	}
	for _, c := range ns {
		if !ValidSafeID(c) {
			return fmt.Errorf("namespace component %q does not match SAFE_ID", c)
		}
	}
	return nil
}

// Group is a backup group: namespace, type and id.
type Group struct {
	NS   NS
	Type string
	ID   string
}

// Rel is the group's path below its namespace: "vm/100".
func (g Group) Rel() string { return g.Type + "/" + g.ID }

// Dir is the group's directory relative to the datastore root.
func (g Group) Dir() string { return path.Join(g.NS.Dir(), g.Rel()) }

// String is a human-readable name such as "ns/a/vm/100".
func (g Group) String() string { return g.Dir() }

// Validate checks every name of the group.
func (g Group) Validate() error {
	if err := g.NS.Validate(); err != nil {
		return err
	}
	if !ValidBackupType(g.Type) {
		return fmt.Errorf("backup type %q is not vm, ct or host", g.Type)
	}
	if !ValidBackupID(g.ID) {
		return fmt.Errorf("backup id %q does not match BACKUP_ID", g.ID)
	}
	return nil
}

func (g Group) lockPath() lock.Path { return lock.Path{NS: g.NS, Rel: g.Rel()} }

// Snapshot is one backup snapshot: its group and its time directory name.
type Snapshot struct {
	Group Group
	Time  string // YYYY-MM-DDTHH:MM:SSZ
}

// Rel is the snapshot's path below its namespace: "vm/100/2024-06-05T14:22:01Z".
func (s Snapshot) Rel() string { return s.Group.Rel() + "/" + s.Time }

// Dir is the snapshot's directory relative to the datastore root.
func (s Snapshot) Dir() string { return path.Join(s.Group.Dir(), s.Time) }

// String is a human-readable name such as "vm/100/2024-06-05T14:22:01Z".
func (s Snapshot) String() string { return s.Dir() }

// Validate checks every name of the snapshot.
func (s Snapshot) Validate() error {
	if err := s.Group.Validate(); err != nil {
		return err
	}
	if !ValidBackupTime(s.Time) {
		return fmt.Errorf("snapshot name %q does not match BACKUP_TIME", s.Time)
	}
	return nil
}

func (s Snapshot) lockPath() lock.Path { return lock.Path{NS: s.Group.NS, Rel: s.Rel()} }

// ValidSafeID reports whether s matches PBS's SAFE_ID, which is also
// BACKUP_ID: [A-Za-z0-9_][A-Za-z0-9._\-]*.
func ValidSafeID(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_':
		case (c == '.' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}

// ValidBackupID reports whether s matches BACKUP_ID_RE.
func ValidBackupID(s string) bool { return ValidSafeID(s) }

// ValidBackupType reports whether s is one of vm, ct, host.
func ValidBackupType(s string) bool {
	for _, t := range backupTypes {
		if s == t {
			return true
		}
	}
	return false
}

// ValidBackupTime reports whether s matches BACKUP_TIME_RE:
// [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z.
func ValidBackupTime(s string) bool {
	const layout = "dddd-dd-ddTdd:dd:ddZ"
	if len(s) != len(layout) {
		return false
	}
	for i := 0; i < len(layout); i++ {
		if layout[i] == 'd' {
			if s[i] < '0' || s[i] > '9' {
				return false
			}
		} else if s[i] != layout[i] {
			return false
		}
	}
	return true
}
