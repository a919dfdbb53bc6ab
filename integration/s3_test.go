package integration

// A PBS 4 S3 datastore mounted straight from its bucket (issue 17): the
// demo store uploaded as PBS lays it out (s3store.Upload) to a real S3
// server (SeaweedFS's weed server, s3test), mounted from the bucket by the
// pbsfs binary and compared with the same store mounted locally.

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"log"
	"net"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"golang.org/x/sys/unix"

	"pbsfs/demo"
	"pbsfs/manifest"
	"pbsfs/s3store"
	"pbsfs/s3store/s3test"
)

// s3srv is the S3 server of this package's tests (stopped in runTests).
var s3srv s3test.Server

// s3Sample is the demo store uploaded once to bucket s3SampleBucket as
// datastore s3SampleStore; dir is the local copy it was uploaded from.
var s3Sample struct {
	once sync.Once
	dir  string
	err  error
}

const (
	s3SampleBucket = "pbsfs-it"
	s3SampleStore  = "store1"
)

// s3Endpoint is the test server as an s3store endpoint.
func s3Endpoint(s *s3test.Server) s3store.Endpoint {
	return s3store.Endpoint{URL: s.Endpoint(), PathStyle: true,
		Credentials: s3store.Credentials{AccessKey: s.AccessKey, SecretKey: s3store.NewSecret(s.SecretKey)}}
}

// s3SampleStoreDir starts the server if needed, uploads the demo store
// once, and returns the local directory it came from.
func s3SampleStoreDir(t *testing.T) string {
	t.Helper()
	requireFUSE(t)
	s := s3srv.Need(t)
	s3Sample.once.Do(func() {
		dir, err := os.MkdirTemp("", "pbsfs-it-s3-")
		if err != nil {
			s3Sample.err = err
			return
		}
		s3Sample.dir = filepath.Join(dir, "store1")
		if _, err := demo.Sample(s3Sample.dir); err != nil {
			s3Sample.err = err
			return
		}
		s3Sample.err = uploadStore(s, s3Sample.dir, s3SampleBucket, s3SampleStore)
	})
	if s3Sample.err != nil {
		t.Fatalf("sample bucket: %v", s3Sample.err)
	}
	return s3Sample.dir
}

// uploadStore lays the local store at dir out in bucket/store.
func uploadStore(s *s3test.Server, dir, bucket, store string) error {
	w, err := s3store.New(s3Endpoint(s), s3store.Location{Bucket: bucket, Store: store}, s3store.Options{})
	if err != nil {
		return err
	}
	defer w.Close()
	ctx := context.Background()
	if err := w.CreateBucket(ctx); err != nil {
		return err
	}
	_, err = s3store.Upload(ctx, w, dir, "pbs-test")
	return err
}

// s3Env is the environment of a pbsfs that reads the test server's
// buckets: the credentials go in the environment, never on the command
// line.
func s3Env(s *s3test.Server) []string {
	return append(os.Environ(), "AWS_ACCESS_KEY_ID="+s.AccessKey, "AWS_SECRET_ACCESS_KEY="+s.SecretKey)
}

// startS3Mount mounts s3://bucket/store from the test server; local is the
// local store it was uploaded from (what the mount must show).
func startS3Mount(t *testing.T, local, source string, extra ...string) *mount {
	t.Helper()
	s := s3srv.Need(t)
	args := append([]string{"--s3-endpoint", s.Endpoint(), "--s3-path-style"}, extra...)
	return startS3MountEnv(t, local, s3Env(s), append(args, source)...)
}

// startS3MountEnv runs "pbsfs mount -v ARGS... MOUNTPOINT" with the
// environment env and waits until it shows the local store's top level.
func startS3MountEnv(t *testing.T, local string, env []string, args ...string) *mount {
	t.Helper()
	m := &mount{
		t:      t,
		store:  local,
		dir:    filepath.Join(t.TempDir(), "mnt"),
		stderr: &syncBuffer{},
		done:   make(chan struct{}),
	}
	if err := os.Mkdir(m.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(pbsfsBin, append(append([]string{"mount", "-v"}, args...), m.dir)...)
	cmd.Env = env
	m.run(cmd)
	return m
}

// demoKeyArgs writes the demo's key file and returns the flags that use
// it, so that encrypted archives are compared too.
func demoKeyArgs(t *testing.T) []string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "demo-key.json")
	if err := demo.WriteKeyFile(p); err != nil {
		t.Fatal(err)
	}
	return []string{"--keyfile", p}
}

