// Package keyfile reads (and, for tests, writes) Proxmox Backup Server
// encryption key files: the JSON KeyConfig that proxmox-backup-client key
// create writes (pbs-key-config/src/lib.rs).
//
// A key file holds the 32-byte AES-256 encryption key, either in plain
// (kdf null) or wrapped with a key derived from a password:
//
//	{"kdf": {"Scrypt": {"n": 65536, "r": 8, "p": 1, "salt": BASE64}}
//	        | {"PBKDF2": {"iter": 65535, "salt": BASE64}} | null,
//	 "created": RFC3339, "modified": RFC3339,
//	 "data": BASE64,            // kdf null: the key; else IV(16) ‖ tag(16) ‖ AES-256-GCM(key)
//	 "fingerprint": "xx:xx:…",  // optional: the key's fingerprint
//	 "hint": "…"}               // optional: password hint
//
// The derived key is scrypt(password, salt, n, r, p) or
// PBKDF2-HMAC-SHA256(password, salt, iter), 32 bytes; the wrapped key is
// decrypted with AES-256-GCM, 16-byte IV, empty AAD. Like PBS, passwords
// shorter than 5 bytes are refused and a stored fingerprint must match the
// key found. Base64 is the standard alphabet, padding optional on input.
//
// The package knows no datastore; it hands the raw key to
// manifest.NewCryptConfig.
package keyfile
