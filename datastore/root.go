package datastore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"pbsfs/activeops"
	"pbsfs/pbsconfig"
)

// The root descriptor's life beside PBS (see neighbour.go): opened on first
// use under PBS's config lock with a Read registered, kept while in use and
// for Linger after, closed before the Read is deregistered, and closed at
// once (as soon as no access is in flight) when PBS takes the datastore
// away.

// acquire returns the root descriptor for one access; release must follow.
func (g *guard) acquire() (int, error) {
	if g.o == nil {
		return g.fd, nil // opened at Open, never changed: no lock needed
	}
	g.mu.Lock()
	if g.blocked != nil {
		err := g.blocked
		g.mu.Unlock()
		return -1, err
	}
	if g.fd >= 0 {
		g.users++
		fd := g.fd
		g.mu.Unlock()
		return fd, nil
	}
	g.mu.Unlock()
	return g.activate()
}

// errIdle is what acquireIfActive gives for a store not in use.
var errIdle = &tagged{kind: ErrUnavailable, err: errors.New("datastore idle")}

// acquireIfActive is acquire for a store already in use; it fails with
// errIdle rather than opening an idle one.
func (g *guard) acquireIfActive() (int, error) {
	if g.o == nil {
		return g.fd, nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case g.blocked != nil:
		return -1, g.blocked
	case g.fd < 0:
		return -1, errIdle
	}
	g.users++
	return g.fd, nil
}

// releaseQuiet ends an access of acquireIfActive: it does not count as a
// use for the linger.
func (g *guard) releaseQuiet() { g.releaseAt(false) }

// release ends an access started by acquire.
func (g *guard) release() { g.releaseAt(true) }

func (g *guard) releaseAt(use bool) {
	if g.o == nil {
		return
	}
	g.mu.Lock()
	g.users--
	if use {
		g.lastUse = time.Now()
	}
	if g.users == 0 {
		if g.blocked != nil {
			g.mu.Unlock()
			g.deactivate(true)
			return
		}
		if g.timer == nil {
			g.timer = time.AfterFunc(g.o.Linger, g.lingerDone)
		}
	}
	g.mu.Unlock()
}

// lingerDone closes the descriptor once the store has been idle for Linger.
func (g *guard) lingerDone() {
	g.mu.Lock()
	g.timer = nil
	if g.users > 0 || g.fd < 0 {
		g.mu.Unlock()
		return
	}
	if idle := time.Since(g.lastUse); idle < g.o.Linger {
		g.timer = time.AfterFunc(g.o.Linger-idle, g.lingerDone)
		g.mu.Unlock()
		return
	}
	g.mu.Unlock()
	g.deactivate(false)
}

// activate opens the root under the config lock after the Read checks and
// registers the Read (§10.3.5), then counts the caller as a user.
func (g *guard) activate() (int, error) {
	ctx := context.Background() // a read has no context here; the config lock waits at most its timeout
	unlock, err := g.lockConfig(ctx)
	if err != nil {
		return -1, err
	}
	defer unlock()
	g.mu.Lock()
	if g.fd >= 0 { // another access activated meanwhile
		g.users++
		fd := g.fd
		g.mu.Unlock()
		return fd, nil
	}
	g.mu.Unlock()
	sec, err := g.loadSection(pbsconfig.Read)
	if err != nil {
		if errors.Is(err, ErrUnavailable) {
			g.mu.Lock()
			g.blocked, g.section = err, sec
			g.mu.Unlock()
		}
		return -1, err
	}
	fd, err := g.openRoot()
	if err != nil {
		return -1, err
	}
	g.opsMu.Lock()
	reg, err := g.ops.Add(ctx, activeops.Read, 1)
	g.opsMu.Unlock()
	if err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("cannot register reading with PBS: %w", err)
	}
	g.mu.Lock()
	g.fd, g.readReg, g.section = fd, reg, sec
	g.users++
	wake := g.wake
	g.mu.Unlock()
	if wake != nil {
		go wake()
	}
	return fd, nil
}

// openRoot opens the datastore directory and checks it is the one opened
// at mount (not the empty directory under an unmounted device).
func (g *guard) openRoot() (int, error) {
	fd, err := unix.Open(g.path, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, tag(ErrUnavailable, "%w", os.NewSyscallError("open "+g.path, err))
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Dev != g.dev || st.Ino != g.ino {
		unix.Close(fd)
		return -1, tag(ErrUnavailable, "%s is no longer the directory pbsfs was mounted on (device unmounted or directory replaced)", g.path)
	}
	return fd, nil
}

// deactivate closes the descriptor (if no access is in flight) and then
// deregisters the Read.
func (g *guard) deactivate(forced bool) {
	g.mu.Lock()
	if g.users > 0 || g.fd < 0 {
		g.mu.Unlock()
		return
	}
	unix.Close(g.fd)
	g.fd = -1
	reg := g.readReg
	g.readReg = false
	if g.timer != nil {
		g.timer.Stop()
		g.timer = nil
	}
	g.opsMu.Lock() // before letting go of mu: a new Read registers after this one is gone
	g.mu.Unlock()
	defer g.opsMu.Unlock()
	if reg {
		if _, err := g.ops.Add(context.Background(), activeops.Read, -1); err != nil {
			g.log.Error("cannot deregister from PBS's active operations", "err", err)
		}
	}
	g.log.Debug("datastore idle: descriptor closed", "datastore", g.path, "forced", forced)
}

// close ends everything at unmount.
func (g *guard) close() error {
	if g.o == nil {
		return unix.Close(g.fd)
	}
	g.mu.Lock()
	g.blocked = errors.New("closed")
	g.mu.Unlock()
	g.deactivate(true)
	return nil
}

// Statfs returns the numbers of the datastore's file system (fstatfs of
// the root descriptor).
func (s *Store) Statfs() (unix.Statfs_t, error) {
	if s.bucket != nil {
		return s3Statfs(), nil
	}
	var st unix.Statfs_t
	root, err := s.g.acquire()
	if err != nil {
		return st, wrap("statfs", s.path, nil, err)
	}
	defer s.g.release()
	if err := unix.Fstatfs(root, &st); err != nil {
		return st, wrap("statfs", s.path, nil, os.NewSyscallError("fstatfs", err))
	}
	return st, nil
}