// s3Describe describes every entry below root for comparing two mounts:
// type and permission bits, owner, size (not of directories: a bucket has
// none), link target, device numbers, xattrs and the content's SHA-256 —
// not inode numbers or times. Files larger than s3FullRead are read 64 KiB
// at the start of every 4 MiB (each chunk of a disk image: every chunk is
// fetched and verified in full) and at the end: the demo's sparse images
// add up to tens of GiB.
func s3Describe(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, _ iofs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("walk %s: %w", p, err)
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return fmt.Errorf("lstat %s: %w", p, err)
		}
		typ := st.Mode & unix.S_IFMT
		d := fmt.Sprintf("mode=%o uid=%d gid=%d", st.Mode, st.Uid, st.Gid)
		switch typ {
		case unix.S_IFREG:
			sum, err := s3FileSum(p, st.Size)
			if err != nil {
				return fmt.Errorf("read %s: %w", p, err)
			}
			d += fmt.Sprintf(" size=%d sha256=%s", st.Size, sum)
		case unix.S_IFLNK:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			d += fmt.Sprintf(" size=%d -> %q", st.Size, target)
		case unix.S_IFCHR, unix.S_IFBLK:
			d += fmt.Sprintf(" rdev=%d,%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
		}
		if typ == unix.S_IFREG || typ == unix.S_IFDIR {
			d += " xattrs=" + xattrDump(t, p)
		}
		rel, _ := filepath.Rel(root, p)
		out[rel] = d
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", root, err)
	}
	return out
}

// s3FullRead is the size up to which s3Describe hashes whole files.
const s3FullRead = 64 << 20

func s3FileSum(p string, size int64) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if size <= s3FullRead {
		n, err := io.Copy(h, f)
		if err != nil {
			return "", err
		}
		if n != size {
			return "", fmt.Errorf("%s: read %d bytes of %d", p, n, size)
		}
		return hex.EncodeToString(h.Sum(nil)), nil
	}
	buf := make([]byte, 64<<10)
	read := func(off int64) error {
		n, err := f.ReadAt(buf, off)
		if err != nil && !(errors.Is(err, io.EOF) && off+int64(n) == size) {
			return fmt.Errorf("%s at %d: %w", p, off, err)
		}
		h.Write(buf[:n])
		return nil
	}
	for off := int64(0); off < size; off += 4 << 20 {
		if err := read(off); err != nil {
			return "", err
		}
	}
	if err := read(max(size-int64(len(buf)), 0)); err != nil {
		return "", err
	}
	return "sampled:" + hex.EncodeToString(h.Sum(nil)), nil
}

// TestS3MountMatchesLocal mounts the demo store from its bucket and from
// its directory and compares everything: the tree, every entry's type,
// mode, owner, size, link target and xattrs, and every file's bytes —
// notes, owner, manifest.json, blobs, disk images, catalogs and the files
// of the pxar trees (NAME.pxar/), encrypted archives included (the demo
// key).
func TestS3MountMatchesLocal(t *testing.T) {
	local := s3SampleStoreDir(t)
	key := demoKeyArgs(t)
	lm := startMount(t, local, append([]string{"--read-only"}, key...)...)
	sm := startS3Mount(t, local, "s3://"+s3SampleBucket+"/"+s3SampleStore, key...)

	want, got := s3Describe(t, lm.dir), s3Describe(t, sm.dir)
	pxarFiles := 0
	for p := range want {
		if strings.Contains(p, ".pxar/") {
			pxarFiles++
		}
	}
	if len(want) < 100 || pxarFiles < 20 {
		t.Fatalf("the local mount shows only %d entries (%d in pxar trees): not the demo store", len(want), pxarFiles)
	}
	var paths []string
	for p := range want {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		if g, ok := got[p]; !ok {
			t.Errorf("%s: missing from the bucket mount", p)
		} else if g != want[p] {
			t.Errorf("%s:\n  local  %s\n  bucket %s", p, want[p], g)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("%s: only in the bucket mount", p)
		}
	}
	t.Logf("%d entries compared, %d of them in pxar trees", len(want), pxarFiles)
	if !strings.Contains(sm.stderr.String(), "read from its bucket, read-only") {
		t.Errorf("the bucket mount's log does not say it is read-only:\n%s", sm.stderr)
	}
	sm.stop()
	lm.stop()
	var reqs int
	for _, line := range strings.Split(sm.stderr.String(), "\n") {
		if strings.Contains(line, "S3 requests sent") {
			fmt.Sscanf(line[strings.Index(line, "requests=")+len("requests="):], "%d", &reqs)
		}
	}
	if reqs == 0 {
		t.Errorf("the bucket mount did not log its requests:\n%s", sm.stderr)
	}
	t.Logf("%d S3 requests for the walk and reads (%.2f per entry)", reqs, float64(reqs)/float64(len(want)))
}

