package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"pbsfs/datastore"
	"pbsfs/manifest"
)

type snapSpec struct {
	time       string // RFC 3339 UTC, as the directory is named
	notes      string
	protected  bool
	unfinished bool
	encrypted  bool
	verify     string // "ok", "failed" or "" (never verified)
	clientLog  bool
	split      bool // ct/host: split archive (root.mpxar + root.ppxar, no catalog)
}

type groupSpec struct {
	ns    datastore.NS
	typ   string
	id    string
	owner string
	notes string // group notes
	name  string // guest hostname
	disk  uint64 // vm: disk image size
	snaps []snapSpec
}

// sampleGroups is the layout of the sample store.
func sampleGroups() []groupSpec {
	prod := datastore.NS{"prod"}
	db := datastore.NS{"prod", "db"}
	return []groupSpec{
		{typ: "vm", id: "100", owner: "root@pam", name: "web01", disk: 8 << 30,
			notes: "web01 — nginx + PHP-FPM\nOwner: Team Web, on call: +49 30 1234567",
			snaps: []snapSpec{
				{time: "2024-06-01T02:00:04Z", notes: "nightly", verify: "ok", clientLog: true},
				{time: "2024-06-02T02:00:03Z", protected: true, verify: "ok",
					notes: "Before upgrade to Debian 12.5\n\n- apt full-upgrade\n- kernel 6.1.0-21-amd64\nRollback: restore this snapshot, then `qm start 100`.\n"},
				{time: "2024-06-03T02:00:05Z", verify: "failed"},
				{time: "2024-06-04T02:00:02Z", unfinished: true},
			}},
		{typ: "vm", id: "101", owner: "backup@pbs", name: "vault", disk: 4 << 30,
			snaps: []snapSpec{
				{time: "2024-06-01T03:15:00Z", encrypted: true, verify: "ok",
					notes: "Verschlüsselt mit dem Demo-Schlüssel 🔐 (Fingerprint in key-fingerprint)"},
				{time: "2024-06-02T03:15:00Z", encrypted: true},
			}},
		{typ: "ct", id: "200", owner: "root@pam", name: "db01",
			snaps: []snapSpec{
				{time: "2024-06-01T01:30:00Z", notes: "Täglich ✓", verify: "ok"},
				{time: "2024-06-02T01:30:00Z", verify: "ok",
					notes: "DB-Dump vor Migration\nZeile 2: ÄÖÜ äöü ß — «Anführungszeichen» 日本語のメモ\n\ttab and \"quotes\" and \\backslash"},
			}},
		{typ: "host", id: "backup-client", owner: "root@pam!cron", name: "backup-client",
			notes: "Files of the admin workstation (/etc, /home)",
			snaps: []snapSpec{
				{time: "2024-06-01T00:00:00Z", verify: "ok"},
				{time: "2024-06-02T00:00:00Z", notes: "after moving /home to the new SSD"},
			}},
		{ns: prod, typ: "vm", id: "300", owner: "sync@pbs", name: "app-a", disk: 8 << 30,
			notes: "Production web cluster, node A",
			snaps: []snapSpec{
				{time: "2024-05-30T22:00:01Z", verify: "ok"},
				{time: "2024-05-31T22:00:02Z", verify: "ok", notes: "Release 2024.06 deployed\nTicket: OPS-1234"},
				{time: "2024-06-01T22:00:01Z"},
			}},
		{ns: prod, typ: "ct", id: "310", owner: "root@pam", name: "proxy",
			snaps: []snapSpec{
				{time: "2024-06-01T21:00:00Z", verify: "ok", notes: "haproxy 2.8", split: true},
				{time: "2024-06-02T21:00:00Z", split: true},
			}},
		{ns: prod, typ: "host", id: "web01.example.com", owner: "admin@pbs!deploy", name: "web01.example.com",
			snaps: []snapSpec{
				{time: "2024-06-02T04:45:10Z", notes: "ad-hoc backup before certificate renewal", encrypted: true, split: true},
			}},
		{ns: db, typ: "ct", id: "400", owner: "dbadmin@pve", name: "pg-primary",
			notes: "PostgreSQL 16 primary\nPITR via WAL archive on nfs01",
			snaps: []snapSpec{
				{time: "2024-06-01T00:30:00Z", verify: "ok", notes: "pg_dump ok — 12 GB\nVACUUM FULL vorher"},
				{time: "2024-06-02T00:30:00Z", verify: "ok", notes: "数据库备份完成"},
				{time: "2024-06-03T00:30:00Z", split: true, notes: "first backup with change detection mode data"},
			}},
		{ns: db, typ: "vm", id: "410", owner: "root@pam", name: "mariadb", disk: 4 << 30,
			snaps: []snapSpec{
				{time: "2024-06-02T01:00:00Z", verify: "ok", notes: "Ελληνικά: αντίγραφο ασφαλείας"},
			}},
	}
}

