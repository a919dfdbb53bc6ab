package pbsconfig

import (
	"errors"
	"fmt"
	"strings"
)

// parsePropertyString splits a PBS property string (§10.1.3) into its
// key/value pairs. An item without "=" before the next "," belongs to
// defaultKey ("" = the schema has none, and a bare value is an error).
// Quoted values know the escapes \" \\ and \n only. Keys and values are
// not trimmed; duplicate keys are errors. Which keys are allowed is the
// caller's business.
func parsePropertyString(s, defaultKey string) (map[string]string, error) {
	out := map[string]string{}
	for s != "" {
		var key string
		eq := strings.IndexByte(s, '=')
		comma := strings.IndexByte(s, ',')
		if eq >= 0 && (comma < 0 || eq < comma) {
			key, s = s[:eq], s[eq+1:]
		} else {
			if defaultKey == "" {
				return nil, fmt.Errorf("value without key")
			}
			key = defaultKey
		}
		var val string
		if strings.HasPrefix(s, `"`) {
			v, rest, err := parseQuoted(s[1:])
			if err != nil {
				return nil, err
			}
			if rest != "" && rest[0] != ',' {
				return nil, errors.New("garbage after quoted string")
			}
			val, s = v, rest
		} else if comma = strings.IndexByte(s, ','); comma >= 0 {
			val, s = s[:comma], s[comma:]
		} else {
			val, s = s, ""
		}
		if _, dup := out[key]; dup {
			return nil, fmt.Errorf("duplicate key '%s'", key)
		}
		out[key] = val
		if s != "" { // s starts with ","
			s = s[1:]
			if s == "" {
				break // a trailing comma ends the list
			}
		}
	}
	return out, nil
}

// parseQuoted reads a quoted string whose opening quote was consumed; it
// returns the value and what follows the closing quote.
func parseQuoted(s string) (string, string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			return b.String(), s[i+1:], nil
		case '\\':
			if i+1 >= len(s) {
				return "", "", errors.New("unterminated quoted string")
			}
			i++
			switch s[i] {
			case '"', '\\':
				b.WriteByte(s[i])
			case 'n':
				b.WriteByte('\n')
			default:
				return "", "", errors.New("unsupported escape sequence")
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", "", errors.New("unterminated quoted string")
}
