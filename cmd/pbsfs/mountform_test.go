package main

import (
	"log/slog"
	"log/syslog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestIsMountForm(t *testing.T) {
	for args, want := range map[string]bool{
		"/store /mnt -o ro": true,
		"/store /mnt":       true,
		"store1 /mnt":       true,
		"mount /store /mnt": false,
		"demo dir":          false,
		"help mount":        false,
		"frobnicate":        false,
		"--help x":          false,
		"/store -o":         false,
	} {
		if got := isMountForm(strings.Fields(args)); got != want {
			t.Errorf("isMountForm(%q) = %v", args, got)
		}
	}
}

func TestParseMountForm(t *testing.T) {
	type res struct {
		ro, allowOther, archives, verbose, fg bool
		key, scheme, store, logFile           string
		recheck                               time.Duration
		cacheSize                             int
	}
	cases := []struct {
		args string
		want res
		err  string
	}{
		{"/s /m", res{archives: true, scheme: "auto", recheck: 2 * time.Second, cacheSize: 1024}, ""},
		{"/s /m -o ro,allow_other,keyfile=/k.json,lock-scheme=run,store=s1,recheck=5s,cache_size=7,no-archives,verbose,log-file=/l",
			res{ro: true, allowOther: true, key: "/k.json", scheme: "run", store: "s1", recheck: 5 * time.Second, cacheSize: 7, verbose: true, logFile: "/l"}, ""},
		// mount.fuse3 as root adds dev,suid; fstab and systemd options pass.
		{"/s /m -o rw,dev,suid,defaults,noatime,nofail,_netdev,x-systemd.requires=a.mount,comment=foo",
			res{archives: true, scheme: "auto", recheck: 2 * time.Second, cacheSize: 1024}, ""},
		{"/s /m -o ro -o rw -oarchives=false -f", res{scheme: "auto", recheck: 2 * time.Second, cacheSize: 1024, fg: true}, ""},
		{"/s /m -o bogus", res{}, `unknown mount option "bogus"`},
		{"/s /m -o v", res{}, `unknown mount option "v"`},
		{"/s /m -o help", res{}, `unknown mount option "help"`},
		{"/s /m -o ro=1", res{}, `mount option "ro=1" takes no value`},
		{"/s /m -o dev=1", res{}, `unknown mount option "dev"`},
		{"/s /m -o keyfile", res{}, "mount option keyfile needs a value: keyfile=VALUE"},
		{"/s /m -o cache-size=many", res{}, "mount option cache-size=many: parse error"},
		{"/s /m -o remount", res{}, "cannot be remounted"},
		{"/s /m -o", res{}, "-o needs a list of options"},
		{"/s /m -x", res{}, `unknown argument "-x"`},
		{"/s /m /n", res{}, "want SOURCE MOUNTPOINT"},
		{"/s /dev/fd/3 -o ro", res{}, "drop_privileges is not supported"},
	}
	for _, c := range cases {
		var o mountOptions
		fs := mountFlags(mountFormCmd, &o)
		fg, err := parseMountForm(fs, &o, strings.Fields(c.args))
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) || exitCode(err) != ExitUsage {
				t.Errorf("%q: err %v, want %q (usage)", c.args, err, c.err)
			}
			continue
		}
		got := res{o.readOnly, o.allowOther, o.archives.enabled, o.log.verbose, fg, o.archives.keyfile, o.scheme,
			o.storeName, o.log.file, o.recheck, o.cacheSize}
		if err != nil || got != c.want || o.store != "/s" || o.mountpoint != "/m" {
			t.Errorf("%q: %+v %v, want %+v", c.args, got, err, c.want)
		}
	}
}

// TestSyslogHandler logs through log/syslog to a datagram socket standing
// in for /dev/log and checks priorities and text.
func TestSyslogHandler(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "log")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	w, err := syslog.Dial("unixgram", sock, syslog.LOG_DAEMON|syslog.LOG_INFO, "pbsfs")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	log := slog.New(newSyslogHandler(w, slog.LevelInfo)).With("mountpoint", "/mnt")
	log.Debug("not sent")
	log.Info("mounted", "store", "/s")
	log.WithGroup("chunk").Warn("damaged", "digest", "ab")
	log.Error("failed", "err", "boom")
	wants := [][]string{
		{"<30>", "pbsfs[", "]: msg=mounted mountpoint=/mnt store=/s"},
		{"<28>", "]: msg=damaged mountpoint=/mnt chunk.digest=ab"},
		{"<27>", "]: msg=failed mountpoint=/mnt err=boom"},
	}
	buf := make([]byte, 4096)
	for _, want := range wants {
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got := string(buf[:n])
		if !strings.HasPrefix(got, want[0]) || strings.Contains(got, "level=") || strings.Contains(got, "time=") {
			t.Errorf("datagram %q, want priority %s, no time or level", got, want[0])
		}
		for _, w := range want[1:] {
			if !strings.Contains(got, w) {
				t.Errorf("datagram %q lacks %q", got, w)
			}
		}
	}
}
