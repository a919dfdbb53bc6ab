package main

import (
	"bytes"
	"flag"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
)

func runCLI(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestUsage(t *testing.T) {
	store := t.TempDir()
	mkdirs(t, filepath.Join(store, ".chunks"))
	cases := []struct {
		args       []string
		code       int
		out, errIn string
	}{
		{nil, ExitUsage, "", "Usage: pbsfs COMMAND"},
		{[]string{"--help"}, ExitOK, "Usage: pbsfs COMMAND", ""},
		{[]string{"help", "mount"}, ExitOK, "Usage: pbsfs mount", ""},
		{[]string{"help", "demo"}, ExitOK, "Usage: pbsfs demo", ""},
		{[]string{"help", "nope"}, ExitUsage, "", `unknown command "nope"`},
		{[]string{"frobnicate"}, ExitUsage, "", "Try 'pbsfs --help'"},
		{[]string{"version"}, ExitOK, "pbsfs ", ""},
		{[]string{"mount", "--help"}, ExitOK, "Exit status:", ""},
		{[]string{"mount", "-h"}, ExitOK, "Usage: pbsfs mount", ""},
		{[]string{"mount"}, ExitUsage, "", "missing DATASTORE and MOUNTPOINT"},
		{[]string{"mount", "/x"}, ExitUsage, "", "missing MOUNTPOINT"},
		{[]string{"mount", "/x", "/y", "/z"}, ExitUsage, "", "too many arguments"},
		{[]string{"mount", "--bogus", "/x", "/y"}, ExitUsage, "", "flag provided but not defined: -bogus"},
		{[]string{"mount", "--lock-scheme", "flock", "/x", "/y"}, ExitUsage, "", "--lock-scheme"},
		{[]string{"mount", "--cache-size", "0", "/x", "/y"}, ExitUsage, "", "--cache-size"},
		{[]string{"mount", "--read-ahead", "-1", "/x", "/y"}, ExitUsage, "", "--read-ahead"},
		{[]string{"mount", "--store", "a/b", "/x", "/y"}, ExitUsage, "", "--store"},
		{[]string{"mount", "/nonexistent-store", "/y"}, ExitDatastore, "", "does not exist"},
		{[]string{"mount", store, "/nonexistent-mnt"}, ExitMountPoint, "", "mkdir -p /nonexistent-mnt"},
		{[]string{"mount", store, filepath.Join(store, ".chunks")}, ExitMountPoint, "", "inside the datastore"},
		// s3:// datastores (the rest is in integration/s3_test.go).
		{[]string{"mount", "--s3-endpoint", "http://127.0.0.1:1", store, "/y"}, ExitUsage, "", "the --s3-* options are for an s3://BUCKET/STORE datastore"},
		{[]string{"mount", "--s3-endpoint", "http://127.0.0.1:1", "s3://bucket", "/y"}, ExitUsage, "", "want s3://BUCKET/STORE"},
		{[]string{"mount", "--s3-endpoint", "http://127.0.0.1:1", "s3://b/bad/name", "/y"}, ExitUsage, "", "want s3://BUCKET/STORE"},
		{[]string{"mount", "--s3-endpoint", "http://127.0.0.1:1", "--s3-cache-size", "0", "s3://b/s", "/y"}, ExitUsage, "", "--s3-cache-size"},
		{[]string{"mount", "--s3-endpoint", "http://127.0.0.1:1", "--s3-timeout", "0s", "s3://b/s", "/y"}, ExitUsage, "", "--s3-timeout"},
		{[]string{"mount", "--s3-endpoint", "http://k:s@127.0.0.1:1", "s3://b/s", "/y"}, ExitUsage, "", "no credentials in the URL"},
		{[]string{"mount", "--s3-config", "/nonexistent/s3.cfg", "s3://b/s", "/y"}, ExitUsage, "", "--s3-config and --s3-client go together"},
		{[]string{"mount", "s3://b/s", "/y"}, ExitUsage, "", "needs --s3-endpoint URL"},
		{[]string{"s3://b/s", "/y", "-o", "s3_endpoint=http://127.0.0.1:1,s3_cache_size=0"}, ExitUsage, "", "--s3-cache-size"},
		// The mount(8) form, refused before it would start a background child.
		{[]string{store, "/y", "-o", "ro,bogus"}, ExitUsage, "", `pbsfs: unknown mount option "bogus"`},
		{[]string{store, "/y", "-o", "cache-size=0"}, ExitUsage, "", "--cache-size: 0"},
		{[]string{"help"}, ExitOK, "pbsfs DATASTORE MOUNTPOINT [-o OPTION", ""},
		{[]string{"demo", "--help"}, ExitOK, "Usage: pbsfs demo", ""},
		{[]string{"demo", "a", "b"}, ExitUsage, "", "too many arguments"},
		{[]string{"demo", "--groups", "-1"}, ExitUsage, "", "negative"},
	}
	for _, c := range cases {
		code, out, errs := runCLI(c.args...)
		if code != c.code || !strings.Contains(out, c.out) || !strings.Contains(errs, c.errIn) {
			t.Errorf("pbsfs %q: exit %d, stdout %q, stderr %q; want exit %d, stdout with %q, stderr with %q",
				c.args, code, trunc(out), errs, c.code, c.out, c.errIn)
		}
	}
}

func trunc(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}

func TestParseArgsInterspersed(t *testing.T) {
	cases := []struct {
		args []string
		pos  []string
		ro   bool
		name string
	}{
		{[]string{"--read-only", "a", "b"}, []string{"a", "b"}, true, ""},
		{[]string{"a", "b", "--read-only"}, []string{"a", "b"}, true, ""},
		{[]string{"a", "--store", "s1", "b"}, []string{"a", "b"}, false, "s1"},
		{[]string{"--", "--read-only", "b"}, []string{"--read-only", "b"}, false, ""},
		{[]string{"a", "--", "-b"}, []string{"a", "-b"}, false, ""},
	}
	for _, c := range cases {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		ro := fs.Bool("read-only", false, "")
		name := fs.String("store", "", "")
		pos, err := parseArgs(fs, "t", "", c.args, &bytes.Buffer{})
		if err != nil || !slices.Equal(pos, c.pos) || *ro != c.ro || *name != c.name {
			t.Errorf("%q: pos %q ro %v store %q err %v", c.args, pos, *ro, *name, err)
		}
	}
}

func TestBuildVersion(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"},
		Deps:     []*debug.Module{{Path: "bazil.org/fuse", Version: "v0.0.0-x"}},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.modified", Value: "true"}}}
	if got, want := buildVersion("0.3.0", "", bi), "0.3.0 (commit 0123456789ab, modified, go1.26.8, bazil.org/fuse v0.0.0-x)"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	bi.Main.Version, bi.Settings = "v0.4.0", nil
	if got, want := buildVersion("devel", "", bi), "v0.4.0 (go1.26.8, bazil.org/fuse v0.0.0-x)"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got, want := buildVersion("0.3.0", "fedcba9876543210", bi), "0.3.0 (commit fedcba987654, go1.26.8, bazil.org/fuse v0.0.0-x)"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
