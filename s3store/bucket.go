package s3store

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Info is what the bucket says about an object: its identity stamp.
type Info struct {
	Key          string // full key
	Size         int64
	ETag         string
	LastModified time.Time
}

// Entry is one name of a directory level.
type Entry struct {
	Name string
	Dir  bool // a common prefix: something lies below Name/
	Info Info // objects only
}

// Bucket reads one datastore (a key prefix) of one bucket. It is safe for
// concurrent use.
type Bucket struct {
	client *minio.Client
	tr     *http.Transport
	loc    Location
	opts   Options
	now    func() time.Time

	mem  *memCache
	disk *diskCache // nil without Options.CacheDir

	mu       sync.Mutex
	listings map[string]*listing // by directory key prefix

	reqs *countingTransport
}

type listing struct {
	entries []Entry
	at      time.Time
	err     error
	done    chan struct{}
}

// Open connects to the endpoint and checks, with one listing request, that
// the bucket is reachable with the credentials and that the datastore exists
// (it has a .in-use marker or a .cnt/ tree). Errors carry a kind (ErrAuth,
// ErrNoBucket, ErrCertificate, ErrUnreachable, ErrTimeout, ErrNotFound for
// a missing datastore).
func Open(ctx context.Context, e Endpoint, loc Location, o Options) (*Bucket, error) {
	b, err := New(e, loc, o)
	if err != nil {
		return nil, err
	}
	if err := b.check(ctx); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

// New is Open without the check (the writer creates buckets and stores).
func New(e Endpoint, loc Location, o Options) (*Bucket, error) {
	o = o.withDefaults()
	tr, err := newTransport(e, o)
	if err != nil {
		return nil, err
	}
	reqs := &countingTransport{next: tr}
	client, err := newClient(e, o, reqs)
	if err != nil {
		return nil, err
	}
	b := &Bucket{
		client:   client,
		tr:       tr,
		reqs:     reqs,
		loc:      loc,
		opts:     o,
		now:      time.Now,
		mem:      newMemCache(o.MemoryCacheBytes),
		listings: map[string]*listing{},
	}
	if o.CacheDir != "" {
		d, err := openDiskCache(o.CacheDir, o.CacheDirBytes)
		if err != nil {
			return nil, err
		}
		b.disk = d
	}
	return b, nil
}

// Close releases the bucket's idle connections.
func (b *Bucket) Close() {
	b.tr.CloseIdleConnections()
}

// Location returns the bucket and store read.
func (b *Bucket) Location() Location { return b.loc }

// Options returns the options in effect (defaults filled in).
func (b *Bucket) Options() Options { return b.opts }

func endpointURL(e Endpoint) (*url.URL, error) {
	raw := e.URL
	if !strings.Contains(raw, "://") {
		raw = "https://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("s3 endpoint %q: want http(s)://HOST[:PORT]", e.URL)
	}
	if u.Path != "" && u.Path != "/" {
		return nil, fmt.Errorf("s3 endpoint %q: a path is not supported", e.URL)
	}
	return u, nil
}

func newTransport(e Endpoint, o Options) (*http.Transport, error) {
	if _, err := endpointURL(e); err != nil {
		return nil, err
	}
	if e.Credentials.AccessKey == "" || e.Credentials.SecretKey.IsZero() {
		return nil, errors.New("s3: no credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or give a credentials file or an s3.cfg section)")
	}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: o.Timeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   o.Timeout,
		ResponseHeaderTimeout: o.Timeout,
		ExpectContinueTimeout: time.Second,
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
	}
	if e.Fingerprint != "" {
		pin, err := parseFingerprint(e.Fingerprint)
		if err != nil {
			return nil, err
		}
		tr.TLSClientConfig.InsecureSkipVerify = true // replaced by the pin check below
		tr.TLSClientConfig.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return errCertPin
			}
			if sha256.Sum256(raw[0]) != pin {
				return errCertPin
			}
			return nil
		}
	}
	return tr, nil
}