// Sample creates the demo datastore at dir (created if missing; it must be
// absent or an empty directory).
func Sample(dir string) (Summary, error) {
	// Only the chunk prefix directories that hold chunks are created: PBS
	// makes all 65,536 up front, but creating and deleting them costs
	// seconds to a minute per store, and readers do not need them.
	st, cleanup, err := createStore(dir, datastore.CreateOptions{})
	if err != nil {
		return Summary{}, err
	}
	defer cleanup()
	b, err := newBuilder(st, 1)
	if err != nil {
		return Summary{}, err
	}
	var sum Summary
	nss := map[string]bool{}
	for _, gs := range sampleGroups() {
		g := datastore.Group{NS: gs.ns, Type: gs.typ, ID: gs.id}
		if err := st.CreateGroup(g, gs.owner); err != nil {
			return sum, fmt.Errorf("demo: create group %s: %w", g.Dir(), err)
		}
		sum.Groups++
		nss[g.Dir()[:len(g.Dir())-len(gs.typ+"/"+gs.id)]] = true
		if gs.notes != "" {
			if err := st.SetGroupNotes(context.Background(), g, gs.notes); err != nil {
				return sum, fmt.Errorf("demo: group notes %s: %w", g.Dir(), err)
			}
			sum.Notes = append(sum.Notes, g.Dir()+"/notes")
		}
		for i, ss := range gs.snaps {
			sn := datastore.Snapshot{Group: g, Time: ss.time}
			if err := b.writeSnapshot(st, gs, i, ss, sn); err != nil {
				return sum, fmt.Errorf("demo: snapshot %s: %w", sn.Dir(), err)
			}
			sum.Snapshots++
			if ss.notes != "" {
				sum.Notes = append(sum.Notes, sn.Dir()+"/notes")
			}
		}
	}
	sum.Namespaces = len(nss)
	return sum, nil
}

