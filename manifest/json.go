package manifest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// This file holds a small strict JSON parser and the two serde_json-compatible
// writers (pretty and compact/canonical). encoding/json is not used: it
// accepts invalid UTF-8 (replacing it), keeps the last of duplicate keys,
// loses number text unless UseNumber is set on every path, and escapes
// differently from serde_json on output.

// maxDepth is the deepest nesting serde_json's default recursion limit
// admits: it starts remaining_depth at 128, decrements it on every '[' or '{'
// and fails when it reaches 0, so the 128th level is already refused.
const maxDepth = 127

type jkind uint8

const (
	jNull jkind = iota
	jFalse
	jTrue
	jNumber // str holds the literal number text
	jString // str holds the decoded string
	jArray
	jObject // obj is sorted by key, without duplicates
)

func (k jkind) String() string {
	switch k {
	case jNull:
		return "null"
	case jFalse, jTrue:
		return "boolean"
	case jNumber:
		return "number"
	case jString:
		return "string"
	case jArray:
		return "array"
	case jObject:
		return "object"
	}
	return "?"
}

// jvalue is a parsed JSON value. Values are never modified after they are
// built, so they can be shared between manifests (Clone is shallow).
type jvalue struct {
	kind jkind
	str  string
	arr  []jvalue
	obj  []jmember
}

type jmember struct {
	key string
	val jvalue
}

// lookup finds key in a sorted member list.
func lookup(ms []jmember, key string) (int, bool) {
	return slices.BinarySearchFunc(ms, key, func(m jmember, k string) int { return strings.Compare(m.key, k) })
}

// syntaxError describes malformed JSON; callers wrap it with the sentinel
// that fits (ErrBadManifest for stored data, ErrInvalid for arguments).
type syntaxError struct {
	off int
	msg string
}

func (e *syntaxError) Error() string {
	return fmt.Sprintf("JSON syntax error at byte %d: %s", e.off, e.msg)
}

// parser works on a string copy of the input: one allocation for the whole
// document, after which every unescaped string, key and number literal is a
// substring of it (no further allocation). Object members and array elements
// are collected on shared stacks and copied out at exact size.
type parser struct {
	data    string
	pos     int
	buf     []byte    // scratch for strings with escapes
	members []jmember // stack of members of the objects being parsed
	values  []jvalue  // stack of elements of the arrays being parsed
}

// parseJSON parses exactly one JSON value surrounded by optional whitespace.
func parseJSON(data []byte) (jvalue, error) { return parseJSONText(string(data)) }

// parseJSONText is parseJSON of text that is never modified, without the
// copy: the values refer into it.
func parseJSONText(text string) (jvalue, error) {
	p := parser{data: text}
	p.skipWS()
	v, err := p.value(0)
	if err != nil {
		return jvalue{}, err
	}
	p.skipWS()
	if p.pos != len(p.data) {
		return jvalue{}, p.errf("trailing characters after the JSON value")
	}
	return v, nil
}

func (p *parser) errf(format string, args ...any) error {
	return &syntaxError{off: p.pos, msg: fmt.Sprintf(format, args...)}
}

func (p *parser) skipWS() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *parser) value(depth int) (jvalue, error) {
	if p.pos >= len(p.data) {
		return jvalue{}, p.errf("unexpected end of input, expected a value")
	}
	switch c := p.data[p.pos]; {
	case c == '{':
		return p.object(depth + 1)
	case c == '[':
		return p.array(depth + 1)
	case c == '"':
		s, err := p.string()
		return jvalue{kind: jString, str: s}, err
	case c == '-' || (c >= '0' && c <= '9'):
		s, err := p.number()
		return jvalue{kind: jNumber, str: s}, err
	case c == 't':
		return jvalue{kind: jTrue}, p.literal("true")
	case c == 'f':
		return jvalue{kind: jFalse}, p.literal("false")
	case c == 'n':
		return jvalue{kind: jNull}, p.literal("null")
	default:
		return jvalue{}, p.errf("unexpected character %q, expected a value", c)
	}
}

func (p *parser) literal(word string) error {
	if !strings.HasPrefix(p.data[p.pos:], word) {
		return p.errf("invalid literal, expected %q", word)
	}
	p.pos += len(word)
	return nil
}

