package lock

import "strings"

// CompareDebianVersions compares two Debian package versions
// ([epoch:]upstream[-revision]) like dpkg --compare-versions and returns -1,
// 0 or +1. The epoch defaults to 0 and the revision to "" (which equals "0");
// upstream and revision are compared with dpkg's verrevcmp: alternating runs
// of non-digits (compared character by character, '~' before everything,
// even the end of the string, then the end, then letters, then all other
// characters) and digits (compared numerically, of any length).
func CompareDebianVersions(a, b string) int {
	ea, ua, ra := splitDebianVersion(a)
	eb, ub, rb := splitDebianVersion(b)
	if c := compareNumeric(ea, eb); c != 0 {
		return c
	}
	if c := verrevcmp(ua, ub); c != 0 {
		return c
	}
	return verrevcmp(ra, rb)
}

// splitDebianVersion splits off the epoch (before the first ':') and the
// revision (after the last '-').
func splitDebianVersion(v string) (epoch, upstream, revision string) {
	v = strings.TrimSpace(v)
	if i := strings.IndexByte(v, ':'); i >= 0 {
		epoch, v = v[:i], v[i+1:]
	}
	if i := strings.LastIndexByte(v, '-'); i >= 0 {
		v, revision = v[:i], v[i+1:]
	}
	return epoch, v, revision
}

// verrevcmp is dpkg's comparison of an upstream version or a revision.
func verrevcmp(a, b string) int {
	for a != "" || b != "" {
		// Non-digit prefix.
		for (a != "" && !isDigit(a[0])) || (b != "" && !isDigit(b[0])) {
			oa, ob := charOrder(a), charOrder(b)
			if oa != ob {
				return sign(oa - ob)
			}
			a, b = a[1:], b[1:]
		}
		// Digit run.
		da, db := digitRun(a), digitRun(b)
		if c := compareNumeric(da, db); c != 0 {
			return c
		}
		a, b = a[len(da):], b[len(db):]
	}
	return 0
}

// charOrder is the weight of the first character of s in a non-digit run;
// the end of the string (or a digit, which ends the run) is 0.
func charOrder(s string) int {
	if s == "" || isDigit(s[0]) {
		return 0
	}
	c := s[0]
	switch {
	case c == '~':
		return -1
	case (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'):
		return int(c)
	default:
		return int(c) + 256
	}
}

// compareNumeric compares two digit strings of any length numerically
// ("" counts as 0).
func compareNumeric(a, b string) int {
	a, b = strings.TrimLeft(a, "0"), strings.TrimLeft(b, "0")
	if len(a) != len(b) {
		return sign(len(a) - len(b))
	}
	return strings.Compare(a, b)
}

func digitRun(s string) string {
	i := 0
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	return s[:i]
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func sign(x int) int {
	switch {
	case x < 0:
		return -1
	case x > 0:
		return 1
	}
	return 0
}
