package attach

import (
	"bytes"
	"io"
	"testing"

	"github.com/mayfly-im/mayfly/schema"
)

// BenchmarkAttachForgetNone is what every burn of a message without
// attachments costs: one purge request on a filter nothing matches.
func BenchmarkAttachForgetNone(b *testing.B) {
	f := newFixture(b, 0, func(*Config) {})
	alice, bob := schema.NewUserID(), schema.NewUserID()
	ctx := b.Context()
	for b.Loop() {
		f.svc.Forget(ctx, alice, bob, "m-1")
	}
}

// BenchmarkAttachPutGet25MiB stores and reads back one 25 MiB attachment
// (fsynced chunks on the embedded node), then burns it.
func BenchmarkAttachPutGet25MiB(b *testing.B) {
	f := newFixture(b, 0, func(*Config) {})
	alice, bob := schema.NewUserID(), schema.NewUserID()
	f.friends.befriend(alice, bob)
	data := randomBytes(schema.MaxAttachmentSize)
	ctx := b.Context()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		id, err := f.svc.Put(ctx, alice, bob, "m-1", int64(len(data)), bytes.NewReader(data))
		if err != nil {
			b.Fatal(err)
		}
		file, err := f.svc.Open(ctx, bob, id.String())
		if err != nil {
			b.Fatal(err)
		}
		if _, err := file.WriteTo(ctx, io.Discard); err != nil {
			b.Fatal(err)
		}
		f.svc.Forget(ctx, alice, bob, "m-1")
	}
}
