package demo

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"

	"pbsfs/datastore"
	"pbsfs/manifest"
)

// Defaults of LargeOptions.
const (
	DefaultLargeGroups            = 100
	DefaultLargeSnapshotsPerGroup = 100
)

// largeEnd (2025-06-01T00:00:00Z) is the backup time of every group's newest
// snapshot, plus a per-group offset of a few hours.
const largeEnd = 1748736000

// Large writes a store of o.Groups groups with o.SnapshotsPerGroup snapshots
// each, spread round-robin over the root namespace and o.Namespaces further
// namespaces ("tenant-001", ...). It writes owners and manifests only: the
// archives the manifests list are not created. Groups are written by
// 8 workers per core (runtime.GOMAXPROCS) in parallel.
func Large(dir string, o LargeOptions) (Summary, error) {
	if o.Namespaces < 0 || o.Groups < 0 || o.SnapshotsPerGroup < 0 {
		return Summary{}, errors.New("demo: negative LargeOptions value")
	}
	if o.Groups == 0 {
		o.Groups = DefaultLargeGroups
	}
	if o.SnapshotsPerGroup == 0 {
		o.SnapshotsPerGroup = DefaultLargeSnapshotsPerGroup
	}
	st, cleanup, err := createStore(dir, datastore.CreateOptions{})
	if err != nil {
		return Summary{}, err
	}
	defer cleanup()

	nss := make([]datastore.NS, o.Namespaces+1)
	for i := 1; i <= o.Namespaces; i++ {
		nss[i] = datastore.NS{fmt.Sprintf("tenant-%03d", i)}
	}
	// Backups run nightly; very deep groups are hourly so that times stay sane.
	interval := int64(24 * 3600)
	if o.SnapshotsPerGroup > 10000 {
		interval = 3600
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	jobs := make(chan int)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		notes    []string
	)
	// The writer fsyncs every manifest and its directory, so the work is
	// bound by file-system latency rather than CPU: several writers per
	// core keep both cores busy (10k snapshots: 2 workers 20 s, 8 workers
	// 8.3 s, 32 workers 7.2 s on the 2-core CI machine kind).
	workers := 8 * max(runtime.GOMAXPROCS(0), 1)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for gi := range jobs {
				n, err := writeLargeGroup(st, nss[gi%len(nss)], gi, o, interval)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
					cancel()
				}
				if len(notes) < 10 {
					notes = append(notes, n...)
				}
				mu.Unlock()
			}
		}()
	}
