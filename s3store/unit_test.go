package s3store

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseLocation(t *testing.T) {
	for _, tc := range []struct {
		in     string
		bucket string
		store  string
		ok     bool
	}{
		{"s3://pbs-bucket/store1", "pbs-bucket", "store1", true},
		{"s3://pbs-bucket/store1/", "pbs-bucket", "store1", true},
		{"s3://b/s.t-1_x", "b", "s.t-1_x", true},
		{"s3://pbs-bucket", "", "", false},
		{"s3://pbs-bucket/", "", "", false},
		{"s3:///store", "", "", false},
		{"s3://b/a/b", "", "", false},
		{"s3://b/-x", "", "", false},
		{"s3://b/.x", "", "", false},
		{"https://b/s", "", "", false},
		{"/srv/store", "", "", false},
	} {
		l, err := ParseLocation(tc.in)
		if (err == nil) != tc.ok || l.Bucket != tc.bucket || l.Store != tc.store {
			t.Errorf("ParseLocation(%q) = %+v, %v; want %q %q ok=%v", tc.in, l, err, tc.bucket, tc.store, tc.ok)
		}
	}
}

const sampleS3Cfg = `s3-endpoint: aws
	access-key AKIAEXAMPLE
	endpoint {{bucket}}.s3.{{region}}.amazonaws.com
	region eu-central-1
	secret-key sEcReTvAlUe
	provider-quirks skip-if-none-match-header

s3-endpoint: local
	access-key minio
	endpoint 192.168.1.10
	port 9000
	path-style true
	fingerprint 0a:0B:0c:0d:0e:0f:10:11:12:13:14:15:16:17:18:19:1a:1b:1c:1d:1e:1f:20:21:22:23:24:25:26:27:28:29
	secret-key s2
`

func TestS3Config(t *testing.T) {
	c, err := ParseS3Config([]byte(sampleS3Cfg))
	if err != nil {
		t.Fatal(err)
	}
	e, err := c.Endpoint("aws", "pbs-bucket")
	if err != nil {
		t.Fatal(err)
	}
	if e.URL != "https://s3.eu-central-1.amazonaws.com" || e.PathStyle || e.Region != "eu-central-1" ||
		e.Credentials.AccessKey != "AKIAEXAMPLE" || e.Credentials.SecretKey.Reveal() != "sEcReTvAlUe" {
		t.Errorf("aws endpoint = %+v", e)
	}
	e, err = c.Endpoint("local", "b")
	if err != nil {
		t.Fatal(err)
	}
	if e.URL != "https://192.168.1.10:9000" || !e.PathStyle || e.Fingerprint == "" || e.Credentials.AccessKey != "minio" {
		t.Errorf("local endpoint = %+v", e)
	}
	if _, err := parseFingerprint(e.Fingerprint); err != nil {
		t.Errorf("fingerprint: %v", err)
	}
	if _, err := c.Endpoint("nope", "b"); !errors.Is(err, ErrNoEndpoint) {
		t.Errorf("unknown id: %v", err)
	}
	for _, bad := range []string{
		"s3-endpoint: x\n\tendpoint a\n\tendpoint b\n",
		"s3-endpoint: x\n\tendpoint\n",
		"s3-endpoint x\n",
		"s3-endpoint: x\ns3-endpoint: x\n",
	} {
		if _, err := ParseS3Config([]byte(bad)); err == nil {
			t.Errorf("ParseS3Config(%q) accepted", bad)
		}
	}
	c, _ = ParseS3Config([]byte("s3-endpoint: y\n\tendpoint h\n\tpath-style maybe\n\tsecret-key TOPSECRET\n"))
	if _, err := c.Endpoint("y", "b"); err == nil || strings.Contains(err.Error(), "TOPSECRET") {
		t.Errorf("bad path-style: %v", err)
	}
}

// TestSecretNeverPrints formats an endpoint every way a log line or an
// error could, and logs it through slog.
func TestSecretNeverPrints(t *testing.T) {
	e := Endpoint{URL: "http://x", Credentials: Credentials{AccessKey: "AK", SecretKey: NewSecret("hunter2-secret")}}
	var buf bytes.Buffer
	for _, f := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
		fmt.Fprintf(&buf, f+"\n", e)
		fmt.Fprintf(&buf, f+"\n", e.Credentials.SecretKey)
	}
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "endpoint", e, "secret", e.Credentials.SecretKey)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "endpoint", e, "secret", e.Credentials.SecretKey)
	if strings.Contains(buf.String(), "hunter2") {
		t.Fatalf("secret printed:\n%s", buf.String())
	}
	if e.Credentials.SecretKey.Reveal() != "hunter2-secret" {
		t.Fatal("Reveal")
	}
}

func TestCredentialsFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "creds")
	if err := os.WriteFile(p, []byte("# pbsfs\naccess-key AK1\nsecret-key = SK1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := ReadCredentialsFile(p)
	if err != nil || c.AccessKey != "AK1" || c.SecretKey.Reveal() != "SK1" {
		t.Fatalf("got %+v, %v", c, err)
	}
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadCredentialsFile(p); err == nil || !strings.Contains(err.Error(), "readable by everyone") {
		t.Errorf("world-readable file accepted: %v", err)
	}
	if err := os.WriteFile(p, []byte("access-key AK1\npassword SK1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadCredentialsFile(p); err == nil || strings.Contains(err.Error(), "SK1") {
		t.Errorf("bad file: %v", err)
	}
}

func TestMemCacheBoundedByBytes(t *testing.T) {
	c := newMemCache(100)
	for i := range 10 {
		c.add(fmt.Sprint(i), cacheEntry{data: make([]byte, 30)})
	}
	n, size := c.stats()
	if size > 100 || n != 3 {
		t.Fatalf("entries %d size %d, want 3 entries within 100 bytes", n, size)
	}
	if _, ok := c.get("9"); !ok {
		t.Error("newest entry evicted")
	}
	if _, ok := c.get("0"); ok {
		t.Error("oldest entry kept")
	}
	c.get("7") // 7 becomes the most recent: 8 goes next
	c.add("x", cacheEntry{data: make([]byte, 30)})
	if _, ok := c.get("8"); ok {
		t.Error("LRU order not kept")
	}
	c.add("huge", cacheEntry{data: make([]byte, 101)})
	if _, ok := c.get("huge"); ok {
		t.Error("object larger than the cache kept")
	}
	c.touch("x", time.Unix(5, 0))
	if e, _ := c.get("x"); !e.checked.Equal(time.Unix(5, 0)) {
		t.Error("touch")
	}
}

func TestDiskCacheBoundedBySize(t *testing.T) {
	dir := t.TempDir()
	d, err := openDiskCache(dir, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var digests [][32]byte
	for i := range 5 {
		var dg [32]byte
		dg[0], dg[31] = byte(i), 7
		digests = append(digests, dg)
		d.put(dg, bytes.Repeat([]byte{byte(i)}, 300))
	}
	if n, size := d.stats(); n != 3 || size != 900 {
		t.Fatalf("entries %d size %d", n, size)
	}
	if got := dirBytes(t, dir); got != 900 {
		t.Fatalf("directory holds %d bytes", got)
	}
	if data, ok := d.get(digests[4], 0); !ok || data[0] != 4 {
		t.Fatal("newest chunk missing")
	}
	if _, ok := d.get(digests[0], 0); ok {
		t.Fatal("oldest chunk kept")
	}
	// A leftover temporary file is removed, and the index is rebuilt.
	if err := os.WriteFile(filepath.Join(dir, "0400", ".tmp-123"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	d2, err := openDiskCache(dir, 600)
	if err != nil {
		t.Fatal(err)
	}
	if n, size := d2.stats(); n != 2 || size != 600 || dirBytes(t, dir) != 600 {
		t.Fatalf("reopened with a smaller limit: entries %d size %d dir %d", n, size, dirBytes(t, dir))
	}
}

func dirBytes(t *testing.T, dir string) int64 {
	var n int64
	_ = filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

func TestLayoutRules(t *testing.T) {
	for rel, want := range map[string]bool{
		"ns/a": true, "ns/a/ns/b": true, "ns": false, "ns/a/vm": false, "vm/100": false, "ns/a/ns": false,
	} {
		if isNamespaceDir(rel) != want {
			t.Errorf("isNamespaceDir(%q) != %v", rel, want)
		}
	}
	for name, want := range map[string]bool{
		"owner": true, "notes": true, ".protected": true, "index.json.blob": true, "drive-scsi0.img.fidx": true,
		"root.pxar.didx": true, "client.log.blob": true, ".lock": false, ".index.json.blob.tmp": false,
		"notes.tmp_x": false, "random": false,
	} {
		if isMetadataFile(name) != want {
			t.Errorf("isMetadataFile(%q) != %v", name, want)
		}
	}
}

func TestFingerprint(t *testing.T) {
	fp := Fingerprint([]byte("cert"))
	pin, err := parseFingerprint(strings.ToUpper(fp))
	if err != nil {
		t.Fatal(err)
	}
	pin2, err := parseFingerprint(strings.ReplaceAll(fp, ":", ""))
	if err != nil || pin != pin2 {
		t.Fatal("forms differ")
	}
	for _, bad := range []string{"", "zz", fp[:10], fp + ":00"} {
		if _, err := parseFingerprint(bad); err == nil {
			t.Errorf("parseFingerprint(%q) accepted", bad)
		}
	}
}
