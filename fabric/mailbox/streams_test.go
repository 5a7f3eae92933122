package mailbox

import (
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

func TestMailboxPartition(t *testing.T) {
	for _, c := range []struct {
		id   string
		n    int
		want int
	}{
		{"a", 16, 0xe40c292c % 16}, // FNV-1a 32 of "a" is 0xe40c292c
		{"a", 1, 0},
		{"", 7, 0x811c9dc5 % 7}, // the FNV offset basis
		{"uaaaaaaaaaaaaaaaaaaaaaaaaaa", 16, Partition("uaaaaaaaaaaaaaaaaaaaaaaaaaa", 16)},
	} {
		if got := Partition(c.id, c.n); got != c.want {
			t.Errorf("Partition(%q, %d) = %d, want %d", c.id, c.n, got, c.want)
		}
	}
	seen := map[int]bool{}
	for range 2000 {
		p := Partition(newUser(t).id, 16)
		if p < 0 || p >= 16 {
			t.Fatalf("partition %d out of range", p)
		}
		seen[p] = true
	}
	if len(seen) != 16 {
		t.Fatalf("2000 ids hit %d of 16 partitions", len(seen))
	}
}

func TestMailboxSubjects(t *testing.T) {
	f := newFixture(t, nil)
	u := newUser(t)
	p := strconv.Itoa(Partition(u.id, 4))
	if got := mustSubject(t, f.svc, u.id); got != "mbx."+p+"."+u.id {
		t.Fatalf("Subject = %q", got)
	}
	if got, err := f.svc.DeliverySubject(u.id); err != nil || got != "dlv.mbx."+p+"."+u.id {
		t.Fatalf("DeliverySubject = %q, %v", got, err)
	}
	for _, bad := range []string{"", "u", "*", ">", "uaaaaaaaaaaaaaaaaaaaaaaaa.a", "Uaaaaaaaaaaaaaaaaaaaaaaaaaa", "u aaaaaaaaaaaaaaaaaaaaaaaaa"} {
		if s, err := f.svc.Subject(bad); err == nil {
			t.Errorf("Subject(%q) = %q, want an error", bad, s)
		}
		if s, err := f.svc.DeliverySubject(bad); err == nil {
			t.Errorf("DeliverySubject(%q) = %q, want an error", bad, s)
		}
	}
}

func TestMailboxStreamSettings(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.MaxAge = 10 * time.Minute; c.MaxPerMailbox = 50 })
	js, err := jetstream.New(f.nc)
	if err != nil {
		t.Fatal(err)
	}
	for p := range 4 {
		st, err := js.Stream(testContext(t), streamName(p))
		if err != nil {
			t.Fatal(err)
		}
		c := st.CachedInfo().Config
		ok := c.Subjects[0] == "mbx."+strconv.Itoa(p)+".*" && c.Storage == jetstream.FileStorage &&
			c.Replicas == 1 && c.MaxAge == 10*time.Minute && c.MaxMsgsPerSubject == 50 &&
			c.Discard == jetstream.DiscardNew && c.DiscardNewPerSubject && c.AllowDirect &&
			c.Duplicates == DefaultDuplicateWindow && c.MaxConsumers == maxConsumers &&
			c.RePublish != nil && c.RePublish.Destination == "dlv.>" && c.Metadata[metaPartitions] == "4"
		if !ok {
			t.Fatalf("stream %s config = %+v", c.Name, c)
		}
	}
}

func TestMailboxConfig(t *testing.T) {
	f := newFixture(t, nil) // 4 partitions
	ctx := testContext(t)
	for _, c := range []struct {
		name string
		cfg  Config
	}{
		{"more partitions than exist", Config{NATS: f.nc, Permit: f.friends, Partitions: 8}},
		{"fewer partitions than exist", Config{NATS: f.nc, Permit: f.friends, Partitions: 2}},
		{"default partitions", Config{NATS: f.nc, Permit: f.friends}},
		{"MaxAge over an hour", Config{NATS: f.nc, Permit: f.friends, Partitions: 4, MaxAge: 61 * time.Minute}},
		{"no Permit", Config{NATS: f.nc, Partitions: 4}},
		{"no NATS", Config{Permit: f.friends, Partitions: 4}},
		{"negative cap", Config{NATS: f.nc, Permit: f.friends, Partitions: 4, MaxPerMailbox: -1}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := New(ctx, c.cfg); !errors.Is(err, ErrConfig) {
				t.Fatalf("New = %v, want ErrConfig", err)
			}
		})
	}
	a, b := f.friendsPair(t)
	res := f.send(t, a, b, "survives an update")
	// Same partitions, new limits: the streams are updated in place.
	s2, err := New(ctx, Config{NATS: f.nc, Permit: f.friends, Partitions: 4, MaxAge: 5 * time.Minute, DuplicateWindow: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	msgs, _, err := s2.Fetch(ctx, b.id, 0, 10)
	if err != nil || len(msgs) != 1 || msgs[0].Seq != res.PeerSeq {
		t.Fatalf("Fetch after update = %+v, %v", msgs, err)
	}
}