// s3Objects lists every key of bucket with its ETag and size (a listing
// of the whole bucket, which pbsfs itself never makes).
func s3Objects(t *testing.T, s *s3test.Server, bucket string) map[string]string {
	t.Helper()
	c, err := minio.New(strings.TrimPrefix(s.Endpoint(), "http://"), &minio.Options{
		Creds: credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""), BucketLookup: minio.BucketLookupPath,
	})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for o := range c.ListObjects(context.Background(), bucket, minio.ListObjectsOptions{Recursive: true}) {
		if o.Err != nil {
			t.Fatalf("listing bucket %s: %v", bucket, o.Err)
		}
		out[o.Key] = fmt.Sprintf("%s %d", o.ETag, o.Size)
	}
	return out
}

// TestS3MountRefusesChanges tries every kind of change through a bucket
// mount: each fails with EROFS, the log says that changes go through PBS,
// and the bucket holds exactly the objects it held before.
func TestS3MountRefusesChanges(t *testing.T) {
	local := s3SampleStoreDir(t)
	s := s3srv.Need(t)
	before := s3Objects(t, s, s3SampleBucket)
	if len(before) < 50 {
		t.Fatalf("the bucket holds only %d objects", len(before))
	}
	m := startS3Mount(t, local, "s3://"+s3SampleBucket+"/"+s3SampleStore)
	group := m.path("vm", "100")
	snaps := subdirs(t, group, timeRE)
	if len(snaps) == 0 {
		t.Fatal("no snapshots in vm/100")
	}
	snap := filepath.Join(group, snaps[0])
	notesBefore, err := os.ReadFile(filepath.Join(snap, "notes"))
	if err != nil {
		t.Fatal(err)
	}
	changes := []struct {
		what string
		do   func() error
	}{
		{"write snapshot notes", func() error { return os.WriteFile(filepath.Join(snap, "notes"), []byte("changed\n"), 0o644) }},
		{"append group notes", func() error {
			f, err := os.OpenFile(filepath.Join(group, "notes"), os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				return err
			}
			_, werr := f.WriteString("more\n")
			if cerr := f.Close(); werr == nil {
				werr = cerr
			}
			return werr
		}},
		{"truncate notes", func() error { return os.Truncate(filepath.Join(snap, "notes"), 0) }},
		{"create a file", func() error { return os.WriteFile(filepath.Join(snap, "new"), nil, 0o644) }},
		{"mkdir", func() error { return os.Mkdir(filepath.Join(group, "2030-01-01T00:00:00Z"), 0o755) }},
		{"rmdir a snapshot", func() error { return syscall.Rmdir(snap) }},
		{"rename notes", func() error { return os.Rename(filepath.Join(snap, "notes"), filepath.Join(snap, "notes.old")) }},
		{"remove owner", func() error { return os.Remove(filepath.Join(group, "owner")) }},
		{"chmod notes", func() error { return os.Chmod(filepath.Join(snap, "notes"), 0o600) }},
		{"chmod a snapshot", func() error { return os.Chmod(snap, 0o700) }},
		{"set an xattr", func() error { return unix.Setxattr(filepath.Join(snap, "notes"), "user.x", []byte("y"), 0) }},
		{"symlink", func() error { return os.Symlink("notes", filepath.Join(snap, "link")) }},
	}
	for _, c := range changes {
		if err := c.do(); !errors.Is(err, syscall.EROFS) {
			t.Errorf("%s: %v, want EROFS", c.what, err)
		}
	}
	if got, err := os.ReadFile(filepath.Join(snap, "notes")); err != nil || string(got) != string(notesBefore) {
		t.Errorf("notes after the refused changes: %q, %v; want %q", got, err, notesBefore)
	}
	if _, err := os.Stat(snap); err != nil {
		t.Errorf("the snapshot after the refused rmdir: %v", err)
	}
	after := s3Objects(t, s, s3SampleBucket)
	if len(after) != len(before) {
		t.Errorf("the bucket held %d objects, now %d", len(before), len(after))
	}
	for k, etag := range before {
		if after[k] != etag {
			t.Errorf("object %s changed: ETag %q, now %q", k, etag, after[k])
		}
	}
	m.stop()
	// One warning for all the refusals (besides the mount's info line).
	warned := 0
	for _, line := range strings.Split(m.stderr.String(), "\n") {
		if strings.Contains(line, "level=WARN") && strings.Contains(line, "changes go through PBS") {
			warned++
		}
	}
	if warned != 1 {
		t.Errorf("%d warnings saying that changes go through PBS, want 1:\n%s", warned, m.stderr)
	}
}

