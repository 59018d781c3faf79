package smtpd

import "strings"

// Address refusals.
var (
	errRelayHack = reply(550, 5, 7, 1, "Relaying through %, ! or @ in the local part is not allowed")
	errLiteral   = reply(553, 5, 1, 3, "Address literals are not accepted")
	errSyntax    = reply(553, 5, 1, 3, "Bad recipient address syntax")
)

// checkAddress vets a path from MAIL or RCPT (go-smtp has already taken the
// brackets off, dropped any source route and unquoted a quoted local part)
// and returns it with its domain in lower case. It refuses what could make
// a relay hop: %, ! or a second @ in the local part (the last one came from
// a quoted local part such as "user@other"@local), an address literal, a
// single-label domain that is not the organization's ("localhost"), and
// anything that is not a plain dot-atom at a host name.
func checkAddress(a string, local func(string) bool) (string, error) {
	if len(a) > 254 {
		return "", errSyntax
	}
	at := strings.LastIndexByte(a, '@')
	if at <= 0 {
		return "", errSyntax
	}
	lp, domain := a[:at], a[at+1:]
	if strings.ContainsAny(lp, "%!@") {
		return "", errRelayHack
	}
	if strings.HasPrefix(domain, "[") {
		return "", errLiteral
	}
	if len(lp) > 64 || !dotAtom(lp) {
		return "", errSyntax
	}
	domain = strings.ToLower(domain)
	if !hostname(domain) {
		return "", errSyntax
	}
	if !strings.Contains(domain, ".") && !isLocal(local, domain) {
		return "", errSyntax
	}
	return lp + "@" + domain, nil
}

func isLocal(local func(string) bool, domain string) bool {
	return local != nil && local(domain)
}

// dotAtom: RFC 5322 atext separated by single dots.
func dotAtom(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.':
		case strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// hostname: lower-case LDH labels of 1–63 characters, 253 in all, no
// trailing dot.
func hostname(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
