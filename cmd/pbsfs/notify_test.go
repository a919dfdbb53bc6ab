package main

import (
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSystemdNotify runs pbsfs mount as systemd runs a Type=notify unit:
// with NOTIFY_SOCKET naming a datagram socket (opened here). READY=1 must
// arrive once the mount serves, STOPPING=1 when it is stopped by SIGTERM
// (systemctl stop) or unmounted from outside, and nothing else between.
// A busy mount is detached at SIGTERM and served until its last user goes:
// STOPPING=1 must come at the signal, not at the end.
func TestSystemdNotify(t *testing.T) {
	needFUSE(t)
	var busy *exec.Cmd
	for _, c := range []struct {
		name string
		stop func(p *pbsfsProc, mnt string)
	}{
		{"SIGTERM", func(p *pbsfsProc, mnt string) { p.cmd.Process.Signal(syscall.SIGTERM) }},
		{"SIGTERM while busy", func(p *pbsfsProc, mnt string) {
			busy = startBusy(t, mnt)
			p.cmd.Process.Signal(syscall.SIGTERM)
		}},
		{"external unmount", func(p *pbsfsProc, mnt string) {
			if out, err := exec.Command("fusermount3", "-u", mnt).CombinedOutput(); err != nil {
				t.Errorf("fusermount3 -u: %v %s", err, out)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			busy = nil
			sock := filepath.Join(t.TempDir(), "notify")
			conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			t.Setenv("NOTIFY_SOCKET", sock)
			store, mnt, locks := newStore(t)
			p := startPBSFS(t, "mount", "--lock-scheme", "run", "--lock-dir", locks, "--store", "demo", store, mnt)
			msg := readNotify(t, conn)
			if !strings.Contains(msg, "READY=1") || !strings.Contains(msg, "STATUS=serving "+store) {
				t.Fatalf("first notification %q, want READY=1 and a status", msg)
			}
			if !isMounted(t, mnt) {
				t.Error("READY=1 before the mount is there")
			}
			c.stop(p, mnt)
			if msg := readNotify(t, conn); msg != "STOPPING=1" {
				t.Errorf("second notification %q, want STOPPING=1", msg)
			}
			if busy != nil {
				select {
				case err := <-p.done:
					t.Errorf("pbsfs exited (%v) while its detached mount was busy", err)
					p.done <- err
				default:
				}
				busy.Process.Kill()
				busy.Wait()
				busy = nil
			}
			if code := p.wait(); code != ExitOK {
				t.Errorf("exit %d\n%s", code, p.stderr.String())
			}
			conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			if n, err := conn.Read(make([]byte, 100)); err == nil {
				t.Errorf("a further notification of %d bytes", n)
			}
		})
	}
}

func readNotify(t *testing.T, conn *net.UnixConn) string {
	t.Helper()
	// Well below the 30 s the busy process of "SIGTERM while busy" lives.
	conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	buf := make([]byte, 4096)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("no notification: %v", err)
	}
	return string(buf[:n])
}
