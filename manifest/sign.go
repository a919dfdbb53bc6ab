package manifest

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
)

// CanonicalSigned returns the canonical JSON (§2.3) of the signed part:
// backup-id, backup-time, backup-type and files with their four known keys,
// compact, keys sorted. Unknown keys are not included: PBS parses manifests
// into a typed struct that drops them, so they never take part in its
// signature either. The error return exists for the contract; the typed
// signed fields cannot contain null.
func (m *Manifest) CanonicalSigned() ([]byte, error) {
	return m.appendCanonicalSigned(make([]byte, 0, 128+160*len(m.files))), nil
}

func (m *Manifest) appendCanonicalSigned(b []byte) []byte {
	b = append(b, `{"backup-id":`...)
	b = appendString(b, m.backupID)
	b = append(b, `,"backup-time":`...)
	b = strconv.AppendInt(b, m.backupTime, 10)
	b = append(b, `,"backup-type":`...)
	b = appendString(b, m.backupType)
	b = append(b, `,"files":[`...)
	for i := range m.files {
		f := &m.files[i].FileInfo
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"crypt-mode":`...)
		b = appendString(b, f.CryptMode)
		b = append(b, `,"csum":`...)
		b = appendString(b, f.Csum)
		b = append(b, `,"filename":`...)
		b = appendString(b, f.Filename)
		b = append(b, `,"size":`...)
		b = strconv.AppendUint(b, f.Size, 10)
		b = append(b, '}')
	}
	return append(b, ']', '}')
}

// ComputeSignature returns hex(HMAC-SHA256(idKey, CanonicalSigned())), the
// value PBS stores in "signature". idKey is the derived id key (see
// DeriveIDKey), not the encryption key.
func (m *Manifest) ComputeSignature(idKey []byte) (string, error) {
	if len(idKey) == 0 {
		return "", invalidArg("empty id key")
	}
	canon, err := m.CanonicalSigned()
	if err != nil {
		return "", fmt.Errorf("compute signature: %w", err)
	}
	mac := hmac.New(sha256.New, idKey)
	mac.Write(canon)
	return hex.EncodeToString(mac.Sum(nil)), nil
}

// Sign sets the signature and, like the PBS client, unprotected
// "key-fingerprint" (computed from idKey). For writers (demo, tests).
func (m *Manifest) Sign(idKey []byte) error {
	sig, err := m.ComputeSignature(idKey)
	if err != nil {
		return fmt.Errorf("sign manifest: %w", err)
	}
	m.signature, m.signed = sig, true
	m.unprot.put("key-fingerprint", jvalue{kind: jString, str: FingerprintFromIDKey(idKey)})
	return nil
}

// CheckSignature verifies the signature like PBS's check_signature: an
// unsigned manifest is accepted (nil); if unprotected "key-fingerprint" is
// present it must match idKey; then the HMAC must match. Mismatches wrap
// ErrBadSignature. Callers that require a signature check Signature() first.
func (m *Manifest) CheckSignature(idKey []byte) error {
	if !m.signed {
		return nil
	}
	if fp, present, isString := m.unprot.stringValue("key-fingerprint"); present {
		if !isString {
			return fmt.Errorf("%w: unprotected key-fingerprint is not a string", ErrBadSignature)
		}
		if want := FingerprintFromIDKey(idKey); fp != want {
			return fmt.Errorf("%w: wrong key - manifest's key %s does not match provided key %s", ErrBadSignature, fp, want)
		}
	}
	stored, err := hex.DecodeString(m.signature)
	if err != nil {
		return fmt.Errorf("%w: stored signature %q is not hex", ErrBadSignature, m.signature)
	}
	want, err := m.ComputeSignature(idKey)
	if err != nil {
		return err
	}
	wantRaw, _ := hex.DecodeString(want)
	if !hmac.Equal(stored, wantRaw) {
		return fmt.Errorf("%w: wrong signature in manifest", ErrBadSignature)
	}
	return nil
}

// DeriveIDKey returns PBKDF2-HMAC-SHA256(encKey, salt "_id_key", 10
// iterations, 32 bytes), the key PBS uses for manifest signatures, keyed
// chunk digests and the key fingerprint. It returns nil only if the Go
// runtime refuses the parameters (FIPS 140-only mode rejects the 7-byte
// salt); ComputeSignature then fails with an "empty id key" error.
func DeriveIDKey(encKey []byte) []byte {
	k, err := pbkdf2.Key(sha256.New, string(encKey), []byte("_id_key"), 10, 32)
	if err != nil {
		return nil
	}
	return k
}

// fingerprintInput is FINGERPRINT_INPUT: SHA-256 of
// "Proxmox Backup Encryption Key Fingerprint" (immutable table).
var fingerprintInput = sha256.Sum256([]byte("Proxmox Backup Encryption Key Fingerprint"))

// Fingerprint returns the key fingerprint of an encryption key as PBS shows
// it: SHA-256(FINGERPRINT_INPUT ‖ id_key) as 32 lowercase hex pairs joined
// by ':'.
func Fingerprint(encKey []byte) string { return FingerprintFromIDKey(DeriveIDKey(encKey)) }

// FingerprintFromIDKey is Fingerprint for an already derived id key.
// (Addition to the contract.)
func FingerprintFromIDKey(idKey []byte) string {
	h := sha256.New()
	h.Write(fingerprintInput[:])
	h.Write(idKey)
	return colonHex(h.Sum(nil))
}

func colonHex(b []byte) string {
	out := make([]byte, 0, len(b)*3)
	for i, c := range b {
		if i > 0 {
			out = append(out, ':')
		}
		out = append(out, hexDigits[c>>4], hexDigits[c&0xf])
	}
	return string(out)
}
