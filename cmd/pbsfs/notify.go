package main

import (
	"context"
	"log/slog"
	"os"
	"sync"

	"github.com/coreos/go-systemd/v22/daemon"
)

// systemdNotifier speaks systemd's notify protocol for a Type=notify unit
// (pbsfs@.service): READY=1 once the mount is served, STOPPING=1 when it
// starts to unmount. Without $NOTIFY_SOCKET (not started by systemd) it
// does nothing.
type systemdNotifier struct {
	log         *slog.Logger
	stopOnce    sync.Once
	readyCalled bool
}

func (n *systemdNotifier) send(state string) {
	if sent, err := daemon.SdNotify(false, state); err != nil {
		n.log.Warn("telling systemd", "state", state, "err", err)
	} else if sent {
		n.log.Debug("told systemd", "state", state)
	}
}

// ready reports the mount as served.
func (n *systemdNotifier) ready(store, mnt string) {
	n.readyCalled = true
	n.send("READY=1\nSTATUS=serving " + store + " at " + mnt)
}

// stopping reports that pbsfs is unmounting or ending; only the first
// call says so.
func (n *systemdNotifier) stopping() {
	n.stopOnce.Do(func() {
		if n.readyCalled {
			n.send("STOPPING=1")
		}
	})
}

// relayStopping passes the signals of ch on to the returned channel
// until ctx ends, reporting STOPPING=1 before the first one.
func (n *systemdNotifier) relayStopping(ctx context.Context, ch <-chan os.Signal) chan os.Signal {
	out := make(chan os.Signal, cap(ch))
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case sig := <-ch:
				n.stopping()
				select {
				case out <- sig:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}