// TestS3MountFailures checks the mount-time failures of a bucket mount:
// each ends pbsfs before anything is mounted, with its named exit code and
// a message saying what is wrong, and no credential in the output.
func TestS3MountFailures(t *testing.T) {
	s3SampleStoreDir(t)
	s := s3srv.Need(t)
	mnt := t.TempDir()
	src := "s3://" + s3SampleBucket + "/" + s3SampleStore

	// A TLS proxy with a self-signed certificate in front of the server:
	// the pin decides whether it is accepted.
	weedURL, err := url.Parse(s.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	tlsSrv := httptest.NewUnstartedServer(httputil.NewSingleHostReverseProxy(weedURL))
	tlsSrv.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
	tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes
	tlsSrv.StartTLS()
	defer tlsSrv.Close()
	cert := tlsSrv.Certificate()
	right := s3store.Fingerprint(cert.Raw)
	wrong := s3store.Fingerprint(append([]byte("x"), cert.Raw...))

	// An address nothing listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	l.Close()
	// One that accepts connections and never answers (a hung endpoint).
	hung, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hung.Close()
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := hung.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()

	for _, c := range []struct {
		name string
		env  []string
		args []string
		code int
		msg  string
	}{
		{"wrong secret key", []string{"AWS_ACCESS_KEY_ID=" + s.AccessKey, "AWS_SECRET_ACCESS_KEY=wrong-secret-0123456789"},
			[]string{"--s3-endpoint", s.Endpoint(), "--s3-path-style", src}, 16, "access denied"},
		{"unknown access key", []string{"AWS_ACCESS_KEY_ID=nobody", "AWS_SECRET_ACCESS_KEY=" + s.SecretKey},
			[]string{"--s3-endpoint", s.Endpoint(), "--s3-path-style", src}, 16, "access denied"},
		{"no such bucket", nil, []string{"--s3-endpoint", s.Endpoint(), "--s3-path-style", "s3://no-such-bucket/" + s3SampleStore}, 17, "no such bucket"},
		{"no such datastore", nil, []string{"--s3-endpoint", s.Endpoint(), "--s3-path-style", "s3://" + s3SampleBucket + "/nostore"}, 17, "no datastore"},
		{"unreachable endpoint", nil, []string{"--s3-endpoint", dead, "--s3-path-style", "--s3-timeout", "5s", src}, 19, "unreachable"},
		{"endpoint not answering", nil, []string{"--s3-endpoint", "http://" + hung.Addr().String(), "--s3-path-style", "--s3-timeout", "2s", src}, 19, "timed out"},
		{"wrong fingerprint", nil, []string{"--s3-endpoint", tlsSrv.URL, "--s3-path-style", "--s3-fingerprint", wrong, src}, 18, "certificate"},
		{"self-signed, no pin", nil, []string{"--s3-endpoint", tlsSrv.URL, "--s3-path-style", src}, 18, "certificate"},
		{"no credentials", []string{"AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY="},
			[]string{"--s3-endpoint", s.Endpoint(), "--s3-path-style", src}, ExitUsageCode, "no S3 credentials"},
		{"credentials in the URL", nil, []string{"--s3-endpoint", "http://key:secret@" + strings.TrimPrefix(s.Endpoint(), "http://"), src}, ExitUsageCode, "no credentials in the URL"},
	} {
		t.Run(c.name, func(t *testing.T) {
			env := s3Env(s)
			if c.env != nil {
				env = append(env, c.env...)
			}
			args := append(append([]string{"mount"}, c.args...), mnt)
			code, out := runPbsfsEnv(t, env, args...)
			if code != c.code || !strings.Contains(out, c.msg) {
				t.Errorf("exit %d, want %d with %q; output:\n%s", code, c.code, c.msg, out)
			}
			if strings.Contains(out, s.SecretKey) || strings.Contains(out, "wrong-secret") {
				t.Errorf("a secret key is in the output:\n%s", out)
			}
			if isMounted(mnt) {
				t.Errorf("%s is mounted", mnt)
			}
		})
	}

	// With the right pin, the mount works through the proxy.
	local := s3SampleStoreDir(t)
	args := []string{"--s3-endpoint", tlsSrv.URL, "--s3-path-style", "--s3-fingerprint", right, src}
	m := startS3MountEnv(t, local, s3Env(s), args...)
	owner, err := os.ReadFile(m.path("vm", "100", "owner"))
	want, _ := os.ReadFile(filepath.Join(local, "vm", "100", "owner"))
	if err != nil || string(owner) != string(want) {
		t.Errorf("vm/100/owner through the pinned TLS endpoint: %q, %v; want %q", owner, err, want)
	}
	m.stop()
}

// ExitUsageCode is pbsfs's exit code for usage errors.
const ExitUsageCode = 2

// runPbsfsEnv is runPbsfs with the environment env.
func runPbsfsEnv(t *testing.T, env []string, args ...string) (int, string) {
	t.Helper()
	if buildErr != nil {
		t.Fatalf("building pbsfs failed: %v", buildErr)
	}
	cmd := exec.Command(pbsfsBin, args...)
	cmd.Env = env
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(scaled(90 * time.Second)):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("pbsfs %q did not exit\n%s", args, out.String())
	}
	return cmd.ProcessState.ExitCode(), out.String()
}

