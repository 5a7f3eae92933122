package callout

import (
	"testing"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"

	"github.com/mayfly-im/mayfly/fabric/subject"
)

// allowed reports whether perm lets a client use subj the way nats-server
// decides it: some allow entry covers subj (a subscription's wildcard
// subject only when all it matches is covered) and no deny entry touches it.
func allowed(perm jwt.Permission, subj string) bool {
	for _, d := range perm.Deny {
		if server.SubjectsCollide(subj, d) {
			return false
		}
	}
	for _, a := range perm.Allow {
		if server.SubjectMatchesFilter(subj, a) {
			return true
		}
	}
	return false
}

// TestPermissionsTable checks the native client's grants against the
// subjects the builders make: its own are allowed, everyone else's and the
// fabric's are refused.
func TestPermissionsTable(t *testing.T) {
	const (
		alice  = "ub7c3ifq2mt4wy6xosldnpaezku"
		bob    = "uqnc7r2ktt3abxk5e4iglwyzmvh"
		phone  = "dk2w5h3tqzr7fx6ojbmv4ucyalp"
		laptop = "dtxf4qakajumhbuqavb5pyvdn2m"
	)
	p := Permissions(alice, phone)
	must := func(s string, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	cases := []struct {
		name, op, subj string
		ok             bool
	}{
		{"own send", "pub", must(subject.Service(alice, phone, "send")), true},
		{"own keys.lookup", "pub", must(subject.Service(alice, phone, "keys.lookup")), true},
		{"own deliveries, partition 3", "sub", must(subject.Delivery(3, alice)), true},
		{"own deliveries, partition 1023", "sub", must(subject.Delivery(1023, alice)), true},
		{"own deliveries, any partition", "sub", must(subject.DeliveryAnyPartition(alice)), true},
		{"own events", "sub", must(subject.Events(alice)), true},
		{"own inbox", "sub", subject.Inbox(alice) + ".x1.y", true},

		{"own other device's service", "pub", must(subject.Service(alice, laptop, "send")), false},
		{"other user's service", "pub", must(subject.Service(bob, laptop, "send")), false},
		{"every service", "pub", subject.ServiceEndpoint("send"), false},
		{"other user's deliveries", "sub", must(subject.Delivery(3, bob)), false},
		{"all deliveries", "sub", subject.DeliveryAll, false},
		{"other user's events", "sub", must(subject.Events(bob)), false},
		{"all events", "sub", subject.EventsPrefix + "*", false},
		{"other user's inbox", "sub", subject.Inbox(bob) + ".x1", false},
		{"write into own mailbox", "pub", must(subject.Mailbox(3, alice)), false},
		{"write into a friend's mailbox", "pub", must(subject.Mailbox(3, bob)), false},
		{"read mailbox subjects", "sub", subject.MailboxPartition(3), false},
		{"fake a delivery", "pub", must(subject.Delivery(3, bob)), false},
		{"fake an event", "pub", must(subject.Events(bob)), false},
		{"graph changes", "sub", subject.GraphChangesAll, false},
		{"fake a graph change", "pub", must(subject.GraphChanges(bob)), false},
		{"revocations", "sub", subject.RevokedAll, false},
		{"fake a revocation", "pub", must(subject.Revoked(alice)), false},
		{"presence changes", "sub", subject.PresenceChangesAll, false},
		{"presence keys", "pub", must(subject.PresenceKey("presence", alice, phone)), false},
		{"auth callout", "sub", subject.AuthCallout, false},
		{"kick", "pub", subject.ServerKick("NSERVER"), false},
		{"direct get", "pub", "$JS.API.DIRECT.GET." + subject.MailboxStream(3), false},
		{"message delete", "pub", "$JS.API.STREAM.MSG.DELETE." + subject.MailboxStream(3), false},
		{"everything", "sub", ">", false},
	}
	for _, c := range cases {
		perm := p.Pub
		if c.op == "sub" {
			perm = p.Sub
		}
		if got := allowed(perm, c.subj); got != c.ok {
			t.Errorf("%s: %s %q allowed = %v, want %v", c.name, c.op, c.subj, got, c.ok)
		}
	}
}

// TestPermissionsBadIDs: a malformed id gives a client nothing.
func TestPermissionsBadIDs(t *testing.T) {
	for _, ids := range [][2]string{{"*", "dk2w5h3tqzr7fx6ojbmv4ucyalp"}, {"ub7c3ifq2mt4wy6xosldnpaezku", ">"}, {"", ""}} {
		p := Permissions(ids[0], ids[1])
		for _, subj := range []string{">", "svc.x.y.send", "evt.x", subject.DeliveryAll} {
			if allowed(p.Pub, subj) || allowed(p.Sub, subj) {
				t.Errorf("Permissions(%q, %q) allows %q", ids[0], ids[1], subj)
			}
		}
	}
}