func (b *builder) writeSnapshot(st *datastore.Store, gs groupSpec, idx int, ss snapSpec, sn datastore.Snapshot) error {
	t, err := time.Parse(time.RFC3339, ss.time)
	if err != nil {
		return fmt.Errorf("bad time: %w", err)
	}
	epoch := t.Unix()
	b.stats = uploadStats{}
	var files fileSet
	if err := b.archives(&files, gs, idx, epoch, ss); err != nil {
		return err
	}
	if ss.unfinished {
		// A backup in progress: the config blob is uploaded, the disk index
		// is still being written under its temporary name, no manifest yet.
		data := make(map[string][]byte, len(files.data))
		for name, raw := range files.data {
			if filepath.Ext(name) == ".fidx" {
				name = name[:len(name)-len(".fidx")] + ".tmp_fidx"
			}
			data[name] = raw
		}
		if err := st.WriteSnapshot(sn, nil, data); err != nil {
			return fmt.Errorf("write unfinished: %w", err)
		}
		return nil
	}
	m, err := manifest.New(gs.typ, gs.id, epoch, files.infos)
	if err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	u := m.Unprotected()
	if err := setJSON(u, "chunk_upload_stats", map[string]uint64{
		"compressed_size": b.stats.CompressedSize,
		"count":           b.stats.Count,
		"duplicates":      b.stats.Duplicates,
		"size":            b.stats.Size,
	}); err != nil {
		return err
	}
	if ss.verify != "" {
		if err := setJSON(u, "verify_state", map[string]string{
			"state": ss.verify,
			"upid":  upid(epoch+3600, uint32(idx)+0x1e),
		}); err != nil {
			return err
		}
	}
	if ss.notes != "" {
		if err := u.SetNotes(ss.notes); err != nil {
			return fmt.Errorf("notes: %w", err)
		}
	}
	if ss.encrypted {
		if err := setJSON(u, "key-fingerprint", b.crypt.Fingerprint()); err != nil {
			return err
		}
		if err := m.Sign(b.crypt.IDKey()); err != nil {
			return fmt.Errorf("sign manifest: %w", err)
		}
	}
	if ss.clientLog {
		// Uploaded after the backup finished; not listed in the manifest.
		_, raw, err := b.blob("client.log.blob", clientLog(gs, ss.time), false)
		if err != nil {
			return err
		}
		files.data["client.log.blob"] = raw
	}
	if err := st.WriteSnapshot(sn, m, files.data); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if ss.protected {
		// PBS creates the empty marker under the snapshot lock; nobody else
		// knows this store yet.
		marker := filepath.Join(st.Path(), filepath.FromSlash(sn.Dir()), ".protected")
		if err := os.WriteFile(marker, nil, 0o644); err != nil {
			return fmt.Errorf("protect: %w", err)
		}
	}
	return nil
}

// archives adds the archive files a PBS client uploads for the group's type.
func (b *builder) archives(files *fileSet, gs groupSpec, idx int, epoch int64, ss snapSpec) error {
	enc := ss.encrypted
	add := func(info manifest.FileInfo, raw []byte, err error) error {
		if err != nil {
			return err
		}
		files.add(info, raw)
		return nil
	}
	switch gs.typ {
	case "vm":
		if err := add(b.blob("qemu-server.conf.blob", []byte(b.qemuConf(gs)), enc)); err != nil {
			return err
		}
		// Chunk 0 holds the partition table; a few chunks hold data; the
		// snapshot's own chunk makes each backup differ a little.
		content := map[int][]byte{
			0:  b.groupBytes(gs, "hdr", func() []byte { return b.diskHeader(gs.name) }),
			3:  b.groupBytes(gs, "d3", func() []byte { return b.diskData(gs.name + "/boot") }),
			64: b.groupBytes(gs, "d64", func() []byte { return b.diskData(gs.name + "/var") }),
		}
		content[100+idx] = b.diskData(fmt.Sprintf("%s/snap%d", gs.name, idx))
		return add(b.fixed("drive-scsi0.img.fidx", epoch, gs.disk, 4<<20, content, enc))
	case "ct":
		if err := add(b.blob("pct.conf.blob", []byte(b.pctConf(gs)), enc)); err != nil {
			return err
		}
		return b.fileArchives(files, gs, idx, epoch, ss)
	case "host":
		return b.fileArchives(files, gs, idx, epoch, ss)
	}
	return fmt.Errorf("unknown backup type %q", gs.typ)
}

// fileArchives adds the archive of the root file system of a container or
// host (rootFS): a v1 root.pxar.didx and its catalog.pcat1.didx, as the
// client writes them in its default (legacy) mode, or for ss.split a
// root.mpxar.didx and root.ppxar.didx as in its data change-detection mode
// (PBS 3.2.5 and later), which writes no catalog.
func (b *builder) fileArchives(files *fileSet, gs groupSpec, idx int, epoch int64, ss snapSpec) error {
	a := FileArchive{Name: "root", Root: rootFS(gs.name, idx, epoch), Split: ss.split, Ctime: epoch, Crypt: b.cryptFor(ss.encrypted)}
	store := func(data []byte) ([32]byte, error) { return b.chunk(data, ss.encrypted) }
	infos, raw, err := writeFileArchive(a, store, func(string) [16]byte { return b.uuid() })
	if err != nil {
		return err
	}
	for _, info := range infos {
		files.add(info, raw[info.Filename])
	}
	return nil
}

