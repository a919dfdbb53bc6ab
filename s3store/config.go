package s3store

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"
)

// Secret is a credential string that never prints: every formatting verb,
// %v and %#v included, gives "[redacted]". Reveal returns the value.
type Secret struct{ v string }

// NewSecret wraps s.
func NewSecret(s string) Secret { return Secret{v: s} }

// Reveal returns the secret's value, for the signer only.
func (s Secret) Reveal() string { return s.v }

// IsZero reports whether the secret is empty.
func (s Secret) IsZero() bool { return s.v == "" }

// String implements fmt.Stringer.
func (Secret) String() string { return "[redacted]" }

// GoString implements fmt.GoStringer.
func (Secret) GoString() string { return "[redacted]" }

// Format implements fmt.Formatter so no verb reveals the value.
func (Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte("[redacted]")) }

// MarshalText implements encoding.TextMarshaler (JSON, slog).
func (Secret) MarshalText() ([]byte, error) { return []byte("[redacted]"), nil }

// Credentials are an access key pair.
type Credentials struct {
	AccessKey string
	SecretKey Secret
}

// Endpoint describes how to reach an S3 server, as an s3.cfg s3-endpoint
// section does.
type Endpoint struct {
	// URL is the endpoint, e.g. https://s3.example.net or
	// http://127.0.0.1:8333. A host without scheme means https. PBS's
	// {{bucket}} and {{region}} templates are expanded.
	URL string
	// Region for request signing; empty means us-east-1 (what PBS assumes).
	Region string
	// PathStyle addresses buckets as URL/bucket/key instead of
	// bucket.host/key.
	PathStyle bool
	// Fingerprint pins the server certificate: the SHA-256 of its DER form,
	// hex with or without colons. When set, only a certificate with this
	// fingerprint is accepted (self-signed endpoints); the CA chain and host
	// name are not checked.
	Fingerprint string
	Credentials Credentials
}

// Options tune requests and caching. Zero values select the defaults.
type Options struct {
	// Timeout bounds each request (one GET, one listing page, including
	// the client's retries). Default 30s.
	Timeout time.Duration
	// Retries is how many times a failed request is retried (with
	// exponential backoff) before it fails. Default 3; negative: none.
	Retries int
	// Recheck is how long a listing or a metadata object is trusted before
	// it is revalidated against the bucket. Default 5s.
	Recheck time.Duration
	// MemoryCacheBytes bounds the memory cache of chunks and metadata
	// objects. Default 256 MiB.
	MemoryCacheBytes int64
	// CacheDir, when set, keeps fetched chunks on disk, at most
	// CacheDirBytes (default 4 GiB).
	CacheDir      string
	CacheDirBytes int64
}

func (o Options) withDefaults() Options {
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.Retries == 0 {
		o.Retries = 3
	}
	if o.Retries < 0 {
		o.Retries = 0
	}
	if o.Recheck <= 0 {
		o.Recheck = 5 * time.Second
	}
	if o.MemoryCacheBytes <= 0 {
		o.MemoryCacheBytes = 256 << 20
	}
	if o.CacheDirBytes <= 0 {
		o.CacheDirBytes = 4 << 30
	}
	return o
}

// Location is a datastore in a bucket: s3://BUCKET/STORE.
type Location struct {
	Bucket, Store string
}

func (l Location) String() string { return "s3://" + l.Bucket + "/" + l.Store }

// ParseLocation parses s3://BUCKET/STORE. The store name follows PBS's
// datastore name rule (it is the key prefix PBS uses).
func ParseLocation(s string) (Location, error) {
	rest, ok := strings.CutPrefix(s, "s3://")
	if !ok {
		return Location{}, fmt.Errorf("%q: want s3://BUCKET/STORE", s)
	}
	bucket, store, ok := strings.Cut(strings.TrimSuffix(rest, "/"), "/")
	if !ok || bucket == "" || store == "" || strings.Contains(store, "/") {
		return Location{}, fmt.Errorf("%q: want s3://BUCKET/STORE", s)
	}
	if !validStoreName(store) {
		return Location{}, fmt.Errorf("%q: %q is not a PBS datastore name", s, store)
	}
	return Location{Bucket: bucket, Store: store}, nil
}

// validStoreName is PBS's datastore name rule: [A-Za-z0-9_][A-Za-z0-9._\-]*.
func validStoreName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i, c := range s {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' ||
			i > 0 && (c == '.' || c == '-')
		if !ok {
			return false
		}
	}
	return true
}

// CredentialsFromEnv reads AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.
func CredentialsFromEnv() (Credentials, bool) {
	a, s := os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY")
	if a == "" || s == "" {
		return Credentials{}, false
	}
	return Credentials{AccessKey: a, SecretKey: NewSecret(s)}, true
}

