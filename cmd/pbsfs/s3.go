package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"pbsfs/datastore"
	"pbsfs/s3store"
)

// s3Help documents the options of a datastore read from its S3 bucket; it
// is part of the mount help's option list.
const s3Help = `      --s3-endpoint URL    the S3 endpoint of an s3://BUCKET/STORE datastore
                           (https://HOST[:PORT]; a PBS 4 datastore with an S3
                           backend, read straight from its bucket, read-only)
      --s3-region R        region for request signing (default us-east-1)
      --s3-path-style      address the bucket as URL/BUCKET, not BUCKET.HOST
      --s3-fingerprint FP  accept only the server certificate with this
                           SHA-256 fingerprint (self-signed endpoints)
      --s3-config FILE     take the endpoint from PBS's s3.cfg ...
      --s3-client ID       ... its s3-endpoint section ID (flags given as
                           well override it)
      --s3-credentials FILE a file with "access-key KEY" and "secret-key
                           SECRET" lines, not readable by others (default:
                           the s3.cfg section's, else $AWS_ACCESS_KEY_ID and
                           $AWS_SECRET_ACCESS_KEY; never a flag)
      --s3-cache-dir DIR   keep fetched chunks in DIR as well as in memory
      --s3-cache-size MiB  bound of --s3-cache-dir (default 4096)
      --s3-timeout DURATION bound of each S3 request, retries included; a
                           request that runs out fails with EIO (default 30s)
`

// s3Flags are the options of a bucket datastore.
type s3Flags struct {
	endpoint     s3store.EndpointFlags
	cacheDir     string
	cacheSizeMiB int
	timeout      time.Duration
}

func (f *s3Flags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.endpoint.URL, "s3-endpoint", "", "")
	fs.StringVar(&f.endpoint.Region, "s3-region", "", "")
	fs.BoolVar(&f.endpoint.PathStyle, "s3-path-style", false, "")
	fs.StringVar(&f.endpoint.Fingerprint, "s3-fingerprint", "", "")
	fs.StringVar(&f.endpoint.Config, "s3-config", "", "")
	fs.StringVar(&f.endpoint.Client, "s3-client", "", "")
	fs.StringVar(&f.endpoint.Credentials, "s3-credentials", "", "")
	fs.StringVar(&f.cacheDir, "s3-cache-dir", "", "")
	fs.IntVar(&f.cacheSizeMiB, "s3-cache-size", 4096, "")
	fs.DurationVar(&f.timeout, "s3-timeout", 30*time.Second, "")
}

// given reports whether any S3 option was set (they need an s3:// source).
func (f *s3Flags) given() bool {
	e := f.endpoint
	return e != (s3store.EndpointFlags{}) || f.cacheDir != ""
}

// isS3Source reports whether a DATASTORE argument names a bucket.
func isS3Source(s string) bool { return strings.HasPrefix(s, "s3://") }

// validate checks what needs no network or file access.
func (f *s3Flags) validate(cmd, source string) error {
	bad := func(format string, args ...any) error {
		return &usageError{cmd: cmd, msg: fmt.Sprintf(format, args...)}
	}
	if !isS3Source(source) {
		if f.given() {
			return bad("the --s3-* options are for an s3://BUCKET/STORE datastore, not %q", source)
		}
		return nil
	}
	if _, err := s3store.ParseLocation(source); err != nil {
		return bad("%v", err)
	}
	if f.cacheSizeMiB < 1 {
		return bad("--s3-cache-size: %d is not a positive number of MiB", f.cacheSizeMiB)
	}
	if f.timeout <= 0 {
		return bad("--s3-timeout: %v is not a positive duration", f.timeout)
	}
	if u, err := url.Parse(f.endpoint.URL); err == nil && u.User != nil {
		// They would show in ps and in logs: credentials come from the
		// environment, a file or s3.cfg.
		return bad("--s3-endpoint: no credentials in the URL; use $AWS_ACCESS_KEY_ID/$AWS_SECRET_ACCESS_KEY or --s3-credentials FILE")
	}
	return nil
}

