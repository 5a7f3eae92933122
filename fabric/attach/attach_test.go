package attach

import (
	"bytes"
	"context"
	"crypto/rand"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mayfly-im/mayfly/fabric/natstest"
	"github.com/mayfly-im/mayfly/fabric/node"
	"github.com/mayfly-im/mayfly/schema"
)

// allowList stands in for fabric/friends.Service (which needs Postgres): a
// set of friend pairs. It is the only non-production part these tests use.
type allowList struct {
	mu    sync.Mutex
	pairs map[[2]string]bool // guarded by mu
}

func (l *allowList) befriend(a, b string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.pairs == nil {
		l.pairs = map[[2]string]bool{}
	}
	l.pairs[[2]string{a, b}], l.pairs[[2]string{b, a}] = true, true
}

func (l *allowList) CanMessage(_ context.Context, from, to string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.pairs[[2]string{from, to}] {
		return schema.Errorf(schema.CodeNotFriend, "not your friend")
	}
	return nil
}

type fixture struct {
	svc     *Service
	friends *allowList
	dir     string
}

func newFixture(t testing.TB, compact time.Duration, edit func(*Config)) *fixture {
	t.Helper()
	n := natstest.RunWith(t, func(c *node.Config) {
		if compact > 0 {
			c.CompactInterval = compact
		}
	})
	f := &fixture{friends: &allowList{}, dir: n.Server().StoreDir()}
	cfg := Config{NATS: natstest.Connect(t, n), Permit: f.friends, RotateInterval: -1}
	edit(&cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	svc, err := New(ctx, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	f.svc = svc
	return f
}

// ctxT bounds one call of a test; generous, for 25 MiB under -race on a
// loaded machine.
func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// get downloads id as user.
func (f *fixture) get(t *testing.T, user, id string) ([]byte, error) {
	t.Helper()
	file, err := f.svc.Open(ctxT(t), user, id)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if _, err := file.WriteTo(ctxT(t), &buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func TestAttachPutGetForget(t *testing.T) {
	f := newFixture(t, 0, func(*Config) {})
	alice, bob, eve := schema.NewUserID(), schema.NewUserID(), schema.NewUserID()
	f.friends.befriend(alice, bob)
	data := randomBytes(3*ChunkSize + 1234)
	id, err := f.svc.Put(ctxT(t), alice, bob, "m-1", int64(len(data)), bytes.NewReader(data))
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	for _, who := range []string{alice, bob} {
		got, err := f.get(t, who, id.String())
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("download by a party: %d bytes, %v; want the %d uploaded", len(got), err, len(data))
		}
	}
	if _, err := f.get(t, eve, id.String()); !schema.HasCode(err, schema.CodeUnknownAttachment) {
		t.Fatalf("a stranger's download: %v, want unknown_attachment", err)
	}
	f.svc.Forget(ctxT(t), alice, bob, "m-2") // another message: nothing happens
	if _, err := f.get(t, bob, id.String()); err != nil {
		t.Fatalf("after another message's burn: %v", err)
	}
	f.svc.Forget(ctxT(t), alice, bob, "m-1")
	if _, err := f.get(t, bob, id.String()); !schema.HasCode(err, schema.CodeUnknownAttachment) {
		t.Fatalf("after the burn: %v, want unknown_attachment", err)
	}
	if n := f.storedMsgs(t); n != 0 {
		t.Fatalf("after the burn the stream holds %d messages", n)
	}
}

func (f *fixture) storedMsgs(t *testing.T) uint64 {
	info, err := f.svc.stream.Info(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func TestAttachRefusals(t *testing.T) {
	f := newFixture(t, 0, func(c *Config) { c.MaxFiles = 2 })
	alice, bob, eve := schema.NewUserID(), schema.NewUserID(), schema.NewUserID()
	f.friends.befriend(alice, bob)
	small := []byte("0123456789")
	put := func(from, to, mid string, size int64, body []byte) error {
		_, err := f.svc.Put(ctxT(t), from, to, mid, size, bytes.NewReader(body))
		return err
	}
	for _, c := range []struct {
		name string
		err  error
		code schema.Code
	}{
		{"not a friend", put(alice, eve, "m-1", 10, small), schema.CodeNotFriend},
		{"to yourself", put(alice, alice, "m-1", 10, small), schema.CodeBadRequest},
		{"bad message id", put(alice, bob, "m.1", 10, small), schema.CodeBadRequest},
		{"bad user id", put(alice, "u*", "m-1", 10, small), schema.CodeBadRequest},
		{"too large", put(alice, bob, "m-1", schema.MaxAttachmentSize+1, small), schema.CodeAttachmentTooLarge},
		{"empty", put(alice, bob, "m-1", 0, nil), schema.CodeBadRequest},
		{"shorter than declared", put(alice, bob, "m-1", 11, small), schema.CodeBadRequest},
		{"longer than declared", put(alice, bob, "m-1", 9, small), schema.CodeBadRequest},
	} {
		if !schema.HasCode(c.err, c.code) {
			t.Errorf("%s: %v, want %s", c.name, c.err, c.code)
		}
	}
	if n := f.storedMsgs(t); n != 0 {
		t.Fatalf("refused uploads left %d messages", n)
	}
	for i := range 2 {
		if err := put(alice, bob, "m-"+string(rune('a'+i)), 10, small); err != nil {
			t.Fatalf("upload %d: %v", i, err)
		}
	}
	if err := put(alice, bob, "m-c", 10, small); !schema.HasCode(err, schema.CodeAttachmentQuota) {
		t.Fatalf("third upload: %v, want attachment_quota", err)
	}
	if err := put(bob, alice, "m-c", 10, small); err != nil {
		t.Fatalf("the other user's quota is their own: %v", err)
	}
	f.svc.Forget(ctxT(t), alice, bob, "m-a")
	if err := put(alice, bob, "m-c", 10, small); err != nil {
		t.Fatalf("after a burn the quota has room: %v", err)
	}
	for _, bad := range []string{"", "x", "a.b.c.d", alice + "." + bob + ".m-a", alice + "." + bob + ".m-a.a" + "aaaa.b"} {
		if _, err := f.svc.Open(ctxT(t), alice, bad); !schema.HasCode(err, schema.CodeUnknownAttachment) {
			t.Errorf("Open(%q): %v, want unknown_attachment", bad, err)
		}
	}
}

func TestAttachExpires(t *testing.T) {
	f := newFixture(t, 0, func(c *Config) { c.MaxAge = 2 * time.Second })
	alice, bob := schema.NewUserID(), schema.NewUserID()
	f.friends.befriend(alice, bob)
	id, err := f.svc.Put(ctxT(t), alice, bob, "m-1", 5, bytes.NewReader([]byte("hello")))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := f.get(t, bob, id.String())
		if schema.HasCode(err, schema.CodeUnknownAttachment) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("20s after a 2s MaxAge the attachment is still served: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestAttachChunksLeaveFiles burns and expires attachments while another
// one stays stored (as on a real server the stream is rarely empty) and
// measures how long their bytes stay in the store's files: with the
// rotation they go; without it (the control) a burned one stays.
func TestAttachChunksLeaveFiles(t *testing.T) {
	const (
		maxAge = 4 * time.Second
		within = 30 * time.Second // rotation + compaction (1s each), slack for a loaded machine
	)
	run := func(t *testing.T, rotate time.Duration, wait time.Duration) (gone bool, report string) {
		f := newFixture(t, time.Second, func(c *Config) { c.MaxAge = maxAge; c.RotateInterval = rotate })
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); f.svc.RunRotation(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
		alice, bob := schema.NewUserID(), schema.NewUserID()
		f.friends.befriend(alice, bob)
		keep := func(i int) {
			if _, err := f.svc.Put(ctxT(t), bob, alice, "keep-"+itoa(i), 100, bytes.NewReader(randomBytes(100))); err != nil {
				t.Fatal(err)
			}
		}
		keep(0)
		burned, expired := randomBytes(2*ChunkSize), randomBytes(1000)
		if _, err := f.svc.Put(ctxT(t), alice, bob, "m-1", int64(len(burned)), bytes.NewReader(burned)); err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.Put(ctxT(t), alice, bob, "m-2", int64(len(expired)), bytes.NewReader(expired)); err != nil {
			t.Fatal(err)
		}
		f.svc.Forget(ctxT(t), alice, bob, "m-1")
		burnedAt, expiresAt := time.Now(), time.Now().Add(maxAge)
		needles := [][]byte{burned[ChunkSize : ChunkSize+64], expired[:64]}
		goneAfter := []time.Duration{-1, -1}
		deadline := time.Now().Add(wait)
		for i := 1; time.Now().Before(deadline); i++ {
			if i%10 == 0 {
				keep(i) // a fresh keeper: the stream is never empty
			}
			found := natstest.InFiles(t, f.dir, needles)
			for k, since := range []time.Time{burnedAt, expiresAt} {
				if !found[k] && goneAfter[k] < 0 {
					goneAfter[k] = max(time.Since(since), 0)
				}
			}
			if goneAfter[0] >= 0 && goneAfter[1] >= 0 {
				return true, "burned gone " + goneAfter[0].Round(100*time.Millisecond).String() + " after the burn, expired gone " + goneAfter[1].Round(100*time.Millisecond).String() + " after its expiry"
			}
			time.Sleep(200 * time.Millisecond)
		}
		return false, "burned gone after " + goneAfter[0].String() + ", expired gone after " + goneAfter[1].String() + " (-1: still there)"
	}
	t.Run("rotated", func(t *testing.T) {
		ok, report := run(t, time.Second, maxAge+within)
		t.Log(report)
		if !ok {
			t.Errorf("attachment bytes still in the store's files: %s", report)
		}
	})
	t.Run("control without rotation", func(t *testing.T) {
		ok, report := run(t, -1, 2*maxAge)
		if ok {
			t.Fatalf("bytes left the files without rotation: the search does not see the store (%s)", report)
		}
		t.Logf("without rotation: %s", report)
	})
}

func itoa(i int) string { return string(rune('a'+i%26)) + string(rune('a'+i/26%26)) }

// FuzzAttachParseID: an id from a client becomes subject tokens only if
// every part is a valid id, and what parses prints back to itself.
func FuzzAttachParseID(f *testing.F) {
	f.Add("ubbbbbbbbbbbbbbbbbbbbbbbbbb.ucccccccccccccccccccccccccc.m-1.aaaaaaaaaaaaaaaaaaaaaaaaaaa")
	f.Add("u.u.m.a")
	f.Add("*.>.m.a")
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseID(s)
		if err != nil {
			return
		}
		if id.String() != s || strings.ContainsAny(id.chunks(), " *>\t\r\n") || strings.Count(id.meta(), ".") != 5 {
			t.Fatalf("ParseID(%q) = %+v", s, id)
		}
	})
}

// TestAttachSizes: uploads of one byte, of exactly one ack window of
// chunks, just past two, and of the largest size come back whole.
func TestAttachSizes(t *testing.T) {
	f := newFixture(t, 0, func(*Config) {})
	alice, bob := schema.NewUserID(), schema.NewUserID()
	f.friends.befriend(alice, bob)
	for i, size := range []int{1, ChunkSize, ackWindow * ChunkSize, 2*ackWindow*ChunkSize + 1, schema.MaxAttachmentSize} {
		data := randomBytes(size)
		mid := "m-" + itoa(i)
		id, err := f.svc.Put(ctxT(t), alice, bob, mid, int64(size), bytes.NewReader(data))
		if err != nil {
			t.Fatalf("Put of %d bytes: %v", size, err)
		}
		got, err := f.get(t, bob, id.String())
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%d bytes: got %d, %v", size, len(got), err)
		}
		f.svc.Forget(ctxT(t), alice, bob, mid)
	}
}
