package main

import (
	"flag"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The mount flags are documented in three places besides the flag set:
// pbsfs mount --help, the man page's source (docs/pbsfs.1.md, rendered by
// scripts/build-deb) and the README's flag table. TestFlagsDocumented
// checks that each lists exactly the flags mountFlags defines, so adding
// a flag means adding its text to each, and the test says where it lacks.
func TestFlagsDocumented(t *testing.T) {
	var want []string
	mountFlags("t", &mountOptions{}).VisitAll(func(f *flag.Flag) { want = append(want, dashed(f.Name)) })
	want = append(want, "--help", "-h") // flag's own
	slices.Sort(want)

	code, help, _ := runCLI("mount", "--help")
	if code != ExitOK {
		t.Fatalf("mount --help: exit %d", code)
	}
	man := readDoc(t, "../../docs/pbsfs.1.md")
	readme := readDoc(t, "../../README.md")
	for _, c := range []struct {
		where string
		got   []string
	}{
		{"pbsfs mount --help", flagsIn(section(help, "Options:\n", "\n\n"), `(?m)^ {2,}((?:-\w, )?--[a-z0-9-]+)`)},
		{"docs/pbsfs.1.md OPTIONS", flagsIn(section(man, "\n# OPTIONS\n", "\n# "), `(?m)^(\*\*-[^\n]*)$`)},
		{"README.md flag table", flagsIn(section(readme, "\n## Flags\n", "\n## "), "(?m)^\\| (`-[^|]*)\\|")},
	} {
		if !slices.Equal(c.got, want) {
			t.Errorf("%s lists %q\nthe flag set has %q\nmissing %q, extra %q", c.where, c.got, want, minus(want, c.got), minus(c.got, want))
		}
	}
}

func dashed(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

// flagsIn returns the sorted, distinct flag names (-x, --name) in the
// first group of every match of re in text.
func flagsIn(text, re string) []string {
	names := map[string]bool{}
	flagRE := regexp.MustCompile(`(^|[^\w-])(--?[a-z][a-z0-9-]*)`)
	for _, m := range regexp.MustCompile(re).FindAllStringSubmatch(text, -1) {
		for _, f := range flagRE.FindAllStringSubmatch(m[1], -1) {
			names[f[2]] = true
		}
	}
	var out []string
	for n := range names {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// section is the text after start up to the next end (or the end).
func section(text, start, end string) string {
	_, after, ok := strings.Cut(text, start)
	if !ok {
		return ""
	}
	before, _, _ := strings.Cut(after, end)
	return before
}

func minus(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

func readDoc(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
