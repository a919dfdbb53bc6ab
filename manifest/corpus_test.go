package manifest

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestWriteFuzzSeedCorpus (re)writes the checked-in seed corpora under
// testdata/fuzz/ from the seed functions in fuzz_test.go. It only runs with
// PBSFS_WRITE_FUZZ_CORPUS=1:
//
//	PBSFS_WRITE_FUZZ_CORPUS=1 go test -run TestWriteFuzzSeedCorpus ./manifest/
func TestWriteFuzzSeedCorpus(t *testing.T) {
	if os.Getenv("PBSFS_WRITE_FUZZ_CORPUS") != "1" {
		t.Skip("set PBSFS_WRITE_FUZZ_CORPUS=1 to rewrite testdata/fuzz seeds")
	}
	write := func(target string, args ...any) {
		var sb strings.Builder
		sb.WriteString("go test fuzz v1\n")
		for _, a := range args {
			switch v := a.(type) {
			case []byte:
				fmt.Fprintf(&sb, "[]byte(%q)\n", v)
			case string:
				fmt.Fprintf(&sb, "string(%q)\n", v)
			default:
				t.Fatalf("unsupported corpus type %T", a)
			}
		}
		sum := sha256.Sum256([]byte(sb.String()))
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		name := filepath.Join(dir, fmt.Sprintf("seed-%x", sum[:8]))
		if err := os.WriteFile(name, []byte(sb.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range blobSeeds(t) {
		write("FuzzDecodeBlob", s)
	}
	for _, s := range manifestSeeds(t) {
		write("FuzzParseManifest", s)
	}
	for i, s := range manifestSeeds(t) {
		write("FuzzUpdateBlob", s, updateNotesSeeds[i%len(updateNotesSeeds)])
	}
}
