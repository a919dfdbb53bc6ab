package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"pbsfs/manifest"
)

// The workloads. Each is a plain function of a directory so that the same
// code runs against the raw store, bindfs and pbsfs; none of them looks at
// which system it runs on.

// walk visits the whole tree below dir the way `ls -lR` does, in-process
// and single-threaded: getdents of every directory (os.File.ReadDir, which
// does not stat) and lstat of every entry; it descends into what lstat says
// is a directory. It returns the number of entries stat'ed.
func walk(ctx context.Context, dir string) (int, error) {
	n := 0
	stack := []string{dir}
	for len(stack) > 0 {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		d := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		ents, err := readDir(d)
		if err != nil {
			return n, err
		}
		for _, e := range ents {
			p := d + "/" + e
			fi, err := os.Lstat(p)
			if err != nil {
				return n, err
			}
			n++
			if fi.IsDir() {
				stack = append(stack, p)
			}
		}
	}
	return n, nil
}

// readDir lists the names in dir (getdents only).
func readDir(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("readdir %s: %w", dir, err)
	}
	return names, nil
}

// listDir is `ls -l DIR`: getdents of one directory and lstat of each entry.
func listDir(dir string) (int, error) {
	names, err := readDir(dir)
	if err != nil {
		return 0, err
	}
	for _, name := range names {
		if _, err := os.Lstat(dir + "/" + name); err != nil {
			return 0, err
		}
	}
	return len(names), nil
}

// readFiles reads every file (open, read to EOF, close) and returns the
// number of bytes read.
func readFiles(ctx context.Context, paths []string) (int64, error) {
	var total int64
	for i, p := range paths {
		if i%256 == 0 && ctx.Err() != nil {
			return total, ctx.Err()
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return total, err
		}
		total += int64(len(data))
	}
	return total, nil
}

// writeNotes replaces each file's content the way `echo text > notes` does:
// open O_WRONLY|O_TRUNC, write, close (pbsfs commits on close and reports a
// failed commit there).
func writeNotes(path, text string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(text); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", path, err)
	}
	return nil
}

// bareWrite is the floor for a manifest update: an atomic replacement of
// dir/name by data and nothing else — temp file, write, fsync, rename over
// the target, fsync of the directory.
func bareWrite(dir, name string, data []byte) error {
	d, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(d)
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return err
	}
	tmp := ".bench-tmp-" + name + "." + hex.EncodeToString(rnd[:])
	fd, err := unix.Openat(d, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return &os.PathError{Op: "create", Path: dir + "/" + tmp, Err: err}
	}
	_, werr := unix.Write(fd, data)
	serr := unix.Fsync(fd)
	cerr := unix.Close(fd)
	if err := errors.Join(werr, serr, cerr); err != nil {
		_ = unix.Unlinkat(d, tmp, 0)
		return fmt.Errorf("write %s/%s: %w", dir, tmp, err)
	}
	if err := unix.Renameat(d, tmp, d, name); err != nil {
		_ = unix.Unlinkat(d, tmp, 0)
		return &os.PathError{Op: "rename", Path: dir + "/" + name, Err: err}
	}
	if err := unix.Fsync(d); err != nil {
		return &os.PathError{Op: "fsync", Path: dir, Err: err}
	}
	return nil
}

// parallel runs fn(i) for i in [0, n) on workers goroutines, each taking
// the indices i ≡ w (mod workers) in order; it returns the first error.
func parallel(n, workers int, fn func(i int) error) error {
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for w := 0; w < workers; w++ {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				if err := fn(i); err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// timed runs fn and returns its wall time in seconds.
func timed(fn func() error) (float64, error) {
	t := time.Now()
	err := fn()
	return time.Since(t).Seconds(), err
}

// layout is what a store holds, as paths relative to its root, found by
// reading the raw store (PBS layout: [ns/<a>/]...<type>/<id>/<time>/).
type layout struct {
	groups    []string
	snapshots []string
}

// scanLayout lists a raw store's groups and snapshot directories, sorted.
func scanLayout(store string) (layout, error) {
	var l layout
	var scanNS func(rel string) error
	scanNS = func(rel string) error {
		abs := filepath.Join(store, rel)
		for _, typ := range []string{"ct", "host", "vm"} {
			ids, err := readDirIfExists(filepath.Join(abs, typ))
			if err != nil {
				return err
			}
			for _, id := range ids {
				g := filepath.Join(rel, typ, id)
				l.groups = append(l.groups, g)
				ents, err := os.ReadDir(filepath.Join(store, g))
				if err != nil {
					return err
				}
				for _, e := range ents {
					if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
						l.snapshots = append(l.snapshots, filepath.Join(g, e.Name()))
					}
				}
			}
		}
		children, err := readDirIfExists(filepath.Join(abs, "ns"))
		if err != nil {
			return err
		}
		for _, c := range children {
			if err := scanNS(filepath.Join(rel, "ns", c)); err != nil {
				return err
			}
		}
		return nil
	}
	if err := scanNS(""); err != nil {
		return l, fmt.Errorf("scan %s: %w", store, err)
	}
	sort.Strings(l.groups)
	sort.Strings(l.snapshots)
	return l, nil
}

func readDirIfExists(dir string) ([]string, error) {
	names, err := readDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return names, err
}

// spread picks n of the items, evenly spaced (all of them if n >= len).
func spread(items []string, n int) []string {
	if n >= len(items) {
		return items
	}
	out := make([]string, n)
	for i := range out {
		out[i] = items[i*len(items)/n]
	}
	return out
}

// withNotes returns the manifest blob at path re-encoded with new notes:
// exactly the bytes a notes update writes.
func withNotes(path, notes string) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out, _, err := manifest.UpdateBlob(raw, func(u *manifest.Unprotected) error { return u.SetNotes(notes) })
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return out, nil
}

// notesOf decodes the notes of the manifest blob at path.
func notesOf(path string) (string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	m, err := manifest.Load(raw)
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return m.Notes(), nil
}

// noteText is the text written to snapshot i in round r by who; all have
// the same length for the same i, so that pbsfs and the bare writer write
// blobs of the same size.
func noteText(who string, r, i int) string {
	return fmt.Sprintf("benchmark round %02d, snapshot %05d, written by %-6s: verified, keep until the next audit", r, i, who)
}
