package subject

import (
	"errors"
	"os"
	"strings"
	"testing"
)

const (
	uid = "ub7c3ifq2mt4wy6xosldnpaezku"
	did = "dk2w5h3tqzr7fx6ojbmv4ucyalp"
)

// bad are values that must never become a subject token.
var bad = []string{"", "*", ">", "u.x", "ub7c3ifq2mt4wy6xosldnpaezk*", "ub7c3ifq2mt4wy6xosldnpaezk>", "ub7c3ifq2mt4wy6xosldnpae.ku", "UB7C3IFQ2MT4WY6XOSLDNPAEZKU", "dk2w5h3tqzr7fx6ojbmv4ucyalp"}

func TestPairsRoundTrip(t *testing.T) {
	must := func(s string, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if s := must(Mailbox(12, uid)); s != "mbx.12."+uid {
		t.Errorf("Mailbox = %q", s)
	} else if p, u, ok := ParseMailbox(s); !ok || p != 12 || u != uid {
		t.Errorf("ParseMailbox(%q) = %d %q %v", s, p, u, ok)
	}
	if s := must(Delivery(0, uid)); s != "dlv.mbx.0."+uid {
		t.Errorf("Delivery = %q", s)
	} else if p, u, ok := ParseDelivery(s); !ok || p != 0 || u != uid {
		t.Errorf("ParseDelivery(%q) = %d %q %v", s, p, u, ok)
	}
	for _, c := range []struct {
		build func(string) (string, error)
		parse func(string) (string, bool)
		want  string
	}{
		{Events, ParseEvents, "evt." + uid},
		{GraphChanges, ParseGraphChanges, "fab.graph." + uid},
		{Revoked, ParseRevoked, "fab.revoked." + uid},
	} {
		s := must(c.build(uid))
		if s != c.want {
			t.Errorf("built %q, want %q", s, c.want)
		}
		if u, ok := c.parse(s); !ok || u != uid {
			t.Errorf("parse(%q) = %q %v", s, u, ok)
		}
	}
	if s := must(PresenceChange(uid, did)); s != "prs.chg."+uid+"."+did {
		t.Errorf("PresenceChange = %q", s)
	} else if u, d, ok := ParsePresenceChange(s); !ok || u != uid || d != did {
		t.Errorf("ParsePresenceChange(%q) = %q %q %v", s, u, d, ok)
	}
	if s := must(Service(uid, did, "keys.lookup")); s != "svc."+uid+"."+did+".keys.lookup" {
		t.Errorf("Service = %q", s)
	} else if u, d, op, ok := ParseService(s); !ok || u != uid || d != did || op != "keys.lookup" {
		t.Errorf("ParseService(%q) = %q %q %q %v", s, u, d, op, ok)
	}
	if s := Inbox(uid) + ".abc"; true {
		if u, ok := ParseInbox(s); !ok || u != uid {
			t.Errorf("ParseInbox(%q) = %q %v", s, u, ok)
		}
	}
	if p, ok := ParseMailboxStream(MailboxStream(7)); !ok || p != 7 {
		t.Errorf("ParseMailboxStream = %d %v", p, ok)
	}
}

func TestBuildersRefuseBadIDs(t *testing.T) {
	for _, b := range bad {
		badDev := b // a user id is not a device id, and the other way round
		if b == did {
			badDev = uid
		}
		builders := map[string]func() (string, error){
			"Mailbox":              func() (string, error) { return Mailbox(1, b) },
			"Delivery":             func() (string, error) { return Delivery(1, b) },
			"DeliveryAnyPartition": func() (string, error) { return DeliveryAnyPartition(b) },
			"Events":               func() (string, error) { return Events(b) },
			"GraphChanges":         func() (string, error) { return GraphChanges(b) },
			"Revoked":              func() (string, error) { return Revoked(b) },
			"PresenceChange user":  func() (string, error) { return PresenceChange(b, did) },
			"PresenceChange dev":   func() (string, error) { return PresenceChange(uid, badDev) },
			"PresenceKey":          func() (string, error) { return PresenceKey("presence", b, did) },
			"Service user":         func() (string, error) { return Service(b, did, "send") },
			"Service device":       func() (string, error) { return Service(uid, badDev, "send") },
			"ServiceOf":            func() (string, error) { return ServiceOf(b, did) },
			"InboxAll":             func() (string, error) { return InboxAll(b) },
		}
		for name, f := range builders {
			if s, err := f(); !errors.Is(err, ErrBadID) {
				t.Errorf("%s(%q) = %q, %v; want ErrBadID", name, b, s, err)
			}
		}
	}
	for _, op := range []string{"", "*", ">", "send.>", "a..b", ".send", "send.", "Send"} {
		if s, err := Service(uid, did, op); err == nil {
			t.Errorf("Service op %q = %q, want an error", op, s)
		}
	}
	if s, err := Mailbox(-1, uid); err == nil {
		t.Errorf("Mailbox(-1) = %q", s)
	}
}

func TestParsersRefuseForeignSubjects(t *testing.T) {
	for _, s := range []string{
		"", "mbx", "mbx.1", "mbx.1.", "mbx.01." + uid, "mbx.-1." + uid, "mbx.x." + uid, "mbx.1." + uid + ".x",
		"mbx.1.*", "mbx.1.~rotate", "mbx.1.~rotated", "dlv.mbx.1.>", "evt.*", "evt." + uid + ".x",
	} {
		if p, u, ok := ParseMailbox(s); ok {
			t.Errorf("ParseMailbox(%q) = %d %q", s, p, u)
		}
		if p, u, ok := ParseDelivery(s); ok {
			t.Errorf("ParseDelivery(%q) = %d %q", s, p, u)
		}
		if u, ok := ParseEvents(s); ok {
			t.Errorf("ParseEvents(%q) = %q", s, u)
		}
	}
	for _, s := range []string{"svc." + uid + "." + did, "svc." + uid + "." + did + ".", "svc." + uid + ".*.send", "svc.*.*.send"} {
		if _, _, _, ok := ParseService(s); ok {
			t.Errorf("ParseService(%q) ok", s)
		}
	}
	for _, s := range []string{"_INBOX_" + uid, "_INBOX_" + uid + ".", "_INBOX_x.y", "_INBOX." + uid + ".x"} {
		if _, ok := ParseInbox(s); ok {
			t.Errorf("ParseInbox(%q) ok", s)
		}
	}
	for _, s := range []string{"MBX_", "MBX_x", "MBX_01", "KV_presence"} {
		if _, ok := ParseMailboxStream(s); ok {
			t.Errorf("ParseMailboxStream(%q) ok", s)
		}
	}
}

// TestDocsTable checks docs/fabric.md's subject table against the builders:
// every row's pattern, with its placeholders filled in, is what the named
// builder makes, and every builder has a row.
func TestDocsTable(t *testing.T) {
	b, err := os.ReadFile("../../docs/fabric.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(b), "## Subject namespace\n")
	if !ok {
		t.Fatal(`docs/fabric.md has no "## Subject namespace"`)
	}
	table, _, _ = strings.Cut(strings.TrimLeft(table, "\n"), "\n\n")
	fill := strings.NewReplacer("<p>", "5", "<user>", uid, "<device>", did, "<op>", "send", "<bucket>", "presence", "<token>", "x1")
	built := map[string]string{
		"Mailbox":        first(Mailbox(5, uid)),
		"Delivery":       first(Delivery(5, uid)),
		"Events":         first(Events(uid)),
		"GraphChanges":   first(GraphChanges(uid)),
		"Revoked":        first(Revoked(uid)),
		"PresenceChange": first(PresenceChange(uid, did)),
		"PresenceKey":    first(PresenceKey("presence", uid, did)),
		"Service":        first(Service(uid, did, "send")),
		"Inbox":          Inbox(uid) + ".x1",
		"RotateFiller":   RotateFiller(5),
		"RotateMarker":   RotateMarker(5),
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(table, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 3 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "`") {
			continue
		}
		pats := backticked(cells[1])
		names := backticked(cells[2])
		if len(names) == 0 || len(pats) == 0 {
			t.Errorf("row %q names no builder", line)
			continue
		}
		for i, pat := range pats {
			name := names[min(i, len(names)-1)]
			want, ok := built[name]
			if !ok {
				t.Errorf("row %q: no builder %s", line, name)
				continue
			}
			seen[name] = true
			if got := fill.Replace(pat); got != want {
				t.Errorf("docs say %s makes %q (%q filled in), it makes %q", name, pat, got, want)
			}
		}
	}
	for name := range built {
		if !seen[name] {
			t.Errorf("builder %s has no row in docs/fabric.md's subject table", name)
		}
	}
}

func first(s string, _ error) string { return s }

// backticked returns the `code` spans of a table cell.
func backticked(cell string) []string {
	var out []string
	parts := strings.Split(cell, "`")
	for i := 1; i < len(parts); i += 2 {
		out = append(out, parts[i])
	}
	return out
}
