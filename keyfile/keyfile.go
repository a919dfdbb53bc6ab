package keyfile

import (
	"bufio"
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"time"

	"golang.org/x/crypto/scrypt"

	"pbsfs/manifest"
)

// Errors. Every error of this package wraps one of them.
var (
	// ErrFormat: the file is not a PBS key file (bad JSON, missing or
	// malformed fields, bad base64, parameters out of range).
	ErrFormat = errors.New("not a valid PBS key file")
	// ErrPassword: the password does not open the key (wrong password, or
	// damaged wrapped key: AES-GCM cannot tell them apart), or it is too
	// short for PBS.
	ErrPassword = errors.New("unable to decrypt key (wrong password?)")
	// ErrFingerprint: the key found does not have the fingerprint stored in
	// the file.
	ErrFingerprint = errors.New("key file contains wrong fingerprint")
)

// KDF names.
const (
	Scrypt = "scrypt"
	PBKDF2 = "pbkdf2"
)

// MinPassword is the shortest password PBS accepts ("Passphrase is too
// short!").
const MinPassword = 5

// Limits that keep a hostile or broken key file from making pbsfs allocate
// or compute without bound. scrypt memory follows PBS's own limit (OpenSSL
// maxmem 1025 MiB); PBKDF2 iterations are an int in OpenSSL.
const (
	maxScryptMem = 1025 << 20
	maxIter      = math.MaxInt32
	maxFileSize  = 1 << 20
)

// KDF is the key derivation of a password-protected key file.
type KDF struct {
	Name    string // Scrypt or PBKDF2
	N, R, P uint64 // scrypt cost parameters
	Iter    uint64 // PBKDF2 iterations
	Salt    []byte
}

// Config is a parsed key file.
type Config struct {
	KDF         *KDF // nil: Data is the plain key
	Created     time.Time
	Modified    time.Time
	Data        []byte
	Fingerprint string // as stored ("" if absent); colon hex
	Hint        string // password hint ("" if absent)
}

// Encrypted reports whether the key is wrapped, i.e. needs a password.
func (c *Config) Encrypted() bool { return c.KDF != nil }

// Load reads and parses the key file at path.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	if len(raw) > maxFileSize {
		return nil, fmt.Errorf("key file %s: %w: larger than %d bytes", path, ErrFormat, maxFileSize)
	}
	c, err := Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	return c, nil
}

// jsonConfig mirrors KeyConfig's serde layout.
type jsonConfig struct {
	KDF         json.RawMessage `json:"kdf"`
	Created     *string         `json:"created"`
	Modified    *string         `json:"modified"`
	Data        *string         `json:"data"`
	Fingerprint *string         `json:"fingerprint,omitempty"`
	Hint        *string         `json:"hint,omitempty"`
}

type jsonScrypt struct {
	N    *uint64 `json:"n"`
	R    *uint64 `json:"r"`
	P    *uint64 `json:"p"`
	Salt *string `json:"salt"`
}

type jsonPBKDF2 struct {
	Iter *uint64 `json:"iter"`
	Salt *string `json:"salt"`
}

func formatErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrFormat, fmt.Sprintf(format, args...))
}

// Parse parses the JSON text of a key file. It checks the structure and the
// KDF parameters but decrypts nothing.
func Parse(text []byte) (*Config, error) {
	var j jsonConfig
	if err := json.Unmarshal(text, &j); err != nil {
		return nil, formatErr("%v", err)
	}
	var c Config
	var err error
	if c.KDF, err = parseKDF(j.KDF); err != nil {
		return nil, err
	}
	if c.Created, err = parseTime("created", j.Created); err != nil {
		return nil, err
	}
	if c.Modified, err = parseTime("modified", j.Modified); err != nil {
		return nil, err
	}
	if j.Data == nil {
		return nil, formatErr("missing field data")
	}
	if c.Data, err = decodeBase64(*j.Data); err != nil {
		return nil, formatErr("data: %v", err)
	}
	if j.Fingerprint != nil {
		if _, err := fingerprintBytes(*j.Fingerprint); err != nil {
			return nil, formatErr("fingerprint %q: %v", *j.Fingerprint, err)
		}
		c.Fingerprint = *j.Fingerprint
	}
	if j.Hint != nil {
		c.Hint = *j.Hint
	}
	return &c, nil
}