// removeS3Sample removes the local copy of the uploaded demo store.
func removeS3Sample() {
	if s3Sample.dir != "" {
		_ = os.RemoveAll(filepath.Dir(s3Sample.dir))
	}
}

// TestS3Mount8 mounts a bucket datastore the mount(8) way, with the
// credentials in a file and the endpoint in -o options: mount returns with
// the tree served, findmnt shows the s3:// source, a write fails with
// "Read-only file system", and umount ends the background server.
func TestS3Mount8(t *testing.T) {
	requireMount8(t)
	local := s3SampleStoreDir(t)
	s := s3srv.Need(t)
	dir := t.TempDir()
	mnt := filepath.Join(dir, "mnt")
	log := filepath.Join(dir, "pbsfs.log")
	creds := filepath.Join(dir, "s3-credentials")
	if err := os.WriteFile(creds, []byte("access-key "+s.AccessKey+"\nsecret-key "+s.SecretKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Mkdir(mnt, 0o755)
	src := "s3://" + s3SampleBucket + "/" + s3SampleStore
	opts := "s3_endpoint=" + s.Endpoint() + ",s3_path_style,s3_credentials=" + creds + ",verbose,log-file=" + log + ",nofail,_netdev"
	out, err := inMountNS(t, dir, `
mount -t fuse.pbsfs `+shq(src)+` `+shq(mnt)+` -o `+shq(opts)+` || { echo "mount failed: $?"; exit 1; }
ls `+shq(mnt)+` | tr '\n' ' '; echo
cat `+shq(filepath.Join(mnt, demo.SampleVM, "manifest.json"))+` | grep -c '"backup-id"'
findmnt -n -o FSTYPE,SOURCE `+shq(mnt)+`
echo changed >`+shq(filepath.Join(mnt, demo.SampleVM, "notes"))+` && echo "WROTE"
k=$(sed -n 's/^secret-key //p' `+shq(creds)+`); ps -eo args >`+shq(filepath.Join(dir, "ps.out"))+`; echo "secret in ps: $(grep -cF "$k" `+shq(filepath.Join(dir, "ps.out"))+`)"
umount `+shq(mnt)+` && echo "UNMOUNTED"
`)
	t.Logf("script output:\n%s", out)
	if err != nil {
		t.Fatalf("script: %v", err)
	}
	want := strings.Join(expectedNames(t, local, ""), " ") + " \n"
	for _, w := range []string{want, "\n1\n", "fuse.pbsfs " + src + "\n", "Read-only file system", "secret in ps: 0\n", "UNMOUNTED"} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q", w)
		}
	}
	if strings.Contains(out, "WROTE") {
		t.Error("wrote through a bucket mount")
	}
	waitLog(t, log, `msg=unmounted`)
	if data, _ := os.ReadFile(log); strings.Contains(string(data), s.SecretKey) {
		t.Errorf("the log holds the secret key:\n%s", data)
	}
}