// Exit codes of bucket mounts, from the kind of the failed first request.
var s3ExitCodes = []struct {
	kind error
	code int
	hint string
}{
	{s3store.ErrAuth, ExitS3Auth, "check the access key and secret key"},
	{s3store.ErrNoBucket, ExitS3NotFound, "check the bucket name"},
	{s3store.ErrNotFound, ExitS3NotFound, "check the datastore name: PBS keeps it as the bucket's top-level prefix"},
	{s3store.ErrCertificate, ExitS3Certificate, "check --s3-fingerprint, or the endpoint's certificate and scheme"},
	{s3store.ErrUnreachable, ExitS3Unreachable, "check --s3-endpoint and the network"},
	{s3store.ErrTimeout, ExitS3Unreachable, "the endpoint did not answer within --s3-timeout"},
}

// openBucketStore connects to the bucket of an s3://BUCKET/STORE datastore,
// checks that the store is there, and opens it (read-only).
func (o *mountOptions) openBucketStore(log *slog.Logger) (store *datastore.Store, mnt string, err error) {
	loc, err := s3store.ParseLocation(o.store)
	if err != nil {
		return nil, "", &usageError{cmd: "pbsfs mount", msg: err.Error()}
	}
	ep, err := o.s3.endpoint.Resolve(loc.Bucket)
	if err != nil {
		return nil, "", exitf(ExitUsage, "%s: %w", loc, err)
	}
	mnt, err = checkMountpoint(o.mountpoint, o.stderr)
	if err != nil {
		return nil, "", err
	}
	// Listings and metadata objects are trusted for --recheck, then asked
	// again (ETag): what PBS changes shows after it, as locally.
	bo := s3store.Options{Timeout: o.s3.timeout, CacheDirBytes: int64(o.s3.cacheSizeMiB) << 20, Recheck: o.recheck}
	if o.s3.cacheDir != "" {
		if bo.CacheDir, err = filepath.Abs(o.s3.cacheDir); err != nil {
			return nil, "", exitf(ExitUsage, "--s3-cache-dir: %w", err)
		}
		if bo.CacheDir == mnt || within(bo.CacheDir, mnt) {
			return nil, "", exitf(ExitMountPoint, "--s3-cache-dir %s is inside the mountpoint %s", bo.CacheDir, mnt)
		}
	}
	archives, err := o.archives.options(o.stderr, log)
	if err != nil {
		return nil, "", err
	}
	log.Info("connecting to the bucket", "datastore", loc.String(), "endpoint", ep.URL, "region", ep.Region,
		"path-style", ep.PathStyle, "pinned-certificate", ep.Fingerprint != "")
	b, err := s3store.Open(context.Background(), ep, loc, bo)
	if err != nil {
		return nil, "", bucketExit(loc, ep.URL, err)
	}
	store, err = datastore.OpenS3(b, datastore.Options{
		CacheSize: o.cacheSize,
		Archives:  archives,
		Logger:    log,
	})
	if err != nil {
		b.Close()
		return nil, "", exitf(ExitDatastore, "%w", err)
	}
	log.Info("the datastore is read from its bucket, read-only: changes go through PBS; "+
		"PBS's locks, maintenance mode and active operations are the PBS host's and are not seen from here",
		"datastore", loc.String())
	return store, mnt, nil
}

// bucketExit is the error of a failed connection: the named exit code of
// its kind and a hint.
func bucketExit(loc s3store.Location, endpoint string, err error) error {
	for _, c := range s3ExitCodes {
		if errors.Is(err, c.kind) {
			return exitf(c.code, "%s at %s: %w (%s)", loc, endpoint, err, c.hint)
		}
	}
	var se *s3store.Error
	if errors.As(err, &se) {
		return exitf(ExitDatastore, "%s at %s: %w", loc, endpoint, err)
	}
	return exitf(ExitUsage, "%s: %w", loc, err) // the endpoint's settings (New)
}