// parseKDF reads serde's external tagging of KeyDerivationConfig:
// null, {"Scrypt": {...}} or {"PBKDF2": {...}}.
func parseKDF(raw json.RawMessage) (*KDF, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var tagged map[string]json.RawMessage
	if err := json.Unmarshal(raw, &tagged); err != nil {
		return nil, formatErr("kdf: %v", err)
	}
	if len(tagged) != 1 {
		return nil, formatErr("kdf: want exactly one of Scrypt or PBKDF2")
	}
	for name, body := range tagged {
		switch name {
		case "Scrypt":
			var s jsonScrypt
			if err := json.Unmarshal(body, &s); err != nil {
				return nil, formatErr("kdf Scrypt: %v", err)
			}
			if s.N == nil || s.R == nil || s.P == nil || s.Salt == nil {
				return nil, formatErr("kdf Scrypt: n, r, p and salt are required")
			}
			salt, err := decodeBase64(*s.Salt)
			if err != nil {
				return nil, formatErr("kdf Scrypt salt: %v", err)
			}
			k := &KDF{Name: Scrypt, N: *s.N, R: *s.R, P: *s.P, Salt: salt}
			return k, k.check()
		case "PBKDF2":
			var p jsonPBKDF2
			if err := json.Unmarshal(body, &p); err != nil {
				return nil, formatErr("kdf PBKDF2: %v", err)
			}
			if p.Iter == nil || p.Salt == nil {
				return nil, formatErr("kdf PBKDF2: iter and salt are required")
			}
			salt, err := decodeBase64(*p.Salt)
			if err != nil {
				return nil, formatErr("kdf PBKDF2 salt: %v", err)
			}
			k := &KDF{Name: PBKDF2, Iter: *p.Iter, Salt: salt}
			return k, k.check()
		default:
			return nil, formatErr("kdf: unknown variant %q", name)
		}
	}
	panic("unreachable")
}

// check validates the parameters against what scrypt/PBKDF2 accept and the
// resource limits.
func (k *KDF) check() error {
	switch k.Name {
	case Scrypt:
		if k.N < 2 || k.N&(k.N-1) != 0 {
			return formatErr("scrypt n=%d is not a power of two > 1", k.N)
		}
		if k.R == 0 || k.P == 0 || k.R >= 1<<30 || k.P >= 1<<30 || k.R*k.P >= 1<<30 {
			return formatErr("scrypt r=%d p=%d out of range", k.R, k.P)
		}
		// scrypt's working memory: 128·r·p for B plus 128·r·(n+2) for V
		// and XY; refuse what PBS's maxmem refuses.
		if k.N > maxScryptMem/(128*k.R) || 128*k.R*k.P+128*k.R*(k.N+2) > maxScryptMem {
			return formatErr("scrypt n=%d r=%d p=%d needs more than %d MiB", k.N, k.R, k.P, maxScryptMem>>20)
		}
	case PBKDF2:
		if k.Iter == 0 || k.Iter > maxIter {
			return formatErr("pbkdf2 iter=%d out of range", k.Iter)
		}
	default:
		return formatErr("unknown kdf %q", k.Name)
	}
	return nil
}

