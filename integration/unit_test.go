package integration

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestServiceUnit runs packaging/pbsfs@.service's ExecStartPre and
// ExecStart lines as systemd would for the instance "demo" (expanding %i
// and the variables of /etc/pbsfs/demo.conf the test writes), with the
// built pbsfs for /usr/bin/pbsfs and a real NOTIFY_SOCKET: READY=1 comes
// once the mount serves, and "systemctl stop" (SIGTERM) sends STOPPING=1,
// unmounts and exits 0.
func TestServiceUnit(t *testing.T) {
	requireFUSE(t)
	unit := parseUnit(t, "../packaging/pbsfs@.service")
	if unit["Type"] != "notify" || unit["NotifyAccess"] != "main" {
		t.Errorf("Type=%s NotifyAccess=%s", unit["Type"], unit["NotifyAccess"])
	}
	store := newStore(t)
	dir := t.TempDir()
	mnt := filepath.Join(dir, "mnt", "demo") // created by ExecStartPre
	env := map[string]string{"DATASTORE": store, "MOUNTPOINT": mnt,
		"OPTIONS": "--read-only --lock-scheme run --lock-dir " + filepath.Join(dir, "locks")}

	pre := expandUnitLine(t, unit["ExecStartPre"], "demo", env)
	if out, err := exec.Command(pre[0], pre[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("ExecStartPre %q: %v %s", pre, err, out)
	}
	start := expandUnitLine(t, unit["ExecStart"], "demo", env)
	if start[0] != "/usr/bin/pbsfs" {
		t.Fatalf("ExecStart runs %s", start[0])
	}
	sock := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cmd := exec.Command(pbsfsBin, start[1:]...)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock)
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		exec.Command("fusermount3", "-u", "-z", mnt).Run()
	})
	if msg := readDatagram(t, conn); !strings.HasPrefix(msg, "READY=1\n") {
		t.Fatalf("first notification %q\n%s", msg, stderr.String())
	}
	if entries, err := os.ReadDir(mnt); err != nil || len(entries) != 4 {
		t.Errorf("mount at READY=1: %v %v", entries, err)
	}
	cmd.Process.Signal(syscall.SIGTERM) // systemctl stop
	if msg := readDatagram(t, conn); msg != "STOPPING=1" {
		t.Errorf("second notification %q", msg)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("exit: %v\n%s", err, stderr.String())
		}
	case <-time.After(scaled(20 * time.Second)):
		t.Fatal("pbsfs did not exit after SIGTERM")
	}
	if isMounted(mnt) {
		t.Error("still mounted after stop")
	}
}

// parseUnit reads the [Service] and [Unit] keys of a unit file (the last
// value of a key wins).
func parseUnit(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	keys := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == '[' {
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok {
			keys[k] = v
		}
	}
	return keys
}

// expandUnitLine splits an Exec line as systemd does for this unit: a
// leading "-" dropped, %i replaced, ${VAR} replaced as one word and $VAR
// split into words.
func expandUnitLine(t *testing.T, line, instance string, env map[string]string) []string {
	t.Helper()
	line = strings.TrimPrefix(strings.ReplaceAll(line, "%i", instance), "-")
	var out []string
	for _, w := range strings.Fields(line) {
		switch {
		case strings.HasPrefix(w, "${") && strings.HasSuffix(w, "}"):
			out = append(out, env[w[2:len(w)-1]])
		case strings.HasPrefix(w, "$"):
			out = append(out, strings.Fields(env[w[1:]])...)
		default:
			out = append(out, w)
		}
	}
	if len(out) == 0 {
		t.Fatalf("empty command line %q", line)
	}
	return out
}

func readDatagram(t *testing.T, conn *net.UnixConn) string {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(scaled(20 * time.Second)))
	buf := make([]byte, 4096)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("no notification: %v", err)
	}
	return string(buf[:n])
}