func newClient(e Endpoint, o Options, tr http.RoundTripper) (*minio.Client, error) {
	u, err := endpointURL(e)
	if err != nil {
		return nil, err
	}
	lookup := minio.BucketLookupDNS
	if e.PathStyle {
		lookup = minio.BucketLookupPath
	}
	region := e.Region
	if region == "" {
		region = "us-east-1"
	}
	retries := o.Retries + 1
	return minio.New(u.Host, &minio.Options{
		Creds:        credentials.NewStaticV4(e.Credentials.AccessKey, e.Credentials.SecretKey.Reveal(), ""),
		Secure:       u.Scheme == "https",
		Transport:    tr,
		Region:       region,
		BucketLookup: lookup,
		MaxRetries:   retries,
	})
}

// parseFingerprint reads a SHA-256 fingerprint, hex with or without colons
// (PBS writes lowercase colon hex).
func parseFingerprint(s string) ([32]byte, error) {
	var fp [32]byte
	h, err := hex.DecodeString(strings.ReplaceAll(strings.TrimSpace(s), ":", ""))
	if err != nil || len(h) != 32 {
		return fp, fmt.Errorf("s3 fingerprint %q: want the certificate's SHA-256 as 32 hex bytes", s)
	}
	copy(fp[:], h)
	return fp, nil
}

// Fingerprint returns the colon-hex SHA-256 of a DER certificate, the form
// PBS shows and --s3-fingerprint takes.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	parts := make([]string, len(sum))
	for i, c := range sum {
		parts[i] = hex.EncodeToString([]byte{c})
	}
	return strings.Join(parts, ":")
}

func (b *Bucket) key(rel string) string { return b.loc.Store + "/" + rel }

// cntKey is the key of a metadata file or directory at rel (datastore
// relative, "" for the root).
func (b *Bucket) cntKey(rel string) string {
	if rel == "" || rel == "." {
		return b.key(".cnt")
	}
	return b.key(".cnt/" + rel)
}

// ChunkKey returns the key of a chunk.
func (b *Bucket) ChunkKey(digest [32]byte) string {
	h := hex.EncodeToString(digest[:])
	return b.key(".chunks/" + h[:4] + "/" + h)
}

func (b *Bucket) check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, b.opts.Timeout)
	defer cancel()
	res := b.client.ListObjects(ctx, b.loc.Bucket, minio.ListObjectsOptions{Prefix: b.loc.Store + "/", MaxKeys: 1})
	// The first answer decides; the rest of the listing is abandoned.
	first, found := <-res
	cancel()
	for range res {
	}
	if found && first.Err != nil {
		return wrapErr("open", b.loc.String(), first.Err)
	}
	if !found {
		return kindErr("open", b.loc.String(), ErrNotFound, "no datastore %q in bucket %q (no key below %s/)", b.loc.Store, b.loc.Bucket, b.loc.Store)
	}
	return nil
}

// ReadDir lists the directory rel of the metadata tree (datastore relative,
// "" for the root) one level deep: subdirectories (common prefixes) and
// objects, sorted by name. A directory without any key below it is
// ErrNotFound. Listings are cached for the recheck interval; concurrent
// callers share one request. The slice is shared: callers must not modify it.
func (b *Bucket) ReadDir(ctx context.Context, rel string) ([]Entry, error) {
	prefix := b.cntKey(rel) + "/"
	now := b.now()
	b.mu.Lock()
	l := b.listings[prefix]
	if l != nil {
		select {
		case <-l.done:
			if now.Sub(l.at) < b.opts.Recheck {
				b.mu.Unlock()
				return l.entries, l.err
			}
			l = nil
		default: // in flight: share it
		}
	}
	if l == nil {
		l = &listing{done: make(chan struct{}), at: now}
		b.listings[prefix] = l
		b.mu.Unlock()
		l.entries, l.err = b.list(ctx, prefix)
		if l.err != nil && !errors.Is(l.err, ErrNotFound) {
			b.mu.Lock()
			delete(b.listings, prefix) // a failure is not remembered
			b.mu.Unlock()
		}
		close(l.done)
		return l.entries, l.err
	}
	b.mu.Unlock()
	select {
	case <-l.done:
		return l.entries, l.err
	case <-ctx.Done():
		return nil, wrapErr("list", prefix, ctx.Err())
	}
}