// groupBytes returns content shared by all snapshots of a group (so that
// their indexes share chunks, as incremental backups do), generated on
// first use.
func (b *builder) groupBytes(gs groupSpec, tag string, gen func() []byte) []byte {
	if b.shared == nil {
		b.shared = make(map[string][][]byte)
	}
	k := gs.typ + "/" + gs.id + "/" + tag
	if v, ok := b.shared[k]; ok {
		return v[0]
	}
	v := gen()
	b.shared[k] = [][]byte{v}
	return v
}

func setJSON(u *manifest.Unprotected, key string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("unprotected %s: %w", key, err)
	}
	if err := u.Set(key, raw); err != nil {
		return fmt.Errorf("unprotected %s: %w", key, err)
	}
	return nil
}

// upid formats a verification task id the way PBS does:
// UPID:node:pid:pstart:task_id:starttime:type:worker_id:auth_id:
// (hex fields upper case, worker id systemd-escaped).
func upid(start int64, taskID uint32) string {
	return fmt.Sprintf("UPID:pbs:%08X:%08X:%08X:%08X:verificationjob:%s:root@pam:",
		0x2f1c, 0x1a2b3c, taskID, uint32(start), `demo\x3av\x2d7a3e1c5b\x2d90f2`)
}

func (b *builder) qemuConf(gs groupSpec) string {
	return fmt.Sprintf(`boot: order=scsi0;ide2;net0
cores: 2
cpu: x86-64-v2-AES
ide2: none,media=cdrom
memory: 4096
meta: creation-qemu=8.1.5,ctime=1712345678
name: %s
net0: virtio=%s,bridge=vmbr0,firewall=1
numa: 0
ostype: l26
scsi0: local-lvm:vm-%s-disk-0,iothread=1,size=%dG
scsihw: virtio-scsi-single
smbios1: uuid=%s
sockets: 1
vmgenid: %s
`, gs.name, b.macAddr(), gs.id, gs.disk>>30, b.uuidString(), b.uuidString())
}

func (b *builder) pctConf(gs groupSpec) string {
	return fmt.Sprintf(`arch: amd64
cores: 2
features: nesting=1
hostname: %s
memory: 2048
net0: name=eth0,bridge=vmbr0,firewall=1,hwaddr=%s,ip=dhcp,type=veth
ostype: debian
rootfs: local-lvm:vm-%s-disk-0,size=8G
swap: 512
unprivileged: 1
`, gs.name, b.macAddr(), gs.id)
}

func clientLog(gs groupSpec, t string) []byte {
	return []byte(fmt.Sprintf(`INFO: starting new backup job: vzdump %[1]s --mode snapshot --storage pbs --node pve1
INFO: Starting Backup of VM %[1]s (qemu)
INFO: Backup started at %[2]s
INFO: status = running
INFO: VM Name: %[3]s
INFO: include disk 'scsi0' 'local-lvm:vm-%[1]s-disk-0' %[4]dG
INFO: creating Proxmox Backup Server archive '%[5]s/%[1]s/%[2]s'
INFO: started backup task '3f0a9c2e-8d4b-4c1e-9a77-0d5e2b1c4f60'
INFO: resuming VM again
INFO: scsi0: dirty-bitmap status: created new
INFO: backup is sparse: 7.62 GiB (95%%) total zero data
INFO: backup was done incrementally, reused 7.98 GiB (99%%)
INFO: transferred 8.00 GiB in 12 seconds (682.7 MiB/s)
INFO: Finished Backup of VM %[1]s (00:00:14)
`, gs.id, t, gs.name, gs.disk>>30, gs.typ))
}