// TestS3MountFromS3Cfg mounts with the endpoint and the credentials taken
// from a PBS s3.cfg section (--s3-config FILE --s3-client ID), with no
// credentials in the environment.
func TestS3MountFromS3Cfg(t *testing.T) {
	local := s3SampleStoreDir(t)
	s := s3srv.Need(t)
	cfg := filepath.Join(t.TempDir(), "s3.cfg")
	host, port, _ := net.SplitHostPort(strings.TrimPrefix(s.Endpoint(), "http://"))
	text := "s3-endpoint: other\n\tendpoint s3.example.net\n\taccess-key x\n\tsecret-key y\n\n" +
		"s3-endpoint: local-weed\n\tendpoint http://" + host + "\n\tport " + port + "\n\tpath-style true\n" +
		"\taccess-key " + s.AccessKey + "\n\tsecret-key " + s.SecretKey + "\n"
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY=")
	m := startS3MountEnv(t, local, env, "--s3-config", cfg, "--s3-client", "local-weed", "s3://"+s3SampleBucket+"/"+s3SampleStore)
	owner, err := os.ReadFile(m.path("vm", "100", "owner"))
	want, _ := os.ReadFile(filepath.Join(local, "vm", "100", "owner"))
	if err != nil || string(owner) != string(want) {
		t.Errorf("vm/100/owner through the s3.cfg mount: %q, %v; want %q", owner, err, want)
	}
	m.stop()
	if strings.Contains(m.stderr.String(), s.SecretKey) {
		t.Errorf("the log holds the secret key:\n%s", m.stderr)
	}
}