// list runs a delimiter listing of prefix page by page. Each page must
// arrive within the timeout.
func (b *Bucket) list(ctx context.Context, prefix string) ([]Entry, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	res := b.client.ListObjects(ctx, b.loc.Bucket, minio.ListObjectsOptions{Prefix: prefix, MaxKeys: 1000})
	timer := time.NewTimer(b.opts.Timeout)
	defer timer.Stop()
	var out []Entry
	for {
		select {
		case o, ok := <-res:
			if !ok {
				if len(out) == 0 {
					return nil, kindErr("list", prefix, ErrNotFound, "")
				}
				sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
				return out, nil
			}
			if o.Err != nil {
				return nil, wrapErr("list", prefix, o.Err)
			}
			if !timer.Stop() {
				<-timer.C
			}
			timer.Reset(b.opts.Timeout)
			name := strings.TrimPrefix(o.Key, prefix)
			if dir, ok := strings.CutSuffix(name, "/"); ok {
				out = append(out, Entry{Name: dir, Dir: true})
				continue
			}
			out = append(out, Entry{Name: name, Info: infoOf(o)})
		case <-timer.C:
			cancel()
			for range res {
			}
			return nil, kindErr("list", prefix, ErrTimeout, "no answer within %v", b.opts.Timeout)
		}
	}
}

func infoOf(o minio.ObjectInfo) Info {
	return Info{Key: o.Key, Size: o.Size, ETag: strings.Trim(o.ETag, `"`), LastModified: o.LastModified}
}

// Stat returns the identity of the metadata object at rel, from the
// directory listing (no extra request when the directory was listed within
// the recheck interval). A directory is reported with Dir set.
func (b *Bucket) Stat(ctx context.Context, rel string) (Entry, error) {
	dir, name := path.Split(rel)
	entries, err := b.ReadDir(ctx, strings.TrimSuffix(dir, "/"))
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return Entry{}, kindErr("stat", b.cntKey(rel), ErrNotFound, "")
		}
		return Entry{}, err
	}
	i := sort.Search(len(entries), func(i int) bool { return entries[i].Name >= name })
	// A name can be both an object and a prefix; the two sort next to each
	// other. Prefer the directory, as a local store has no such pair.
	for ; i < len(entries) && entries[i].Name == name; i++ {
		if entries[i].Dir || i+1 >= len(entries) || entries[i+1].Name != name {
			return entries[i], nil
		}
	}
	return Entry{}, kindErr("stat", b.cntKey(rel), ErrNotFound, "")
}

// ReadFile returns the metadata object at rel and its identity, at most
// limit bytes (a larger object is ErrTooLarge). The content is cached; after
// the recheck interval it is revalidated with a conditional GET. The bytes are
// shared with the cache: callers must not modify them.
func (b *Bucket) ReadFile(ctx context.Context, rel string, limit int64) ([]byte, Info, error) {
	key := b.cntKey(rel)
	now := b.now()
	if e, ok := b.mem.get(key); ok {
		if limit > 0 && int64(len(e.data)) > limit {
			return nil, Info{}, kindErr("read", key, ErrTooLarge, "%d bytes, at most %d", len(e.data), limit)
		}
		if now.Sub(e.checked) < b.opts.Recheck {
			return e.data, e.info, nil
		}
		data, info, err := b.get(ctx, "read", key, limit, e.info.ETag, nil)
		if errors.Is(err, errNotModified) {
			b.mem.touch(key, now)
			return e.data, e.info, nil
		}
		if err != nil {
			return nil, Info{}, err
		}
		b.mem.add(key, cacheEntry{data: data, info: info, checked: now})
		return data, info, nil
	}
	data, info, err := b.get(ctx, "read", key, limit, "", nil)
	if err != nil {
		return nil, Info{}, err
	}
	b.mem.add(key, cacheEntry{data: data, info: info, checked: now})
	return data, info, nil
}

// ReadChunk returns the raw chunk file (a DataBlob) of digest, at most limit
// bytes. The caller verifies it. Chunks are immutable, so a cached copy is
// used without asking the bucket. The bytes are shared with the cache: callers
// copy them (e.g. into a pooled buffer) and never modify or recycle them.
func (b *Bucket) ReadChunk(ctx context.Context, digest [32]byte, limit int64) ([]byte, error) {
	key := b.ChunkKey(digest)
	if e, ok := b.mem.get(key); ok && (limit <= 0 || int64(len(e.data)) <= limit) {
		return e.data, nil
	}
	if b.disk != nil {
		if data, ok := b.disk.get(digest, limit); ok {
			b.mem.add(key, cacheEntry{data: data})
			return data, nil
		}
	}
	data, _, err := b.get(ctx, "read chunk", key, limit, "", nil)
	if err != nil {
		return nil, err
	}
	b.mem.add(key, cacheEntry{data: data})
	if b.disk != nil {
		b.disk.put(digest, data)
	}
	return data, nil
}