feed:
	for gi := 0; gi < o.Groups; gi++ {
		select {
		case jobs <- gi:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	if firstErr != nil {
		return Summary{}, firstErr
	}
	if len(notes) > 10 {
		notes = notes[:10]
	}
	used := min(len(nss), o.Groups)
	return Summary{
		Namespaces: used,
		Groups:     o.Groups,
		Snapshots:  o.Groups * o.SnapshotsPerGroup,
		Notes:      notes,
	}, nil
}

var largeOwners = []string{"root@pam", "root@pam", "backup@pbs", "sync@pbs", "admin@pbs!nightly"}

// writeLargeGroup writes group number gi and its snapshots; it returns the
// paths of a few notes it wrote.
func writeLargeGroup(st *datastore.Store, ns datastore.NS, gi int, o LargeOptions, interval int64) ([]string, error) {
	rng := rand.New(rand.NewPCG(uint64(o.Seed), uint64(gi)))
	var typ, id string
	switch r := rng.IntN(100); {
	case r < 50:
		typ, id = "vm", fmt.Sprint(100+gi)
	case r < 85:
		typ, id = "ct", fmt.Sprint(100+gi)
	default:
		typ, id = "host", fmt.Sprintf("node%04d.example.com", gi)
	}
	g := datastore.Group{NS: ns, Type: typ, ID: id}
	if err := st.CreateGroup(g, largeOwners[rng.IntN(len(largeOwners))]); err != nil {
		return nil, fmt.Errorf("demo: create group %s: %w", g.Dir(), err)
	}
	disk := []uint64{8 << 30, 16 << 30, 32 << 30, 64 << 30, 100 << 30}[rng.IntN(5)]
	hasEFI := rng.IntN(3) == 0
	end := largeEnd + int64(rng.IntN(6*3600))
	var notes []string
	for k := 0; k < o.SnapshotsPerGroup; k++ {
		epoch := end - int64(o.SnapshotsPerGroup-1-k)*interval
		sn := datastore.Snapshot{Group: g, Time: snapshotTime(epoch)}
		m, noted, err := largeManifest(rng, typ, id, epoch, disk, hasEFI)
		if err != nil {
			return notes, fmt.Errorf("demo: snapshot %s: %w", sn.Dir(), err)
		}
		if err := st.WriteSnapshot(sn, m, nil); err != nil {
			return notes, fmt.Errorf("demo: snapshot %s: %w", sn.Dir(), err)
		}
		if noted && len(notes) < 2 {
			notes = append(notes, sn.Dir()+"/notes")
		}
	}
	return notes, nil
}

var largeNotes = []string{
	"nightly",
	"before kernel upgrade",
	"Release 2025.05 deployed\nTicket: OPS-4711",
	"Prüfsumme geprüft ✓",
	"pg_dump ok — 12 GB\nVACUUM FULL vorher",
	"keep until audit 2025-Q3",
}

func randHex(rng *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return hex.EncodeToString(b)
}

// largeManifest builds a realistic manifest (file list, sizes, checksums,
// chunk_upload_stats, usually verify_state, sometimes notes).
func largeManifest(rng *rand.Rand, typ, id string, epoch int64, disk uint64, hasEFI bool) (*manifest.Manifest, bool, error) {
	blob := func(name string, size uint64) manifest.FileInfo {
		return manifest.FileInfo{Filename: name, CryptMode: manifest.CryptNone, Csum: randHex(rng, 32), Size: size}
	}
	var files []manifest.FileInfo
	var total uint64
	switch typ {
	case "vm":
		files = append(files, blob("qemu-server.conf.blob", 400+uint64(rng.IntN(500))))
		if hasEFI {
			files = append(files, blob("drive-efidisk0.img.fidx", 540672))
		}
		files = append(files, blob("drive-scsi0.img.fidx", disk))
		total = disk
	default:
		root := uint64(200<<20 + rng.IntN(6<<30))
		if typ == "ct" {
			files = append(files, blob("pct.conf.blob", 300+uint64(rng.IntN(300))))
		}
		files = append(files, blob("root.pxar.didx", root), blob("catalog.pcat1.didx", root/2000+uint64(rng.IntN(4096))))
		total = root
	}
	m, err := manifest.New(typ, id, epoch, files)
	if err != nil {
		return nil, false, fmt.Errorf("manifest: %w", err)
	}
	u := m.Unprotected()
	count := total / (4 << 20)
	if err := setJSON(u, "chunk_upload_stats", map[string]uint64{
		"compressed_size": total / 50,
		"count":           count,
		"duplicates":      count - count/40,
		"size":            total,
	}); err != nil {
		return nil, false, err
	}
	if rng.IntN(10) < 8 {
		state := "ok"
		if rng.IntN(50) == 0 {
			state = "failed"
		}
		if err := setJSON(u, "verify_state", map[string]string{
			"state": state,
			"upid":  upid(epoch+7200, uint32(rng.IntN(1<<16))),
		}); err != nil {
			return nil, false, err
		}
	}
	noted := rng.IntN(5) == 0
	if noted {
		if err := u.SetNotes(largeNotes[rng.IntN(len(largeNotes))]); err != nil {
			return nil, false, fmt.Errorf("notes: %w", err)
		}
	}
	return m, noted, nil
}
