package pbsconfig

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"unicode"
)

// MountDir is where PBS mounts removable datastores: a datastore with a
// backing-device lives at MountDir/<name> whatever its path says (§10.5).
const MountDir = "/mnt/datastore"

// Config is a parsed datastore.cfg: its datastore sections in file order.
type Config struct {
	Datastores []*Datastore
}

// Datastore is one "datastore: <name>" section.
type Datastore struct {
	Name string
	Line int // of the header, for messages
	// Path is the path property: an absolute directory, or for a
	// removable datastore a path relative to its device's root.
	Path string
	// BackingDevice is the filesystem UUID of a removable datastore ("" =
	// not removable).
	BackingDevice string
	Maintenance   Maintenance
	Backend       Backend
	// Props holds every property as written, including ones this package
	// does not interpret.
	Props map[string]string
}

// Removable reports whether the datastore lives on a removable device.
func (d *Datastore) Removable() bool { return d.BackingDevice != "" }

// Dir is the directory the datastore is reached at: Path, or
// MountDir/<name> for a removable datastore.
func (d *Datastore) Dir() string {
	if d.Removable() {
		return filepath.Join(MountDir, d.Name)
	}
	return filepath.Clean(d.Path)
}

// Lookup returns the section named name, or nil.
func (c *Config) Lookup(name string) *Datastore {
	for _, d := range c.Datastores {
		if d.Name == name {
			return d
		}
	}
	return nil
}

// SyntaxError is a datastore.cfg that PBS cannot parse either: with it,
// PBS serves no datastore of the host.
type SyntaxError struct {
	Line int
	Msg  string
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("line %d - %s", e.Line, e.Msg) }

