package manifest

import (
	"encoding/hex"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"
)

// Backup types and crypt modes as they appear in a manifest.
const (
	TypeVM   = "vm"
	TypeCT   = "ct"
	TypeHost = "host"

	CryptNone     = "none"
	CryptEncrypt  = "encrypt"
	CryptSignOnly = "sign-only"
)

// backupIDRe is PBS's BACKUP_ID_REGEX; New enforces it, Parse does not
// (serde accepts any string, and a reader should not refuse to show notes
// of a snapshot some other tool named oddly).
var backupIDRe = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._\-]*$`)

// FileInfo is one entry of the manifest's files list (a read-only copy).
// Csum is 64 lowercase hex characters.
type FileInfo struct {
	Filename, CryptMode, Csum string
	Size                      uint64
}

type fileEntry struct {
	FileInfo
	extra []jmember // unknown keys, sorted
}

// Manifest is a parsed BackupManifest. The signed fields can only be set by
// New and Parse; the only mutable part is Unprotected. A Manifest is safe for
// concurrent reads; mutation of Unprotected (or Sign) needs exclusive access.
// Use Clone to edit a shared (e.g. cached) manifest.
type Manifest struct {
	backupType string
	backupID   string
	backupTime int64
	files      []fileEntry
	signature  string
	signed     bool
	extra      []jmember // unknown top-level keys, sorted
	unprot     Unprotected
}

func badManifest(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrBadManifest}, args...)...)
}

func invalidArg(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

// Parse parses and validates manifest JSON (index.json after blob decoding).
// Errors satisfy errors.Is(err, ErrBadManifest) and ErrCorrupt.
func Parse(jsonText []byte) (*Manifest, error) { return parseText(string(jsonText)) }

// parseText is Parse of text the manifest may keep referring to.
func parseText(jsonText string) (*Manifest, error) {
	v, err := parseJSONText(jsonText)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadManifest, err)
	}
	if v.kind != jObject {
		return nil, badManifest("document is a JSON %s, expected an object", v.kind)
	}
	m := &Manifest{}
	var haveType, haveID, haveTime, haveFiles bool
	for i := range v.obj {
		mem := &v.obj[i]
		switch mem.key {
		case "backup-type":
			if mem.val.kind != jString {
				return nil, badManifest("backup-type: expected a string, got %s", mem.val.kind)
			}
			if !validBackupType(mem.val.str) {
				return nil, badManifest("backup-type: unknown value %q (want vm, ct or host)", mem.val.str)
			}
			m.backupType, haveType = mem.val.str, true
		case "backup-id":
			if mem.val.kind != jString {
				return nil, badManifest("backup-id: expected a string, got %s", mem.val.kind)
			}
			m.backupID, haveID = mem.val.str, true
		case "backup-time":
			if mem.val.kind != jNumber {
				return nil, badManifest("backup-time: expected an integer, got %s", mem.val.kind)
			}
			t, err := strconv.ParseInt(mem.val.str, 10, 64)
			if err != nil {
				return nil, badManifest("backup-time: %s is not a 64-bit integer", mem.val.str)
			}
			m.backupTime, haveTime = t, true
		case "files":
			if mem.val.kind != jArray {
				return nil, badManifest("files: expected an array, got %s", mem.val.kind)
			}
			m.files = make([]fileEntry, len(mem.val.arr))
			for j := range mem.val.arr {
				if err := parseFileEntry(&mem.val.arr[j], &m.files[j]); err != nil {
					return nil, badManifest("files[%d]%s", j, err)
				}
			}
			haveFiles = true
		case "signature":
			switch mem.val.kind {
			case jNull:
			case jString:
				m.signature, m.signed = mem.val.str, true
			default:
				return nil, badManifest("signature: expected a string or null, got %s", mem.val.kind)
			}
		case "unprotected":
			switch mem.val.kind {
			case jNull: // read as {}: PBS turns Null into an object on the first edit
			case jObject:
				m.unprot.members = mem.val.obj
			default:
				return nil, badManifest("unprotected: expected an object, got %s", mem.val.kind)
			}
		default:
			m.extra = append(m.extra, *mem)
		}
	}
	switch {
	case !haveType:
		return nil, badManifest("missing field backup-type")
	case !haveID:
		return nil, badManifest("missing field backup-id")
	case !haveTime:
		return nil, badManifest("missing field backup-time")
	case !haveFiles:
		return nil, badManifest("missing field files")
	}
	return m, nil
}

// parseFileEntry fills fe from a files[] element. Errors are returned as a
// suffix for "files[i]" (".size: ..." or ": ...").
func parseFileEntry(v *jvalue, fe *fileEntry) error {
	if v.kind != jObject {
		return fmt.Errorf(": expected an object, got %s", v.kind)
	}
	var haveName, haveSize, haveCsum bool
	fe.CryptMode = CryptNone // serde default (compat < 0.8.0)
	for i := range v.obj {
		mem := &v.obj[i]
		switch mem.key {
		case "filename":
			if mem.val.kind != jString {
				return fmt.Errorf(".filename: expected a string, got %s", mem.val.kind)
			}
			fe.Filename, haveName = mem.val.str, true
		case "crypt-mode":
			if mem.val.kind != jString {
				return fmt.Errorf(".crypt-mode: expected a string, got %s", mem.val.kind)
			}
			if !validCryptMode(mem.val.str) {
				return fmt.Errorf(".crypt-mode: unknown value %q (want none, encrypt or sign-only)", mem.val.str)
			}
			fe.CryptMode = mem.val.str
		case "size":
			if mem.val.kind != jNumber {
				return fmt.Errorf(".size: expected an unsigned integer, got %s", mem.val.kind)
			}
			n, err := strconv.ParseUint(mem.val.str, 10, 64)
			if err != nil {
				return fmt.Errorf(".size: %s is not a 64-bit unsigned integer", mem.val.str)
			}
			fe.Size, haveSize = n, true
		case "csum":
			if mem.val.kind != jString {
				return fmt.Errorf(".csum: expected a string, got %s", mem.val.kind)
			}
			c, err := normalizeCsum(mem.val.str)
			if err != nil {
				return fmt.Errorf(".csum: %w", err)
			}
			fe.Csum, haveCsum = c, true
		default:
			fe.extra = append(fe.extra, *mem)
		}
	}
	switch {
	case !haveName:
		return fmt.Errorf(": missing field filename")
	case !haveSize:
		return fmt.Errorf(": missing field size")
	case !haveCsum:
		return fmt.Errorf(": missing field csum")
	}
	return nil
}

func validBackupType(s string) bool { return s == TypeVM || s == TypeCT || s == TypeHost }

func validCryptMode(s string) bool { return s == CryptNone || s == CryptEncrypt || s == CryptSignOnly }

// normalizeCsum checks for 64 hex digits (either case, as the hex crate
// accepts) and returns them lowercase (as the hex crate writes them).
func normalizeCsum(s string) (string, error) {
	if len(s) != 64 {
		return "", fmt.Errorf("%q: want 64 hex digits, got %d characters", s, len(s))
	}
	if _, err := hex.DecodeString(s); err != nil {
		return "", fmt.Errorf("%q is not hex", s)
	}
	return strings.ToLower(s), nil
}

// Load decodes a raw index.json.blob (CRC checked) and parses it.
func Load(blobRaw []byte) (*Manifest, error) { return LoadWith(blobRaw, heapBuffers{}) }

// LoadWith is Load decoding into memory from bufs (and within their Budget,
// if they carry one); the decoded text goes back to bufs once parsed.
func LoadWith(blobRaw []byte, bufs Buffers) (*Manifest, error) {
	b, err := ParseBlob(blobRaw)
	if err != nil {
		return nil, fmt.Errorf("load manifest: %w", err)
	}
	data, buf, err := b.DecodeInto(nil, bufs)
	if err != nil {
		return nil, fmt.Errorf("load manifest: %w", err)
	}
	// The manifest keeps referring to a copy of the text (its strings are
	// substrings of it); the copy is memory from bufs too, never given
	// back, so a reusing bufs cannot overwrite it.
	text, err := bufs.Get(len(data))
	if err == nil {
		text = append(text, data...)
	}
	if buf != nil {
		bufs.Put(buf)
	}
	if err != nil {
		return nil, fmt.Errorf("load manifest: text buffer: %w", err)
	}
	m, err := parseText(unsafe.String(unsafe.SliceData(text), len(text)))
	if err != nil {
		return nil, fmt.Errorf("load manifest: %w", err)
	}
	return m, nil
}

// New builds an unsigned manifest with an empty unprotected section, for
// writers (demo, tests). backupID must match PBS's BACKUP_ID_REGEX; a file's
// empty CryptMode means "none"; Csum may be given in either hex case.
// Errors wrap ErrInvalid.
func New(backupType, backupID string, backupTime int64, files []FileInfo) (*Manifest, error) {
	if !validBackupType(backupType) {
		return nil, invalidArg("backup type %q (want vm, ct or host)", backupType)
	}
	if !backupIDRe.MatchString(backupID) {
		return nil, invalidArg("backup id %q does not match %s", backupID, backupIDRe)
	}
	m := &Manifest{
		backupType: backupType,
		backupID:   backupID,
		backupTime: backupTime,
		files:      make([]fileEntry, len(files)),
	}
	for i, f := range files {
		if f.Filename == "" || !utf8.ValidString(f.Filename) {
			return nil, invalidArg("file %d: filename %q is empty or not UTF-8", i, f.Filename)
		}
		if f.CryptMode == "" {
			f.CryptMode = CryptNone
		}
		if !validCryptMode(f.CryptMode) {
			return nil, invalidArg("file %q: crypt mode %q (want none, encrypt or sign-only)", f.Filename, f.CryptMode)
		}
		c, err := normalizeCsum(f.Csum)
		if err != nil {
			return nil, invalidArg("file %q: csum %w", f.Filename, err)
		}
		f.Csum = c
		m.files[i].FileInfo = f
	}
	return m, nil
}

// BackupType returns "vm", "ct" or "host".
func (m *Manifest) BackupType() string { return m.backupType }

// BackupID returns the group id.
func (m *Manifest) BackupID() string { return m.backupID }

// BackupTime returns the snapshot time in Unix seconds.
func (m *Manifest) BackupTime() int64 { return m.backupTime }

// Files returns a copy of the files list, in manifest order.
func (m *Manifest) Files() []FileInfo {
	out := make([]FileInfo, len(m.files))
	for i := range m.files {
		out[i] = m.files[i].FileInfo
	}
	return out
}

// Signature returns the signature (lowercase hex HMAC) if the manifest is
// signed.
func (m *Manifest) Signature() (sig string, ok bool) { return m.signature, m.signed }

// Unprotected returns the unprotected section, the only mutable part.
func (m *Manifest) Unprotected() *Unprotected { return &m.unprot }

// Notes returns unprotected.notes, or "" if absent or not a string (as PBS's
// get_notes does).
func (m *Manifest) Notes() string { return m.unprot.Notes() }

// Clone returns a deep copy whose Unprotected section can be edited without
// affecting m. (Addition to the contract.)
func (m *Manifest) Clone() *Manifest {
	c := *m
	c.files = make([]fileEntry, len(m.files))
	for i, fe := range m.files {
		fe.extra = cloneMembers(fe.extra)
		c.files[i] = fe
	}
	c.extra = cloneMembers(m.extra)
	c.unprot.members = cloneMembers(m.unprot.members)
	return &c
}

// cloneMembers copies the member list; the values themselves are immutable.
func cloneMembers(ms []jmember) []jmember {
	if ms == nil {
		return nil
	}
	return append([]jmember(nil), ms...)
}

// Top-level and file-entry keys in byte-wise order.
var (
	topKeys  = [...]string{"backup-id", "backup-time", "backup-type", "files", "signature", "unprotected"}
	fileKeys = [...]string{"crypt-mode", "csum", "filename", "size"}
)

// MarshalPretty returns the manifest as serde_json::to_string_pretty writes
// the corresponding serde_json::Value: keys sorted byte-wise at every level,
// two-space indentation, serde escaping, no trailing newline.
func (m *Manifest) MarshalPretty() []byte {
	return m.appendPretty(make([]byte, 0, m.prettySize()), true)
}

// prettySize estimates the size of MarshalPretty's output (plus slack for
// escapes) without writing it.
func (m *Manifest) prettySize() int {
	n := 160 + len(m.backupID) + len(m.signature) + membersSize(m.extra, 1) + membersSize(m.unprot.members, 2)
	for i := range m.files {
		n += 200 + len(m.files[i].Filename) + membersSize(m.files[i].extra, 3)
	}
	return n + n/8
}

// appendPretty writes the document; without withUnprotected the unprotected
// member is left out (used to compare the protected part in UpdateBlob).
func (m *Manifest) appendPretty(b []byte, withUnprotected bool) []byte {
	b = append(b, '{')
	first := true
	extra := m.extra
	for _, k := range topKeys {
		b, extra, first = appendExtrasBefore(b, extra, k, first, 1)
		if k == "unprotected" && !withUnprotected {
			continue
		}
		b = appendPrettyKey(b, first, 1, k)
		first = false
		switch k {
		case "backup-id":
			b = appendString(b, m.backupID)
		case "backup-time":
			b = strconv.AppendInt(b, m.backupTime, 10)
		case "backup-type":
			b = appendString(b, m.backupType)
		case "files":
			b = m.appendFilesPretty(b)
		case "signature":
			if m.signed {
				b = appendString(b, m.signature)
			} else {
				b = append(b, "null"...)
			}
		case "unprotected":
			u := jvalue{kind: jObject, obj: m.unprot.members}
			b = appendPretty(b, &u, 1)
		}
	}
	b, _, _ = appendExtrasBefore(b, extra, "", first, 1)
	b = appendNewlineIndent(b, 0)
	return append(b, '}')
}

// appendExtrasBefore writes the unknown members whose key sorts before key
// (all of them if key is ""), returning the rest and the updated first flag.
func appendExtrasBefore(b []byte, extra []jmember, key string, first bool, depth int) ([]byte, []jmember, bool) {
	for len(extra) > 0 && (key == "" || extra[0].key < key) {
		b = appendPrettyKey(b, first, depth, extra[0].key)
		b = appendPretty(b, &extra[0].val, depth)
		first = false
		extra = extra[1:]
	}
	return b, extra, first
}

func (m *Manifest) appendFilesPretty(b []byte) []byte {
	if len(m.files) == 0 {
		return append(b, '[', ']')
	}
	b = append(b, '[')
	for i := range m.files {
		fe := &m.files[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = appendNewlineIndent(b, 2)
		b = append(b, '{')
		first := true
		extra := fe.extra
		for _, k := range fileKeys {
			b, extra, first = appendExtrasBefore(b, extra, k, first, 3)
			b = appendPrettyKey(b, first, 3, k)
			first = false
			switch k {
			case "crypt-mode":
				b = appendString(b, fe.CryptMode)
			case "csum":
				b = appendString(b, fe.Csum)
			case "filename":
				b = appendString(b, fe.Filename)
			case "size":
				b = strconv.AppendUint(b, fe.Size, 10)
			}
		}
		b, _, _ = appendExtrasBefore(b, extra, "", first, 3)
		b = appendNewlineIndent(b, 2)
		b = append(b, '}')
	}
	b = appendNewlineIndent(b, 1)
	return append(b, ']')
}

// EncodeBlob returns MarshalPretty encoded as a blob the way PBS stores
// manifests: unencrypted, zstd level 1 unless that is larger.
func (m *Manifest) EncodeBlob() ([]byte, error) {
	out, err := EncodeBlob(m.MarshalPretty(), true)
	if err != nil {
		return nil, fmt.Errorf("encode manifest: %w", err)
	}
	return out, nil
}