// derive returns the 32-byte key derived from password.
func (k *KDF) derive(password []byte) ([]byte, error) {
	if err := k.check(); err != nil {
		return nil, err
	}
	switch k.Name {
	case Scrypt:
		key, err := scrypt.Key(password, k.Salt, int(k.N), int(k.R), int(k.P), manifest.KeySize)
		if err != nil {
			return nil, fmt.Errorf("scrypt: %w", err)
		}
		return key, nil
	default:
		key, err := pbkdf2.Key(sha256.New, string(password), k.Salt, int(k.Iter), manifest.KeySize)
		if err != nil {
			return nil, fmt.Errorf("pbkdf2: %w", err)
		}
		return key, nil
	}
}

func parseTime(field string, s *string) (time.Time, error) {
	if s == nil {
		return time.Time{}, formatErr("missing field %s", field)
	}
	t, err := time.Parse(time.RFC3339, *s)
	if err != nil {
		return time.Time{}, formatErr("%s: %v", field, err)
	}
	return t, nil
}

// decodeBase64 decodes standard base64, padded or not (proxmox_base64's
// "indifferent" decoder).
func decodeBase64(s string) ([]byte, error) {
	return base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "="))
}

// fingerprintBytes parses a fingerprint: 32 bytes of hex, colons ignored
// (PBS's Fingerprint::from_str).
func fingerprintBytes(s string) ([]byte, error) {
	b, err := hex.DecodeString(strings.ReplaceAll(s, ":", ""))
	if err != nil {
		return nil, err
	}
	if len(b) != 32 {
		return nil, fmt.Errorf("%d bytes, want 32", len(b))
	}
	return b, nil
}

// Decrypt returns the raw 32-byte encryption key and its fingerprint.
// password is ignored for unencrypted key files.
func (c *Config) Decrypt(password []byte) (key []byte, fingerprint string, err error) {
	if c.KDF == nil {
		key = bytes.Clone(c.Data)
	} else {
		if len(password) < MinPassword {
			return nil, "", fmt.Errorf("%w: password is too short (PBS requires at least %d bytes)", ErrPassword, MinPassword)
		}
		derived, err := c.KDF.derive(password)
		if err != nil {
			return nil, "", err
		}
		if len(c.Data) < 32 {
			return nil, "", formatErr("wrapped key too short (%d bytes)", len(c.Data))
		}
		aead, err := gcm(derived)
		if err != nil {
			return nil, "", err
		}
		sealed := make([]byte, 0, len(c.Data)-16)
		sealed = append(append(sealed, c.Data[32:]...), c.Data[16:32]...) // ciphertext ‖ tag
		key, err = aead.Open(sealed[:0], c.Data[:16], sealed, nil)
		if err != nil {
			if c.Hint != "" {
				return nil, "", fmt.Errorf("%w (password hint: %s)", ErrPassword, c.Hint)
			}
			return nil, "", ErrPassword
		}
	}
	if len(key) != manifest.KeySize {
		return nil, "", formatErr("key has %d bytes, want %d", len(key), manifest.KeySize)
	}
	fingerprint = manifest.Fingerprint(key)
	if c.Fingerprint != "" {
		stored, _ := fingerprintBytes(c.Fingerprint)
		got, _ := fingerprintBytes(fingerprint)
		if !bytes.Equal(stored, got) {
			return nil, "", fmt.Errorf("%w %s, contained key has fingerprint %s", ErrFingerprint, c.Fingerprint, fingerprint)
		}
	}
	return key, fingerprint, nil
}

func gcm(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("key file cipher: %w", err)
	}
	aead, err := cipher.NewGCMWithNonceSize(block, 16)
	if err != nil {
		return nil, fmt.Errorf("key file cipher: %w", err)
	}
	return aead, nil
}

// DefaultKDF returns the parameters proxmox-backup-client uses for new keys
// (scrypt n=65536 r=8 p=1, or PBKDF2 with 65535 iterations) with a random
// 32-byte salt.
func DefaultKDF(name string) (KDF, error) {
	salt := make([]byte, 32)
	if _, err := rand.Read(salt); err != nil {
		return KDF{}, fmt.Errorf("salt: %w", err)
	}
	switch name {
	case Scrypt:
		return KDF{Name: Scrypt, N: 65536, R: 8, P: 1, Salt: salt}, nil
	case PBKDF2:
		return KDF{Name: PBKDF2, Iter: 65535, Salt: salt}, nil
	}
	return KDF{}, formatErr("unknown kdf %q", name)
}