// TestS3MountSeesPBSChanges changes the bucket as PBS would while it is
// mounted — new notes in a snapshot's manifest, a new snapshot, a
// forgotten one — and checks that the mount shows each within a few
// recheck intervals, as it shows PBS's changes to a local store.
func TestS3MountSeesPBSChanges(t *testing.T) {
	local := s3SampleStoreDir(t)
	s := s3srv.Need(t)
	const bucket = "pbsfs-it-changes"
	if err := uploadStore(s, local, bucket, s3SampleStore); err != nil {
		t.Fatal(err)
	}
	w, err := s3store.New(s3Endpoint(s), s3store.Location{Bucket: bucket, Store: s3SampleStore}, s3store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	m := startS3Mount(t, local, "s3://"+bucket+"/"+s3SampleStore)
	ctx := context.Background()

	group := filepath.Dir(demo.SampleVM)
	snaps := subdirs(t, filepath.Join(local, group), timeRE)
	if len(snaps) < 2 {
		t.Fatalf("%s has %d snapshots, want 2 or more", group, len(snaps))
	}
	// Look first, so that the kernel and pbsfs hold what must go stale.
	notesPath := m.path(demo.SampleVM, "notes")
	if _, err := os.ReadFile(notesPath); err != nil {
		t.Fatal(err)
	}
	if names, err := readNames(m.path(group)); err != nil || len(names) < len(snaps) {
		t.Fatalf("%s: %q, %v", group, names, err)
	}

	// New notes: PBS rewrites index.json.blob.
	manRel := filepath.Join(demo.SampleVM, "index.json.blob")
	raw, err := os.ReadFile(filepath.Join(local, manRel))
	if err != nil {
		t.Fatal(err)
	}
	newRaw, _, err := manifest.UpdateBlob(raw, func(u *manifest.Unprotected) error { return u.SetNotes("edited in the PBS GUI") })
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Put(ctx, ".cnt/"+manRel, newRaw); err != nil {
		t.Fatal(err)
	}
	// A new snapshot: SampleVM's files under a new time.
	newSnap := "2030-01-01T00:00:00Z"
	last := filepath.Join(local, demo.SampleVM)
	ents, err := os.ReadDir(last)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(last, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if e.Name() == "index.json.blob" {
			continue // written last, as PBS finishes a backup
		}
		if err := w.Put(ctx, ".cnt/"+group+"/"+newSnap+"/"+e.Name(), data); err != nil {
			t.Fatal(err)
		}
	}
	lastMan, err := os.ReadFile(filepath.Join(last, "index.json.blob"))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Put(ctx, ".cnt/"+group+"/"+newSnap+"/index.json.blob", lastMan); err != nil {
		t.Fatal(err)
	}
	// A forgotten snapshot: every object of the first one removed.
	gone := snaps[len(snaps)-1]
	if gone == filepath.Base(demo.SampleVM) {
		gone = snaps[0]
	}
	goneDir := filepath.Join(local, group, gone)
	ents, err = os.ReadDir(goneDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Type().IsRegular() {
			if err := w.Remove(ctx, ".cnt/"+group+"/"+gone+"/"+e.Name()); err != nil {
				t.Fatal(err)
			}
		}
	}

	changed := time.Now()
	deadline := changed.Add(scaled(30 * time.Second))
	for {
		notes, nerr := os.ReadFile(notesPath)
		names, lerr := readNames(m.path(group))
		_, serr := os.Stat(m.path(group, newSnap, "manifest.json"))
		// SeaweedFS keeps an emptied "directory" in delimiter listings
		// (its filer has real directories; S3 proper has none), so the
		// forgotten snapshot may stay listed there; it must not be found.
		_, gerr := os.Stat(m.path(group, gone))
		ok := nerr == nil && strings.TrimSpace(string(notes)) == "edited in the PBS GUI" && lerr == nil &&
			slicesContains(names, newSnap) && errors.Is(gerr, os.ErrNotExist) && serr == nil
		if ok {
			t.Logf("all three changes seen after %v", time.Since(changed).Round(100*time.Millisecond))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 30s: notes %q (%v), %s lists %q (%v; want %s), new manifest.json: %v, forgotten %s: %v",
				notes, nerr, group, names, lerr, newSnap, serr, gone, gerr)
		}
		time.Sleep(200 * time.Millisecond)
	}
	m.stop()
}

func slicesContains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestS3MountCacheDir mounts with --s3-cache-dir: chunks read through the
// mount land in the directory; a cache directory inside the mountpoint is
// refused (11), as it would be served by the mount itself.
func TestS3MountCacheDir(t *testing.T) {
	local := s3SampleStoreDir(t)
	s := s3srv.Need(t)
	src := "s3://" + s3SampleBucket + "/" + s3SampleStore
	mnt := t.TempDir()
	code, out := runPbsfsEnv(t, s3Env(s), "mount", "--s3-endpoint", s.Endpoint(), "--s3-path-style",
		"--s3-cache-dir", filepath.Join(mnt, "cache"), src, mnt)
	if code != 11 || !strings.Contains(out, "inside the mountpoint") {
		t.Errorf("a cache directory inside the mountpoint: exit %d, want 11; output:\n%s", code, out)
	}

	cache := filepath.Join(t.TempDir(), "cache")
	m := startS3Mount(t, local, src, "--s3-cache-dir", cache, "--s3-cache-size", "64")
	img := m.path(demo.SampleVM, "drive-scsi0.img")
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	for off := int64(0); off < 64<<20; off += 4 << 20 {
		if _, err := f.ReadAt(buf, off); err != nil {
			t.Fatalf("read %s at %d: %v", img, off, err)
		}
	}
	f.Close()
	files := 0
	_ = filepath.WalkDir(cache, func(p string, d iofs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			files++
		}
		return nil
	})
	if files == 0 {
		t.Errorf("no chunk in the cache directory %s after reading 16 chunks", cache)
	}
	m.stop()
}
