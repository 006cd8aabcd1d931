package store

import (
	"strconv"
	"strings"
)

// Rebind returns query with its "?" placeholders numbered "$1", "$2", ...
// for PostgreSQL, and unchanged for SQLite, so that callers write one query
// text for both. A "?" in a string literal ('...'), a quoted identifier
// ("..."), a dollar-quoted string ($tag$...$tag$) or a comment is left
// alone. PostgreSQL's jsonb operators ?, ?| and ?& cannot be written
// through Rebind; use jsonb_exists, jsonb_exists_any and jsonb_exists_all.
func (db *DB) Rebind(query string) string {
	if db.dialect != Postgres {
		return query
	}
	return rebindDollar(query)
}

func rebindDollar(q string) string {
	if !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 8)
	n := 0
	for i := 0; i < len(q); {
		c := q[i]
		var end int // the end of the literal or comment at i, if one starts there
		switch {
		case c == '\'' || c == '"':
			// The quote doubled is the quote itself: the scan goes on past
			// it. In E'...' a backslash escapes the next byte.
			escapes := c == '\'' && i > 0 && (q[i-1] == 'E' || q[i-1] == 'e') && (i == 1 || !isIdent(q[i-2]))
			end = i + 1
			for end < len(q) {
				if escapes && q[end] == '\\' {
					end += 2
					continue
				}
				if q[end] == c {
					if end+1 < len(q) && q[end+1] == c {
						end += 2
						continue
					}
					end++
					break
				}
				end++
			}
		case c == '-' && strings.HasPrefix(q[i:], "--"):
			end = strings.IndexByte(q[i:], '\n')
			if end < 0 {
				end = len(q)
			} else {
				end += i + 1
			}
		case c == '/' && strings.HasPrefix(q[i:], "/*"):
			// PostgreSQL's block comments nest.
			depth, j := 0, i
			for j < len(q) {
				switch {
				case strings.HasPrefix(q[j:], "/*"):
					depth++
					j += 2
				case strings.HasPrefix(q[j:], "*/"):
					depth--
					j += 2
				default:
					j++
				}
				if depth == 0 {
					break
				}
			}
			end = j
		case c == '$' && (i == 0 || !isIdent(q[i-1])):
			if tag, ok := dollarTag(q[i:]); ok {
				close := strings.Index(q[i+len(tag):], tag)
				if close < 0 {
					end = len(q)
				} else {
					end = i + len(tag) + close + len(tag)
				}
			}
		case c == '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			i++
			continue
		}
		if end > i {
			end = min(end, len(q))
			b.WriteString(q[i:end])
			i = end
			continue
		}
		b.WriteByte(c)
		i++
	}
	return b.String()
}

// dollarTag returns the opening tag of a dollar-quoted string at the start
// of s: "$$" or "$name$", where name is not a number ($1 is a parameter).
func dollarTag(s string) (string, bool) {
	for j := 1; j < len(s); j++ {
		c := s[j]
		switch {
		case c == '$':
			return s[:j+1], true
		case c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c >= 0x80:
		case '0' <= c && c <= '9' && j > 1:
		default:
			return "", false
		}
	}
	return "", false
}

func isIdent(c byte) bool {
	return c == '_' || c == '$' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c >= 0x80
}