// New makes a key file for key. With kdf nil the key is stored in plain;
// otherwise it is wrapped with the key derived from password (at least
// MinPassword bytes) under a random IV. The fingerprint is always stored.
// For writers (tests); PBS creates key files with proxmox-backup-client.
func New(key, password []byte, kdf *KDF, created time.Time) (*Config, error) {
	if len(key) != manifest.KeySize {
		return nil, fmt.Errorf("new key file: key has %d bytes, want %d", len(key), manifest.KeySize)
	}
	c := &Config{Created: created, Modified: created, Fingerprint: manifest.Fingerprint(key)}
	if kdf == nil {
		c.Data = bytes.Clone(key)
		return c, nil
	}
	if len(password) < MinPassword {
		return nil, fmt.Errorf("new key file: %w: password is too short", ErrPassword)
	}
	k := *kdf
	k.Salt = bytes.Clone(kdf.Salt)
	derived, err := k.derive(password)
	if err != nil {
		return nil, fmt.Errorf("new key file: %w", err)
	}
	aead, err := gcm(derived)
	if err != nil {
		return nil, err
	}
	iv := make([]byte, 16)
	if _, err := rand.Read(iv); err != nil {
		return nil, fmt.Errorf("new key file: IV: %w", err)
	}
	sealed := aead.Seal(nil, iv, key, nil)
	ct, tag := sealed[:len(sealed)-16], sealed[len(sealed)-16:]
	c.Data = append(append(append(make([]byte, 0, 32+len(ct)), iv...), tag...), ct...)
	c.KDF = &k
	return c, nil
}

// Marshal returns the key file's JSON as serde_json::to_string writes it:
// compact, fields in declaration order, times as RFC 3339 with a numeric
// offset, padded base64.
func (c *Config) Marshal() []byte {
	var b bytes.Buffer
	b.WriteString(`{"kdf":`)
	switch {
	case c.KDF == nil:
		b.WriteString("null")
	case c.KDF.Name == Scrypt:
		fmt.Fprintf(&b, `{"Scrypt":{"n":%d,"r":%d,"p":%d,"salt":%q}}`, c.KDF.N, c.KDF.R, c.KDF.P, base64.StdEncoding.EncodeToString(c.KDF.Salt))
	default:
		fmt.Fprintf(&b, `{"PBKDF2":{"iter":%d,"salt":%q}}`, c.KDF.Iter, base64.StdEncoding.EncodeToString(c.KDF.Salt))
	}
	const rfc3339Offset = "2006-01-02T15:04:05-07:00"
	fmt.Fprintf(&b, `,"created":%q,"modified":%q,"data":%q`,
		c.Created.Format(rfc3339Offset), c.Modified.Format(rfc3339Offset), base64.StdEncoding.EncodeToString(c.Data))
	if c.Fingerprint != "" {
		fmt.Fprintf(&b, `,"fingerprint":%q`, c.Fingerprint)
	}
	if c.Hint != "" {
		h, _ := json.Marshal(c.Hint)
		b.WriteString(`,"hint":`)
		b.Write(h)
	}
	b.WriteByte('}')
	return b.Bytes()
}

// ReadPasswordFile returns the first line of the file at path, without its
// line ending, as PBS does for PBS_ENCRYPTION_PASSWORD_FILE.
func ReadPasswordFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("password file: %w", err)
	}
	defer f.Close()
	line, err := bufio.NewReaderSize(io.LimitReader(f, maxFileSize), 4096).ReadBytes('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("password file %s: %w", path, err)
	}
	line = bytes.TrimSuffix(line, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	return line, nil
}
