package datastore

import (
	"strings"
	"testing"
)

func TestValidators(t *testing.T) {
	for _, tc := range []struct {
		s                    string
		safeID, btime, btype bool
	}{
		{"100", true, false, false},
		{"my-host.example_1", true, false, false},
		{"_x", true, false, false},
		{".hidden", false, false, false},
		{"-x", false, false, false},
		{"", false, false, false},
		{"a/b", false, false, false},
		{"a b", false, false, false},
		{"ümlaut", false, false, false},
		{"vm", true, false, true},
		{"ct", true, false, true},
		{"host", true, false, true},
		{"VM", true, false, false},
		{"2024-06-05T14:22:01Z", false, true, false},
		{"2024-06-05T14:22:01", false, false, false},
		{"2024-06-05 14:22:01Z", false, false, false},
		{"2024-6-05T14:22:01Z", false, false, false},
		{"2024-06-05T14:22:01Z.tmp", false, false, false},
		{"..", false, false, false},
	} {
		if got := ValidSafeID(tc.s); got != tc.safeID {
			t.Errorf("ValidSafeID(%q) = %v", tc.s, got)
		}
		if got := ValidBackupTime(tc.s); got != tc.btime {
			t.Errorf("ValidBackupTime(%q) = %v", tc.s, got)
		}
		if got := ValidBackupType(tc.s); got != tc.btype {
			t.Errorf("ValidBackupType(%q) = %v", tc.s, got)
		}
	}
}

func TestPaths(t *testing.T) {
	sn := snap(NS{"a", "b"}, "host", "my-host", testTime)
	if got, want := sn.Dir(), "ns/a/ns/b/host/my-host/"+testTime; got != want {
		t.Errorf("Dir = %q, want %q", got, want)
	}
	if got, want := sn.Rel(), "host/my-host/"+testTime; got != want {
		t.Errorf("Rel = %q, want %q", got, want)
	}
	if got := snap(nil, "vm", "100", testTime).Dir(); got != "vm/100/"+testTime {
		t.Errorf("root Dir = %q", got)
	}
	if err := (NS{"a", "b", "c", "d", "e", "f", "g", "h"}).Validate(); err == nil {
		t.Error("depth 8 namespace accepted")
	}
	if err := (NS{strings.Repeat("a", 200), strings.Repeat("b", 60)}).Validate(); err == nil {
		t.Error("namespace longer than 256 accepted")
	}
	if err := (NS{"a", ".."}).Validate(); err == nil {
		t.Error("'..' namespace accepted")
	}
	c := NS{"a"}
	c1, c2 := c.Child("x"), c.Child("y")
	if c1[1] != "x" || c2[1] != "y" {
		t.Errorf("Child shares its backing array: %v %v", c1, c2)
	}
}
