package integration

import (
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestBashCompletion runs the packaged completion function in bash with
// the built pbsfs on PATH: commands, flags read from --help, flag values.
func TestBashCompletion(t *testing.T) {
	if buildErr != nil {
		t.Fatalf("building pbsfs failed: %v", buildErr)
	}
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	for words, want := range map[string]string{
		"pbsfs mo":                  "mount",
		"pbsfs mount --read-":       "--read-only --read-ahead",
		"pbsfs mount --lock-s":      "--lock-scheme",
		"pbsfs mount --lock-scheme": "auto run dirs legacy",
		"pbsfs demo --key":          "--keyfile",
		"pbsfs help d":              "demo",
	} {
		w := strings.Fields(words)
		if strings.HasSuffix(words, "--lock-scheme") {
			w = append(w, "")
		}
		script := "source ../packaging/pbsfs.bash-completion\nCOMP_WORDS=(" + strings.Join(quoteAll(w), " ") + ")\n" +
			"COMP_CWORD=" + strconv.Itoa(len(w)-1) + "\n_pbsfs\necho \"${COMPREPLY[*]}\"\n"
		cmd := exec.Command("bash", "-c", script)
		cmd.Env = append(cmd.Environ(), "PATH="+filepath.Dir(pbsfsBin)+":/usr/bin:/bin")
		out, err := cmd.CombinedOutput()
		if got := strings.TrimSpace(string(out)); err != nil || got != want {
			t.Errorf("%q: %v %q, want %q", words, err, got, want)
		}
	}
}

func quoteAll(ws []string) []string {
	out := make([]string, len(ws))
	for i, w := range ws {
		out[i] = shq(w)
	}
	return out
}
