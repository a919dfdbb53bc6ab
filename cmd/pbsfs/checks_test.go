package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func mkdirs(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCheckDatastore(t *testing.T) {
	root := t.TempDir()
	store := filepath.Join(root, "store")
	mkdirs(t, filepath.Join(store, ".chunks"), filepath.Join(root, "plain"), filepath.Join(root, "chunkfile"))
	os.WriteFile(filepath.Join(root, "file"), nil, 0o644)
	os.WriteFile(filepath.Join(root, "chunkfile", ".chunks"), nil, 0o644)
	os.Symlink(store, filepath.Join(root, "link"))

	cases := []struct {
		name, path, wantErr, wantPath string
	}{
		{"ok", store, "", store},
		{"symlink resolved", filepath.Join(root, "link"), "", store},
		{"missing", filepath.Join(root, "nope"), "does not exist", ""},
		{"file", filepath.Join(root, "file"), "is not a directory", ""},
		{"no .chunks", filepath.Join(root, "plain"), "not a PBS datastore", ""},
		{".chunks is a file", filepath.Join(root, "chunkfile"), "not a PBS datastore", ""},
	}
	for _, c := range cases {
		got, err := checkDatastore(c.path)
		if c.wantErr == "" {
			if err != nil || got != c.wantPath {
				t.Errorf("%s: got %q, %v; want %q", c.name, got, err, c.wantPath)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.wantErr) || exitCode(err) != ExitDatastore {
			t.Errorf("%s: got %v (exit %d), want %q and exit %d", c.name, err, exitCode(err), c.wantErr, ExitDatastore)
		}
	}
}

func TestCheckMountpoint(t *testing.T) {
	root := t.TempDir()
	empty := filepath.Join(root, "empty")
	full := filepath.Join(root, "full")
	mkdirs(t, empty, full)
	os.WriteFile(filepath.Join(full, "x"), nil, 0o644)
	os.WriteFile(filepath.Join(root, "file"), nil, 0o644)
	os.Symlink(empty, filepath.Join(root, "link"))

	cases := []struct {
		name, path, wantErr, wantPath string
	}{
		{"ok", empty, "", empty},
		{"relative", "empty", "", empty},
		{"symlink resolved", filepath.Join(root, "link"), "", empty},
		{"missing", filepath.Join(root, "nope"), "does not exist (create it with: mkdir -p", ""},
		{"file", filepath.Join(root, "file"), "is not a directory", ""},
		{"not empty", full, "is not empty", ""},
	}
	wd, _ := os.Getwd()
	defer os.Chdir(wd)
	os.Chdir(root)
	for _, c := range cases {
		got, err := checkMountpoint(c.path, io.Discard)
		if c.wantErr == "" {
			if err != nil || got != c.wantPath {
				t.Errorf("%s: got %q, %v; want %q", c.name, got, err, c.wantPath)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.wantErr) || exitCode(err) != ExitMountPoint {
			t.Errorf("%s: got %v (exit %d), want %q and exit %d", c.name, err, exitCode(err), c.wantErr, ExitMountPoint)
		}
	}
}

func TestCheckOverlap(t *testing.T) {
	cases := []struct {
		store, mnt, wantErr string
	}{
		{"/srv/store", "/mnt/pbs", ""},
		{"/srv/store", "/srv/store2", ""},
		{"/srv/store2", "/srv/store", ""},
		{"/srv/store", "/srv", "inside the mountpoint"},
		{"/srv/store", "/", "inside the mountpoint"},
		{"/srv/store", "/srv/store", "is the datastore itself"},
		{"/srv/store", "/srv/store/vm", "is inside the datastore"},
		{"/srv/store", "/srv/store/.chunks/0000", "is inside the datastore"},
		{"/srv/..x", "/srv/..x/m", "is inside the datastore"},
	}
	for _, c := range cases {
		err := checkOverlap(c.store, c.mnt)
		if c.wantErr == "" {
			if err != nil {
				t.Errorf("%s on %s: %v", c.store, c.mnt, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.wantErr) || exitCode(err) != ExitMountPoint {
			t.Errorf("%s on %s: got %v, want %q", c.store, c.mnt, err, c.wantErr)
		}
	}
}