func (p *parser) object(depth int) (jvalue, error) {
	if depth > maxDepth {
		return jvalue{}, p.errf("nesting deeper than %d levels", maxDepth)
	}
	p.pos++ // '{'
	mark := len(p.members)
	defer func() { p.members = p.members[:mark] }()
	p.skipWS()
	if p.pos < len(p.data) && p.data[p.pos] == '}' {
		p.pos++
		return jvalue{kind: jObject}, nil
	}
	for {
		p.skipWS()
		if p.pos >= len(p.data) || p.data[p.pos] != '"' {
			return jvalue{}, p.errf("expected a string object key")
		}
		key, err := p.string()
		if err != nil {
			return jvalue{}, err
		}
		p.skipWS()
		if p.pos >= len(p.data) || p.data[p.pos] != ':' {
			return jvalue{}, p.errf("expected ':' after object key %q", key)
		}
		p.pos++
		p.skipWS()
		v, err := p.value(depth)
		if err != nil {
			return jvalue{}, err
		}
		p.members = append(p.members, jmember{key: key, val: v})
		p.skipWS()
		if p.pos >= len(p.data) {
			return jvalue{}, p.errf("unexpected end of input in object")
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
			continue
		case '}':
			p.pos++
		default:
			return jvalue{}, p.errf("expected ',' or '}' in object, got %q", p.data[p.pos])
		}
		break
	}
	ms := slices.Clone(p.members[mark:])
	if err := sortMembers(ms); err != nil {
		return jvalue{}, &syntaxError{off: p.pos, msg: err.Error()}
	}
	return jvalue{kind: jObject, obj: ms}, nil
}

// sortMembers sorts byte-wise (BTreeMap<String, _> order) and rejects
// duplicate keys.
func sortMembers(ms []jmember) error {
	slices.SortFunc(ms, func(a, b jmember) int { return strings.Compare(a.key, b.key) })
	for i := 1; i < len(ms); i++ {
		if ms[i].key == ms[i-1].key {
			return fmt.Errorf("duplicate object key %q", ms[i].key)
		}
	}
	return nil
}

func (p *parser) array(depth int) (jvalue, error) {
	if depth > maxDepth {
		return jvalue{}, p.errf("nesting deeper than %d levels", maxDepth)
	}
	p.pos++ // '['
	p.skipWS()
	if p.pos < len(p.data) && p.data[p.pos] == ']' {
		p.pos++
		return jvalue{kind: jArray}, nil
	}
	mark := len(p.values)
	defer func() { p.values = p.values[:mark] }()
	for {
		p.skipWS()
		v, err := p.value(depth)
		if err != nil {
			return jvalue{}, err
		}
		p.values = append(p.values, v)
		p.skipWS()
		if p.pos >= len(p.data) {
			return jvalue{}, p.errf("unexpected end of input in array")
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
			continue
		case ']':
			p.pos++
			return jvalue{kind: jArray, arr: slices.Clone(p.values[mark:])}, nil
		default:
			return jvalue{}, p.errf("expected ',' or ']' in array, got %q", p.data[p.pos])
		}
	}
}

// number scans a JSON number (RFC 8259 grammar) and returns its literal text.
func (p *parser) number() (string, error) {
	start := p.pos
	d := p.data
	i := p.pos
	if i < len(d) && d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && d[i] >= '1' && d[i] <= '9':
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	default:
		p.pos = i
		return "", p.errf("invalid number: expected a digit")
	}
	if i < len(d) && d[i] == '.' {
		i++
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			p.pos = i
			return "", p.errf("invalid number: expected a digit after '.'")
		}
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			p.pos = i
			return "", p.errf("invalid number: expected a digit in exponent")
		}
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	}
	p.pos = i
	return d[start:i], nil
}