// ReadCredentialsFile reads a credentials file: lines "access-key VALUE" and
// "secret-key VALUE" (the s3.cfg property names; "=" may separate too), blank
// lines and #-comments ignored. The file must not be readable by others.
func ReadCredentialsFile(path string) (Credentials, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return Credentials{}, fmt.Errorf("credentials file: %w", err)
	}
	if fi.Mode().Perm()&0o004 != 0 {
		return Credentials{}, fmt.Errorf("credentials file %s is readable by everyone (mode %v): chmod o-r it", path, fi.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return Credentials{}, fmt.Errorf("credentials file: %w", err)
	}
	var c Credentials
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			k, v, ok = strings.Cut(line, " ")
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || v == "" {
			return Credentials{}, fmt.Errorf("credentials file %s line %d: want \"access-key VALUE\" or \"secret-key VALUE\"", path, n)
		}
		switch k {
		case "access-key":
			c.AccessKey = v
		case "secret-key":
			c.SecretKey = NewSecret(v)
		default:
			return Credentials{}, fmt.Errorf("credentials file %s line %d: unknown key %q", path, n, k)
		}
	}
	if c.AccessKey == "" || c.SecretKey.IsZero() {
		return Credentials{}, fmt.Errorf("credentials file %s: needs both access-key and secret-key", path)
	}
	return c, nil
}

// ErrNoEndpoint is returned by S3Config.Endpoint for an unknown id.
var ErrNoEndpoint = errors.New("no such s3-endpoint")

// S3Config is PBS's /etc/proxmox-backup/s3.cfg: sections
//
//	s3-endpoint: <id>
//		endpoint <host or URL, may hold {{bucket}} and {{region}}>
//		port <n>
//		region <region>
//		access-key <key>
//		secret-key <secret>
//		fingerprint <sha256 colon hex>
//		path-style true|false
//
// Section bodies are indented with a tab or spaces; a blank line ends a
// section. Unknown properties (provider-quirks, rate limits, …) are kept
// out of the way, not refused, as a newer PBS may write them.
type S3Config struct {
	sections map[string]map[string]string
}

// ParseS3Config parses an s3.cfg. Errors name the line, never a value.
func ParseS3Config(data []byte) (*S3Config, error) {
	c := &S3Config{sections: map[string]map[string]string{}}
	var cur map[string]string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			cur = nil
			continue
		}
		if line[0] != ' ' && line[0] != '\t' {
			typ, id, ok := strings.Cut(line, ":")
			id = strings.TrimSpace(id)
			if !ok || id == "" || strings.ContainsAny(id, " \t") {
				return nil, fmt.Errorf("s3.cfg line %d: want a section header \"TYPE: ID\"", n)
			}
			if typ != "s3-endpoint" {
				cur = nil // another section type: skipped
				continue
			}
			if _, dup := c.sections[id]; dup {
				return nil, fmt.Errorf("s3.cfg line %d: duplicate s3-endpoint %q", n, id)
			}
			cur = map[string]string{}
			c.sections[id] = cur
			continue
		}
		if cur == nil {
			continue
		}
		k, v, _ := strings.Cut(strings.TrimSpace(line), " ")
		k, v = strings.TrimSpace(k), strings.TrimSpace(strings.TrimLeft(v, " \t"))
		if v == "" {
			return nil, fmt.Errorf("s3.cfg line %d: property %q has no value", n, k)
		}
		if _, dup := cur[k]; dup {
			return nil, fmt.Errorf("s3.cfg line %d: duplicate property %q", n, k)
		}
		cur[k] = v
	}
	return c, sc.Err()
}

// Endpoint returns the s3-endpoint section id as an Endpoint, for bucket
// (which fills the {{bucket}} template).
func (c *S3Config) Endpoint(id, bucket string) (Endpoint, error) {
	p, ok := c.sections[id]
	if !ok {
		return Endpoint{}, fmt.Errorf("%w %q in s3.cfg", ErrNoEndpoint, id)
	}
	host := p["endpoint"]
	if host == "" {
		return Endpoint{}, fmt.Errorf("s3-endpoint %q: no endpoint property", id)
	}
	e := Endpoint{Region: p["region"], Fingerprint: p["fingerprint"]}
	switch p["path-style"] {
	case "", "false", "0", "no":
	case "true", "1", "yes":
		e.PathStyle = true
	default:
		return Endpoint{}, fmt.Errorf("s3-endpoint %q: path-style must be true or false", id)
	}
	region := e.Region
	if region == "" {
		region = "us-east-1"
	}
	host = strings.ReplaceAll(host, "{{region}}", region)
	if strings.Contains(host, "{{bucket}}") {
		// The template puts the bucket in the host name: virtual-host style.
		host = strings.ReplaceAll(host, "{{bucket}}.", "")
		host = strings.ReplaceAll(host, "{{bucket}}", "")
	}
	if !strings.Contains(host, "://") {
		host = "https://" + host
	}
	if port := p["port"]; port != "" {
		u, err := url.Parse(host)
		if err != nil || u.Port() != "" {
			return Endpoint{}, fmt.Errorf("s3-endpoint %q: endpoint and port do not combine", id)
		}
		u.Host += ":" + port
		host = u.String()
	}
	e.URL = host
	if a, s := p["access-key"], p["secret-key"]; a != "" && s != "" {
		e.Credentials = Credentials{AccessKey: a, SecretKey: NewSecret(s)}
	}
	return e, nil
}
