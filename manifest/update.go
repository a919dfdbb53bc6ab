package manifest

import (
	"bytes"
	"fmt"
)

// UpdateBlob is the read-modify-write core for a stored manifest (PBS's
// update_manifest without the lock, which the caller holds). It loads raw
// (CRC checked), calls fn with the unprotected section, and re-encodes.
//
// Defense in depth: the new blob is decoded and parsed again, and its
// canonical signed bytes, its signature and everything outside
// unprotected (including unknown keys) must equal those of the original,
// else ErrSignedChanged. It returns the new blob bytes and the manifest
// parsed from them. An error from fn is returned wrapped and unchanged in
// kind.
func UpdateBlob(raw []byte, fn func(*Unprotected) error) ([]byte, *Manifest, error) {
	return updateBlob(raw, fn, (*Manifest).EncodeBlob)
}

// updateBlob is UpdateBlob with the encoder as a parameter, so that a test
// can hand it a faulty one and see the checks refuse its output.
func updateBlob(raw []byte, fn func(*Unprotected) error, encode func(*Manifest) ([]byte, error)) ([]byte, *Manifest, error) {
	m, err := Load(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("update manifest: %w", err)
	}
	canonBefore, err := m.CanonicalSigned()
	if err != nil {
		return nil, nil, fmt.Errorf("update manifest: %w", err)
	}
	sigBefore, signedBefore := m.Signature()
	protBefore := m.appendPretty(nil, false)

	if err := fn(m.Unprotected()); err != nil {
		return nil, nil, fmt.Errorf("update manifest: %w", err)
	}

	out, err := encode(m)
	if err != nil {
		return nil, nil, fmt.Errorf("update manifest: %w", err)
	}
	m2, err := Load(out)
	if err != nil {
		// Our own output does not load back: a bug, never bad input.
		return nil, nil, fmt.Errorf("update manifest: re-reading the new manifest: %w", err)
	}
	canonAfter, err := m2.CanonicalSigned()
	if err != nil {
		return nil, nil, fmt.Errorf("update manifest: %w", err)
	}
	sigAfter, signedAfter := m2.Signature()
	switch {
	case !bytes.Equal(canonBefore, canonAfter):
		return nil, nil, fmt.Errorf("update manifest: %w: canonical signed bytes differ", ErrSignedChanged)
	case sigBefore != sigAfter || signedBefore != signedAfter:
		return nil, nil, fmt.Errorf("update manifest: %w: signature %q became %q", ErrSignedChanged, sigBefore, sigAfter)
	case !bytes.Equal(protBefore, m2.appendPretty(nil, false)):
		return nil, nil, fmt.Errorf("update manifest: %w: content outside unprotected differs", ErrSignedChanged)
	}
	return out, m2, nil
}
