package mailbox

import (
	"testing"
)

// userInPartition returns a new user whose mailbox is in partition p.
func userInPartition(t testing.TB, s *Service, p int) user {
	for {
		u := newUser(t)
		if Partition(u.id, s.Partitions()) == p {
			return u
		}
	}
}

func TestMailboxFetch(t *testing.T) {
	f := newFixture(t, nil)
	a, b := f.friendsPair(t)
	// c shares b's stream, so replay must keep to b's literal subject.
	c := userInPartition(t, f.svc, Partition(b.id, f.svc.Partitions()))
	f.friends.befriend(a.id, c.id)

	t.Run("empty", func(t *testing.T) {
		msgs, last, err := f.svc.Fetch(testContext(t), b.id, 0, 10)
		if err != nil || len(msgs) != 0 || last != 0 {
			t.Fatalf("Fetch(empty) = %d msgs, last %d, %v", len(msgs), last, err)
		}
	})

	const n = 2*batchSize + 50 // more than two Direct Get batches
	var seqs []uint64
	for i := range n {
		seqs = append(seqs, f.send(t, a, b, "m").PeerSeq)
		if i%10 == 0 {
			f.send(t, a, c, "noise")
		}
	}

	t.Run("from zero", func(t *testing.T) {
		msgs, last, err := f.svc.Fetch(testContext(t), b.id, 0, MaxFetch)
		if err != nil {
			t.Fatal(err)
		}
		checkSeqs(t, msgs, seqs)
		if last != seqs[n-1] {
			t.Fatalf("last = %d, want %d", last, seqs[n-1])
		}
	})
	t.Run("from the middle", func(t *testing.T) {
		msgs, _, err := f.svc.Fetch(testContext(t), b.id, seqs[299], MaxFetch)
		if err != nil {
			t.Fatal(err)
		}
		checkSeqs(t, msgs, seqs[300:])
	})
	t.Run("pages", func(t *testing.T) {
		var all []Message
		var cursor uint64
		for page := 0; ; page++ {
			msgs, last, err := f.svc.Fetch(testContext(t), b.id, cursor, 100)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, msgs...)
			if len(msgs) < 100 {
				if last != seqs[n-1] {
					t.Fatalf("last page: last = %d, want %d", last, seqs[n-1])
				}
				break
			}
			if last != msgs[99].Seq {
				t.Fatalf("page %d: last = %d, want %d", page, last, msgs[99].Seq)
			}
			cursor = last
		}
		checkSeqs(t, all, seqs)
	})
	t.Run("cursor at the end", func(t *testing.T) {
		msgs, last, err := f.svc.Fetch(testContext(t), b.id, seqs[n-1], 10)
		if err != nil || len(msgs) != 0 || last != seqs[n-1] {
			t.Fatalf("Fetch(end) = %d msgs, last %d, %v; want none, last %d", len(msgs), last, err, seqs[n-1])
		}
	})
	t.Run("cursor beyond the end", func(t *testing.T) {
		msgs, last, err := f.svc.Fetch(testContext(t), b.id, seqs[n-1]+1000, 10)
		if err != nil || len(msgs) != 0 || last != seqs[n-1] {
			t.Fatalf("Fetch(beyond) = %d msgs, last %d, %v", len(msgs), last, err)
		}
	})
	t.Run("default and maximum", func(t *testing.T) {
		msgs, _, err := f.svc.Fetch(testContext(t), b.id, 0, 0)
		if err != nil || len(msgs) != DefaultFetch {
			t.Fatalf("Fetch(max 0) = %d msgs, %v; want %d", len(msgs), err, DefaultFetch)
		}
	})
	t.Run("bad id", func(t *testing.T) {
		_, _, err := f.svc.Fetch(testContext(t), "u.>", 0, 10)
		wantCode(t, err, "bad_request")
	})
}

func checkSeqs(t *testing.T, msgs []Message, want []uint64) {
	t.Helper()
	if len(msgs) != len(want) {
		t.Fatalf("got %d messages, want %d", len(msgs), len(want))
	}
	for i, m := range msgs {
		if m.Seq != want[i] {
			t.Fatalf("message %d: seq %d, want %d", i, m.Seq, want[i])
		}
	}
}

func TestMailboxUnread(t *testing.T) {
	f := newFixture(t, nil)
	a, b := f.friendsPair(t)
	c := newUser(t)
	f.friends.befriend(c.id, b.id)
	first := f.send(t, a, b, "1")
	f.send(t, a, b, "2")
	f.send(t, a, b, "3")
	f.send(t, c, b, "4")
	f.send(t, c, b, "5")
	f.send(t, b, a, "b's own sync copy is not unread")
	if _, err := f.svc.Read(testContext(t), b.id, first.PeerSeq); err != nil {
		t.Fatal(err)
	}
	got, err := f.svc.Unread(testContext(t), b.id)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[a.id] != 2 || got[c.id] != 2 {
		t.Fatalf("Unread(b) = %v, want a:2 c:2", got)
	}
	got, err = f.svc.Unread(testContext(t), a.id)
	if err != nil || len(got) != 1 || got[b.id] != 1 {
		t.Fatalf("Unread(a) = %v, %v; want b:1", got, err)
	}
	got, err = f.svc.Unread(testContext(t), c.id)
	if err != nil || len(got) != 0 {
		t.Fatalf("Unread(c) = %v, %v; want none", got, err)
	}
}
