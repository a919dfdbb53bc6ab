package pbsconfig

import (
	"strings"
	"testing"
)

// FuzzParse: any input either parses into sections that satisfy PBS's
// rules (valid names, a path each, no duplicates) or gives a SyntaxError
// with a line number; the property strings never panic and an unparsable
// mode always refuses reads and writes.
func FuzzParse(f *testing.F) {
	f.Add([]byte(example))
	f.Add([]byte("datastore: abc\n\tpath /x\n\tmaintenance-mode type=read-only,message=\"a \\\"b\\\" c\"\n"))
	f.Add([]byte("datastore:abc\n path /x\n backend s3,client=c,bucket=b\n\n"))
	f.Add([]byte("# c\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			if _, ok := err.(*SyntaxError); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		seen := map[string]bool{}
		for _, d := range c.Datastores {
			if !ValidName(d.Name) || seen[d.Name] || d.Path == "" || strings.ContainsAny(d.Path, "\n") {
				t.Fatalf("bad section %+v", d)
			}
			seen[d.Name] = true
			m := d.Maintenance
			if m.Err != nil && (m.Check(Read) == nil || m.Check(Write) == nil) {
				t.Fatalf("unparsable mode %q allows access", m.Raw)
			}
			if d.Backend.Err != nil && d.Backend.Local() {
				t.Fatalf("unparsable backend %q counts as local", d.Backend.Raw)
			}
		}
	})
}
