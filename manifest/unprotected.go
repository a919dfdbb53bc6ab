package manifest

import (
	"encoding/json"
	"fmt"
	"slices"
	"unicode/utf8"
)

// Unprotected is the manifest's unprotected section: free-form JSON that is
// not covered by the signature (notes, verify_state, chunk_upload_stats,
// key-fingerprint, ...). Keys are kept sorted; values are stored parsed and
// written back in serde_json form.
type Unprotected struct {
	members []jmember // sorted by key, unique; values immutable
}

// Notes returns the "notes" value if it is a string, else "".
func (u *Unprotected) Notes() string {
	if i, ok := lookup(u.members, "notes"); ok && u.members[i].val.kind == jString {
		return u.members[i].val.str
	}
	return ""
}

// SetNotes sets "notes" to s (PBS's set_notes). An empty s is stored as ""
// like PBS does, not deleted. s must be valid UTF-8 (ErrInvalidNotes).
func (u *Unprotected) SetNotes(s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("set notes: %w (invalid byte at offset %d)", ErrInvalidNotes, invalidUTF8Offset(s))
	}
	u.put("notes", jvalue{kind: jString, str: s})
	return nil
}

// Get returns the value of key as compact JSON (serde_json::to_string form,
// object keys sorted).
func (u *Unprotected) Get(key string) (json.RawMessage, bool) {
	i, ok := lookup(u.members, key)
	if !ok {
		return nil, false
	}
	out, _ := appendCompact(nil, &u.members[i].val, false) // cannot fail when not canonical
	return out, true
}

// Set stores value under key. The value must be one valid JSON value (strict:
// UTF-8, no duplicate keys, no lone surrogates); errors wrap ErrInvalid.
func (u *Unprotected) Set(key string, value json.RawMessage) error {
	if !utf8.ValidString(key) {
		return invalidArg("unprotected key %q is not valid UTF-8", key)
	}
	v, err := parseJSON(value)
	if err != nil {
		return fmt.Errorf("set unprotected %q: %w: %w", key, ErrInvalid, err)
	}
	u.put(key, v)
	return nil
}

// Delete removes key if present.
func (u *Unprotected) Delete(key string) {
	if i, ok := lookup(u.members, key); ok {
		// Copy on write, like put.
		ms := make([]jmember, 0, len(u.members)-1)
		ms = append(ms, u.members[:i]...)
		u.members = append(ms, u.members[i+1:]...)
	}
}

// Keys returns the keys in sorted (byte-wise) order.
func (u *Unprotected) Keys() []string {
	keys := make([]string, len(u.members))
	for i := range u.members {
		keys[i] = u.members[i].key
	}
	return keys
}

// stringValue returns the value of key if it is a string.
func (u *Unprotected) stringValue(key string) (s string, present, isString bool) {
	i, ok := lookup(u.members, key)
	if !ok {
		return "", false, false
	}
	v := &u.members[i].val
	return v.str, true, v.kind == jString
}

// put replaces or inserts. The member slice is copied on write so that a
// slice shared with a parsed document or a Clone is never modified in place.
func (u *Unprotected) put(key string, v jvalue) {
	i, ok := lookup(u.members, key)
	ms := slices.Clone(u.members)
	if ok {
		ms[i].val = v
	} else {
		ms = slices.Insert(ms, i, jmember{key: key, val: v})
	}
	u.members = ms
}
