package demo

import (
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strings"

	"pbsfs/pxar"
	"pbsfs/pxar/encoder"
)

// rootFSTime (2024-05-01T00:00:00Z) is the mtime of the files of a root
// file system that no backup changes.
const rootFSTime = 1714521600

// Sizes of the growing log file of rootFS: it spans several chunks of the
// archive stream (chunks average 64 KiB, see cutChunks).
const (
	syslogBase = 320 << 10
	syslogStep = 24 << 10
)

// rootFS returns the small root file system that backup number idx of the
// container or host called name archives. It holds every entry kind —
// directories (setgid, sticky, private), regular files (setuid, setgid,
// empty, one spanning several chunks), symlinks (absolute and relative), a
// hardlink, character and block devices, a FIFO, a socket — with xattrs,
// file capabilities and access and default ACLs. Files that no backup
// changes depend on name only, so that consecutive snapshots share chunks;
// /etc/motd, /var/log/syslog (which grows) and the directories holding them
// change with idx and epoch (the backup time).
func rootFS(name string, idx int, epoch int64) *encoder.Node {
	h := fnv.New64a()
	h.Write([]byte(name))
	rng := rand.New(rand.NewPCG(h.Sum64(), 0x5eed))
	changed := epoch - 600 // written ten minutes before the backup

	meta := func(n *encoder.Node, mode uint64, uid, gid uint32, mtime int64) *encoder.Node {
		n.Mode, n.UID, n.GID, n.MtimeSec = mode, uid, gid, mtime
		n.MtimeNsec = uint32(rng.IntN(1e9))
		return n
	}
	file := func(fname string, perm uint64, data string) *encoder.Node {
		return meta(&encoder.Node{Name: fname, Data: []byte(data)}, pxar.ModeRegular|perm, 0, 0, rootFSTime)
	}
	dir := func(dname string, perm uint64, children ...*encoder.Node) *encoder.Node {
		return meta(&encoder.Node{Name: dname, Children: children}, pxar.ModeDir|perm, 0, 0, rootFSTime)
	}
	symlink := func(lname, target string) *encoder.Node {
		return meta(&encoder.Node{Name: lname, Symlink: target}, pxar.ModeSymlink|0o777, 0, 0, rootFSTime)
	}
	device := func(dname string, typ, perm, major, minor uint64, gid uint32) *encoder.Node {
		return meta(&encoder.Node{Name: dname, RdevMajor: major, RdevMinor: minor}, typ|perm, 0, gid, rootFSTime)
	}
	own := func(n *encoder.Node, uid, gid uint32) *encoder.Node {
		n.UID, n.GID = uid, gid
		return n
	}

	// /usr
	vi := file("vi", 0o755, "#!/bin/sh\n# vi: a small editor stand-in\nexec ed \"$@\"\n")
	ping := file("ping", 0o755, "#!/bin/sh\necho PING \"$1\"\n")
	ping.FCaps, _ = hex.DecodeString("0100000200200000000000000000000000000000") // cap_net_raw+ep
	usr := dir("usr", 0o755,
		dir("bin", 0o755,
			file("passwd", 0o4755, "#!/bin/sh\n# setuid root\necho changing password\n"),
			ping, vi,
			&encoder.Node{Name: "vim", HardlinkTo: vi},
			own(file("wall", 0o2755, "#!/bin/sh\n# setgid tty\ncat > /dev/tty\n"), 0, 5)),
		dir("lib", 0o755,
			file("os-release", 0o644, "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\n")),
		dir("share", 0o755, dir("zoneinfo", 0o755, dir("Europe", 0o755,
			file("Berlin", 0o644, "TZif2\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00CET-1CEST,M3.5.0,M10.5.0/3\n")))))

	// /etc
	hostname := file("hostname", 0o644, name+"\n")
	hostname.Xattrs = []encoder.Xattr{{Name: "security.selinux", Value: []byte("system_u:object_r:etc_t:s0\x00")}}
	motd := file("motd", 0o644, fmt.Sprintf("%s — backup %d\nThe programs included with the Debian GNU/Linux system are free software.\n", name, idx+1))
	motd.MtimeSec = changed
	etc := dir("etc", 0o755,
		file("group", 0o644, "root:x:0:\ntty:x:5:\ndisk:x:6:\nshadow:x:42:\nusers:x:100:\nadmin:x:1000:\n"),
		hostname,
		file("hosts", 0o644, "127.0.0.1\tlocalhost\n127.0.1.1\t"+name+"\n"),
		symlink("localtime", "/usr/share/zoneinfo/Europe/Berlin"),
		motd,
		dir("nginx", 0o755, file("nginx.conf", 0o644, textLines(rng, 3<<10, "server_name "+name+";"))),
		file("passwd", 0o644, "root:x:0:0:root:/root:/bin/bash\nadmin:x:1000:1000:Admin:/home/admin:/bin/bash\n"),
		own(file("shadow", 0o640, "root:*:19800:0:99999:7:::\nadmin:!:19800:0:99999:7:::\n"), 0, 42),
		dir("ssl", 0o755, dir("private", 0o700, file("server.key", 0o600, "-----BEGIN PRIVATE KEY-----\n"+textLines(rng, 1600, "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC")+"-----END PRIVATE KEY-----\n"))))
	etc.MtimeSec = changed

	// /home/admin
	notes := own(file("notes.txt", 0o644, "remember: test the restore\n"), 1000, 1000)
	notes.Xattrs = []encoder.Xattr{
		{Name: "user.comment", Value: []byte("kept in the backup")},
		{Name: "user.xdg.origin.url", Value: []byte("https://pbs.example.com/")},
	}
	home := dir("home", 0o755, own(dir("admin", 0o750,
		own(file(".bashrc", 0o644, "export EDITOR=vi\nalias ll='ls -l'\n"), 1000, 1000),
		own(file("empty", 0o600, ""), 1000, 1000),
		notes), 1000, 1000))

	// /srv/share: a setgid directory with an access and a default ACL.
	report := own(file("report.txt", 0o664, textLines(rng, 2<<10, "quarterly report")), 1000, 100)
	report.ACL = encoder.ACL{
		Users:    []encoder.ACLEntry{{ID: 1001, Perm: pxar.ACLRead | pxar.ACLWrite}},
		Groups:   []encoder.ACLEntry{{ID: 100, Perm: pxar.ACLRead}},
		GroupObj: encoder.Perm(pxar.ACLRead),
	}
	share := own(dir("share", 0o2775, report), 0, 100)
	share.ACL = encoder.ACL{
		Users:         []encoder.ACLEntry{{ID: 1000, Perm: 7}, {ID: 1001, Perm: 5}},
		Groups:        []encoder.ACLEntry{{ID: 100, Perm: 5}},
		GroupObj:      encoder.Perm(5),
		Default:       &encoder.ACLDefault{UserObj: 7, GroupObj: 5, Other: 5, Mask: 7},
		DefaultUsers:  []encoder.ACLEntry{{ID: 1000, Perm: 7}},
		DefaultGroups: []encoder.ACLEntry{{ID: 100, Perm: 5}},
	}

	// /var
	syslog := file("syslog", 0o640, syslogText(name, idx))
	syslog.GID, syslog.MtimeSec = 4, changed
	logDir := dir("log", 0o755, own(file("apt-history.log", 0o644, textLines(rng, 6<<10, "Commandline: apt-get install")), 0, 0), syslog)
	logDir.MtimeSec = changed
	index := file("index.html", 0o644, "<!doctype html>\n<title>"+name+"</title>\n<p>It works.</p>\n")
	index.Xattrs = []encoder.Xattr{{Name: "user.mime_type", Value: []byte("text/html")}}
	v := dir("var", 0o755, logDir, dir("www", 0o755, own(dir("html", 0o755, index), 33, 33)))

	root := dir("", 0o755,
		symlink("bin", "usr/bin"),
		dir("dev", 0o755,
			device("console", pxar.ModeChar, 0o600, 5, 1, 0),
			device("null", pxar.ModeChar, 0o666, 1, 3, 0),
			device("sda", pxar.ModeBlock, 0o660, 8, 0, 6),
			device("zero", pxar.ModeChar, 0o666, 1, 5, 0)),
		etc, home,
		symlink("lib", "usr/lib"),
		dir("root", 0o700),
		dir("run", 0o755,
			meta(&encoder.Node{Name: "initctl"}, pxar.ModeFIFO|0o600, 0, 0, rootFSTime),
			dir("systemd", 0o755, meta(&encoder.Node{Name: "notify"}, pxar.ModeSocket|0o777, 0, 0, rootFSTime))),
		dir("srv", 0o755, share),
		dir("tmp", 0o1777),
		usr, v)
	root.MtimeSec = rootFSTime
	return root
}

// syslogText is the log of backup idx: the lines of the previous backups
// and some more.
func syslogText(name string, idx int) string {
	var sb strings.Builder
	h := fnv.New64a()
	h.Write([]byte(name))
	rng := rand.New(rand.NewPCG(h.Sum64(), 0x106))
	size := syslogBase + idx*syslogStep
	for sb.Len() < size {
		t := sb.Len() / 97
		fmt.Fprintf(&sb, "2024-06-%02dT%02d:%02d:%02d %s %s[%d]: %s\n", 1+t/86400%28, t/3600%24, t/60%60, t%60,
			name, words[rng.IntN(len(words))], 100+rng.IntN(30000), strings.Join([]string{
				words[rng.IntN(len(words))], words[rng.IntN(len(words))], words[rng.IntN(len(words))]}, " "))
	}
	return sb.String()[:size]
}

// textLines returns about n bytes of plausible configuration lines.
func textLines(rng *rand.Rand, n int, prefix string) string {
	var sb strings.Builder
	for sb.Len() < n {
		fmt.Fprintf(&sb, "%s %s/%s %d\n", prefix, words[rng.IntN(len(words))], words[rng.IntN(len(words))], rng.IntN(1<<16))
	}
	return sb.String()
}