// safeID is PBS's SAFE_ID_REGEX; a datastore name is one of 3–32 characters.
var safeID = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._\-]*$`)

// ValidName reports whether name is a valid datastore name (DATASTORE_SCHEMA).
func ValidName(name string) bool {
	return len(name) >= 3 && len(name) <= 32 && safeID.MatchString(name)
}

// propertyName is the shape of every property PBS defines (kebab-case).
// Anything else — "#" from an attempted comment, above all — is an
// "unknown property" for PBS and breaks the file.
var propertyName = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)

// Parse parses the content of datastore.cfg (§10.1.2). A missing file is
// an empty Config, which is the caller's business (Load).
func Parse(data []byte) (*Config, error) {
	c := &Config{}
	var cur *Datastore
	end := func(line int) error {
		if cur == nil {
			return nil
		}
		if _, ok := cur.Props["path"]; !ok {
			return &SyntaxError{Line: line, Msg: "property 'path' is missing and it is not optional."}
		}
		c.Datastores = append(c.Datastores, cur)
		cur = nil
		return nil
	}
	lines := strings.Split(string(data), "\n")
	if len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	for i, line := range lines {
		n := i + 1
		blank := strings.TrimSpace(line) == ""
		if cur == nil {
			if blank {
				continue
			}
			if err := c.header(line, n, &cur); err != nil {
				return nil, err
			}
			continue
		}
		if blank {
			if err := end(n); err != nil {
				return nil, err
			}
			continue
		}
		r := rune(line[0])
		if !unicode.IsSpace(r) {
			return nil, &SyntaxError{Line: n, Msg: "syntax error (expected section properties)"}
		}
		rest := strings.TrimLeftFunc(line, unicode.IsSpace)
		key, value := rest, ""
		if k := strings.IndexFunc(rest, unicode.IsSpace); k >= 0 {
			key, value = rest[:k], strings.TrimSpace(rest[k:])
		}
		if value == "" {
			return nil, &SyntaxError{Line: n, Msg: fmt.Sprintf("property '%s' has no value", key)}
		}
		if !propertyName.MatchString(key) {
			return nil, &SyntaxError{Line: n, Msg: fmt.Sprintf("unknown property '%s'", key)}
		}
		if _, dup := cur.Props[key]; dup {
			return nil, &SyntaxError{Line: n, Msg: fmt.Sprintf("duplicate property '%s'", key)}
		}
		cur.Props[key] = value
		switch key {
		case "path":
			cur.Path = value
		case "backing-device":
			cur.BackingDevice = value
		case "maintenance-mode":
			cur.Maintenance = ParseMaintenance(value)
		case "backend":
			cur.Backend = ParseBackend(value)
		}
	}
	if err := end(len(lines) + 1); err != nil {
		return nil, err
	}
	return c, nil
}

// header parses a section header line into a new current section.
func (c *Config) header(line string, n int, cur **Datastore) error {
	if !unicode.IsLetter(rune(line[0])) {
		return &SyntaxError{Line: n, Msg: "syntax error (expected header)"}
	}
	typ, id, ok := strings.Cut(line, ":")
	if !ok {
		return &SyntaxError{Line: n, Msg: "syntax error (expected header)"}
	}
	typ, id = strings.TrimSpace(typ), strings.TrimSpace(id)
	if typ != "datastore" {
		return &SyntaxError{Line: n, Msg: fmt.Sprintf("unknown section type '%s'", typ)}
	}
	if !ValidName(id) {
		return &SyntaxError{Line: n, Msg: fmt.Sprintf("invalid datastore name '%s'", id)}
	}
	if c.Lookup(id) != nil {
		return &SyntaxError{Line: n, Msg: fmt.Sprintf("duplicate datastore '%s'", id)}
	}
	*cur = &Datastore{Name: id, Line: n, Props: map[string]string{}}
	return nil
}

// Backend is the backend property (§10.4): absent or type=filesystem is a
// local datastore, type=s3 a datastore whose data lives in a bucket and
// whose directory is only a cache.
type Backend struct {
	Type   string // "filesystem" (also when absent) or "s3"
	Client string
	Bucket string
	Raw    string // as written; "" if absent
	Err    error  // the value did not parse: not local (fail closed)
}

// Local reports whether the datastore's directory is the datastore itself.
func (b Backend) Local() bool { return b.Err == nil && b.Type != "s3" }

// ParseBackend parses a backend property string.
func ParseBackend(raw string) Backend {
	b := Backend{Raw: raw}
	kv, err := parsePropertyString(raw, "type")
	if err != nil {
		b.Err = fmt.Errorf("backend %q: %w", raw, err)
		return b
	}
	for k := range kv {
		switch k {
		case "type", "client", "bucket", "max-cache-size":
		default:
			b.Err = fmt.Errorf("backend %q: unknown key '%s'", raw, k)
			return b
		}
	}
	b.Type, b.Client, b.Bucket = kv["type"], kv["client"], kv["bucket"]
	switch b.Type {
	case "", "filesystem":
		b.Type = "filesystem"
		if len(kv) > 1 && (b.Client != "" || b.Bucket != "" || kv["max-cache-size"] != "") {
			b.Err = fmt.Errorf("backend %q: client, bucket and max-cache-size are for type s3 only", raw)
		}
	case "s3":
		if b.Client == "" || b.Bucket == "" {
			b.Err = fmt.Errorf("backend %q: type s3 needs client and bucket", raw)
		}
	default:
		b.Err = fmt.Errorf("backend %q: unknown type '%s'", raw, b.Type)
	}
	return b
}

// Maintenance modes (§10.2).
const (
	ModeNone      = ""
	ModeReadOnly  = "read-only"
	ModeOffline   = "offline"
	ModeDelete    = "delete"
	ModeUnmount   = "unmount"
	ModeS3Refresh = "s3-refresh"
)

// Maintenance is the maintenance-mode property.
type Maintenance struct {
	Type    string // one of the Mode constants
	Message string // percent-decoded, as PBS shows it
	Raw     string // as written; "" if absent
	Err     error  // the value did not parse: counts as offline
}

// ParseMaintenance parses a maintenance-mode property string
// ("[type=]<mode>[,message=<text>]"), in the forms PBS before and after 3.2
// write.
func ParseMaintenance(raw string) Maintenance {
	m := Maintenance{Raw: raw}
	kv, err := parsePropertyString(raw, "type")
	if err == nil {
		for k := range kv {
			if k != "type" && k != "message" {
				err = fmt.Errorf("unknown key '%s'", k)
			}
		}
	}
	if err == nil {
		switch kv["type"] {
		case ModeReadOnly, ModeOffline, ModeDelete, ModeUnmount, ModeS3Refresh:
		case "":
			err = errors.New("no mode type")
		default:
			err = fmt.Errorf("unknown mode '%s'", kv["type"])
		}
	}
	if err == nil {
		msg := kv["message"]
		if len(msg) > 64 || strings.ContainsFunc(msg, unicode.IsControl) {
			err = errors.New("message longer than 64 characters or with control characters")
		}
	}
	if err != nil {
		m.Err = fmt.Errorf("maintenance-mode %q: %w", raw, err)
		return m
	}
	m.Type = kv["type"]
	m.Message = kv["message"]
	if dec, err := url.PathUnescape(m.Message); err == nil {
		m.Message = dec
	}
	return m
}

// Operation is the kind of access PBS checks a mode against.
type Operation int

const (
	Read Operation = iota
	Write
)

func (o Operation) String() string {
	if o == Write {
		return "write"
	}
	return "read"
}

// ErrMaintenance is matched (errors.Is) by every refusal of Check.
var ErrMaintenance = errors.New("datastore in maintenance mode")

// MaintenanceError is a refusal of Check; its text is PBS's.
type MaintenanceError struct{ Text string }

func (e *MaintenanceError) Error() string { return e.Text }

// Is makes a MaintenanceError match ErrMaintenance.
func (e *MaintenanceError) Is(target error) bool { return target == ErrMaintenance }

// Check is PBS's MaintenanceMode::check for a Read or Write: nil if the mode
// allows op, else an error wrapping ErrMaintenance with PBS's text. An
// unparseable mode refuses both, like offline.
func (m Maintenance) Check(op Operation) error {
	if m.Err != nil {
		return &MaintenanceError{Text: m.Err.Error() + " (an unknown mode counts as offline)"}
	}
	var text string
	switch m.Type {
	case ModeNone:
		return nil
	case ModeDelete:
		text = "datastore is being deleted"
	case ModeUnmount:
		text = "datastore is being unmounted"
	case ModeOffline:
		text = "offline maintenance mode: " + m.Message
	case ModeS3Refresh:
		text = "S3 refresh maintenance mode: " + m.Message
	case ModeReadOnly:
		if op == Read {
			return nil
		}
		text = "read-only maintenance mode: " + m.Message
	}
	return &MaintenanceError{Text: text}
}

// AllowsReads reports whether Check(Read) passes.
func (m Maintenance) AllowsReads() bool { return m.Check(Read) == nil }