// string parses a JSON string starting at the opening quote.
func (p *parser) string() (string, error) {
	d := p.data
	i := p.pos + 1
	start := i
	escaped := false
	p.buf = p.buf[:0]
	for {
		if i >= len(d) {
			p.pos = i
			return "", p.errf("unterminated string")
		}
		c := d[i]
		switch {
		case c == '"':
			seg := d[start:i]
			if !utf8.ValidString(seg) {
				p.pos = start + invalidUTF8Offset(seg)
				return "", p.errf("invalid UTF-8 in string")
			}
			p.pos = i + 1
			if !escaped {
				return seg, nil
			}
			p.buf = append(p.buf, seg...)
			return string(p.buf), nil
		case c == '\\':
			seg := d[start:i]
			if !utf8.ValidString(seg) {
				p.pos = start + invalidUTF8Offset(seg)
				return "", p.errf("invalid UTF-8 in string")
			}
			p.buf = append(p.buf, seg...)
			escaped = true
			n, err := p.escape(i)
			if err != nil {
				return "", err
			}
			i += n
			start = i
		case c < 0x20:
			p.pos = i
			return "", p.errf("unescaped control character 0x%02x in string", c)
		default:
			i++
		}
	}
}

func invalidUTF8Offset(b string) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRuneInString(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return len(b)
}

// escape decodes the escape sequence at d[i] ('\\') into p.buf and returns
// its length in bytes.
func (p *parser) escape(i int) (int, error) {
	d := p.data
	if i+1 >= len(d) {
		p.pos = i
		return 0, p.errf("unterminated escape sequence")
	}
	switch d[i+1] {
	case '"', '\\', '/':
		p.buf = append(p.buf, d[i+1])
	case 'b':
		p.buf = append(p.buf, '\b')
	case 'f':
		p.buf = append(p.buf, '\f')
	case 'n':
		p.buf = append(p.buf, '\n')
	case 'r':
		p.buf = append(p.buf, '\r')
	case 't':
		p.buf = append(p.buf, '\t')
	case 'u':
		r, ok := hex4(d, i+2)
		if !ok {
			p.pos = i
			return 0, p.errf(`invalid \u escape`)
		}
		switch {
		case utf16.IsSurrogate(r) && r < 0xdc00:
			r2, ok := rune(0), false
			if i+7 < len(d) && d[i+6] == '\\' && d[i+7] == 'u' {
				r2, ok = hex4(d, i+8)
			}
			if !ok || r2 < 0xdc00 || r2 > 0xdfff {
				p.pos = i
				return 0, p.errf("lone leading surrogate in hex escape")
			}
			p.buf = utf8.AppendRune(p.buf, utf16.DecodeRune(r, r2))
			return 12, nil
		case utf16.IsSurrogate(r):
			p.pos = i
			return 0, p.errf("lone trailing surrogate in hex escape")
		}
		p.buf = utf8.AppendRune(p.buf, r)
		return 6, nil
	default:
		p.pos = i
		return 0, p.errf("invalid escape character %q", d[i+1])
	}
	return 2, nil
}