// ReadChunkInto is ReadChunk for a caller that keeps chunks itself (the
// datastore caches them decoded): the chunk file is fetched straight into a
// buffer of length n from alloc(n), which the caller owns, and the bucket keeps no copy
// in memory (a cache directory still gets one). A chunk ReadChunk cached is
// copied from there. An error leaves the buffer to the garbage collector.
func (b *Bucket) ReadChunkInto(ctx context.Context, digest [32]byte, limit int64, alloc func(n int) ([]byte, error)) ([]byte, error) {
	key := b.ChunkKey(digest)
	cached, ok := b.mem.get(key)
	if !ok && b.disk != nil {
		cached.data, ok = b.disk.get(digest, limit)
	}
	if ok && (limit <= 0 || int64(len(cached.data)) <= limit) {
		buf, err := alloc(len(cached.data))
		if err != nil {
			return nil, err
		}
		copy(buf, cached.data)
		return buf, nil
	}
	data, _, err := b.get(ctx, "read chunk", key, limit, "", alloc)
	if err != nil {
		return nil, err
	}
	if b.disk != nil {
		b.disk.put(digest, data)
	}
	return data, nil
}

// Forget drops the cached copy of a chunk (a caller found it damaged).
func (b *Bucket) Forget(digest [32]byte) {
	b.mem.remove(b.ChunkKey(digest))
	if b.disk != nil {
		b.disk.remove(digest)
	}
}

var errNotModified = errors.New("not modified")

// get fetches one object under the timeout (the client retries transient
// failures within it) into a buffer of its size from alloc (nil: a new
// one). With ifNoneMatch set, an unchanged object gives errNotModified.
func (b *Bucket) get(ctx context.Context, op, key string, limit int64, ifNoneMatch string, alloc func(n int) ([]byte, error)) ([]byte, Info, error) {
	ctx, cancel := context.WithTimeout(ctx, b.opts.Timeout)
	defer cancel()
	var o minio.GetObjectOptions
	if ifNoneMatch != "" {
		_ = o.SetMatchETagExcept(ifNoneMatch)
	}
	// Core's GetObject sends one GET and returns its headers; the Client's
	// would send a HEAD first.
	obj, st, _, err := minio.Core{Client: b.client}.GetObject(ctx, b.loc.Bucket, key, o)
	if err != nil {
		if r := minio.ToErrorResponse(err); r.StatusCode == http.StatusNotModified {
			return nil, Info{}, errNotModified
		}
		return nil, Info{}, wrapErr(op, key, err)
	}
	defer obj.Close()
	if limit > 0 && st.Size > limit {
		return nil, Info{}, kindErr(op, key, ErrTooLarge, "%d bytes, at most %d", st.Size, limit)
	}
	if alloc == nil {
		alloc = func(n int) ([]byte, error) { return make([]byte, n), nil }
	}
	buf, err := alloc(int(st.Size))
	if err != nil {
		return nil, Info{}, err
	}
	// Exactly the announced size: a bytes.Buffer would grow (and copy) a
	// buffer of that size once it is full, and a shorter or longer body is
	// a broken answer.
	n, err := io.ReadFull(obj, buf)
	if err == nil {
		var extra [1]byte
		if k, _ := obj.Read(extra[:]); k > 0 {
			return nil, Info{}, kindErr(op, key, ErrServer, "more than the %d bytes announced", st.Size)
		}
	} else if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return nil, Info{}, kindErr(op, key, ErrServer, "got %d bytes of %d", n, st.Size)
	} else {
		return nil, Info{}, wrapErr(op, key, err)
	}
	return buf, infoOf(st), nil
}

// Requests returns how many HTTP requests the bucket has sent (listing
// pages, GETs and retries).
func (b *Bucket) Requests() int64 { return b.reqs.n.Load() }

// countingTransport counts the requests that go out.
type countingTransport struct {
	next http.RoundTripper
	n    atomic.Int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.next.RoundTrip(r)
}