func hex4(d string, i int) (rune, bool) {
	if i+4 > len(d) {
		return 0, false
	}
	var r rune
	for _, c := range d[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// --- writers ---

const hexDigits = "0123456789abcdef"

// needsEscape marks the bytes serde_json escapes (immutable table).
var needsEscape = func() (t [256]bool) {
	for c := range 0x20 {
		t[c] = true
	}
	t['"'], t['\\'] = true, true
	return t
}()

// prettySize estimates the pretty output size of v at nesting depth, so the
// output buffer is allocated once. Escapes are not counted; callers add
// slack.
func prettySize(v *jvalue, depth int) int {
	switch v.kind {
	case jString, jNumber:
		return len(v.str) + 2
	case jArray:
		n := 2 + 2*depth
		for i := range v.arr {
			n += 2 + 2*(depth+1) + prettySize(&v.arr[i], depth+1)
		}
		return n
	case jObject:
		return 2 + 2*depth + membersSize(v.obj, depth+1)
	}
	return 5
}

// membersSize estimates the size of object members written at depth.
func membersSize(ms []jmember, depth int) int {
	n := 0
	for i := range ms {
		n += 6 + 2*depth + len(ms[i].key) + prettySize(&ms[i].val, depth)
	}
	return n
}

// appendString appends s as a JSON string with serde_json's escaping:
// \" \\ \b \f \n \r \t, other bytes below 0x20 as \u00xx (lowercase), and
// everything else (including '/', '<', '>', '&', DEL, U+2028, U+2029 and
// all non-ASCII) raw. s must be valid UTF-8 (guaranteed by construction).
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !needsEscape[c] {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"':
			b = append(b, '\\', '"')
		case '\\':
			b = append(b, '\\', '\\')
		case '\b':
			b = append(b, '\\', 'b')
		case '\f':
			b = append(b, '\\', 'f')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendNewlineIndent writes serde's PrettyFormatter line break: "\n" plus
// two spaces per level.
func appendNewlineIndent(b []byte, depth int) []byte {
	b = append(b, '\n')
	for ; depth > 0; depth-- {
		b = append(b, ' ', ' ')
	}
	return b
}

// appendPrettyKey writes the separator before an object member and its key:
// "{" has been written by the caller; first tells whether this is the first
// member.
func appendPrettyKey(b []byte, first bool, depth int, key string) []byte {
	if !first {
		b = append(b, ',')
	}
	b = appendNewlineIndent(b, depth)
	b = appendString(b, key)
	return append(b, ':', ' ')
}

// appendPretty writes v in PrettyFormatter style; depth is the nesting
// level of v itself (0 for the document root).
func appendPretty(b []byte, v *jvalue, depth int) []byte {
	switch v.kind {
	case jNull:
		return append(b, "null"...)
	case jFalse:
		return append(b, "false"...)
	case jTrue:
		return append(b, "true"...)
	case jNumber:
		return append(b, v.str...)
	case jString:
		return appendString(b, v.str)
	case jArray:
		if len(v.arr) == 0 {
			return append(b, '[', ']')
		}
		b = append(b, '[')
		for i := range v.arr {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendNewlineIndent(b, depth+1)
			b = appendPretty(b, &v.arr[i], depth+1)
		}
		b = appendNewlineIndent(b, depth)
		return append(b, ']')
	default: // jObject
		if len(v.obj) == 0 {
			return append(b, '{', '}')
		}
		b = append(b, '{')
		for i := range v.obj {
			b = appendPrettyKey(b, i == 0, depth+1, v.obj[i].key)
			b = appendPretty(b, &v.obj[i].val, depth+1)
		}
		b = appendNewlineIndent(b, depth)
		return append(b, '}')
	}
}

var errNull = errors.New("got unexpected null value")

// appendCompact writes v without whitespace (serde_json::to_string of a
// Value, keys sorted). With canonical, null anywhere is an error, as in
// proxmox_serde::json::to_canonical_json.
func appendCompact(b []byte, v *jvalue, canonical bool) ([]byte, error) {
	var err error
	switch v.kind {
	case jNull:
		if canonical {
			return b, errNull
		}
		return append(b, "null"...), nil
	case jFalse:
		return append(b, "false"...), nil
	case jTrue:
		return append(b, "true"...), nil
	case jNumber:
		return append(b, v.str...), nil
	case jString:
		return appendString(b, v.str), nil
	case jArray:
		b = append(b, '[')
		for i := range v.arr {
			if i > 0 {
				b = append(b, ',')
			}
			if b, err = appendCompact(b, &v.arr[i], canonical); err != nil {
				return b, err
			}
		}
		return append(b, ']'), nil
	default:
		b = append(b, '{')
		for i := range v.obj {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, v.obj[i].key)
			b = append(b, ':')
			if b, err = appendCompact(b, &v.obj[i].val, canonical); err != nil {
				return b, fmt.Errorf("in %q: %w", v.obj[i].key, err)
			}
		}
		return append(b, '}'), nil
	}
}

// CanonicalJSON returns the canonical form of a JSON document as
// proxmox_serde::json::to_canonical_json writes it: compact, object keys
// sorted byte-wise at every level, serde_json string escaping, numbers as
// written in the input, and an error for null anywhere. Errors wrap
// ErrInvalid. (Addition to the contract, used for signatures and tests.)
func CanonicalJSON(jsonText []byte) ([]byte, error) {
	v, err := parseJSON(jsonText)
	if err != nil {
		return nil, fmt.Errorf("canonical JSON: %w: %w", ErrInvalid, err)
	}
	out, err := appendCompact(make([]byte, 0, len(jsonText)), &v, true)
	if err != nil {
		return nil, fmt.Errorf("canonical JSON: %w: %w", ErrInvalid, err)
	}
	return out, nil
}
