package jsapi_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mayfly-im/mayfly/fabric/jsapi"
	"github.com/mayfly-im/mayfly/fabric/natstest"
)

// TestJSAPI runs every call against a real stream on an embedded server.
func TestJSAPI(t *testing.T) {
	nc := natstest.Connect(t, natstest.Run(t))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.*"}, AllowDirect: true}); err != nil {
		t.Fatal(err)
	}
	// Sequences 1..6 alternate between t.a and t.b.
	for i := range 6 {
		subj := "t.a"
		if i%2 == 1 {
			subj = "t.b"
		}
		if _, err := js.Publish(ctx, subj, []byte(strconv.Itoa(i+1))); err != nil {
			t.Fatal(err)
		}
	}

	m, err := jsapi.Get(ctx, nc, "T", 2)
	if err != nil || string(m.Data) != "2" || jsapi.Seq(m, 0) != 2 {
		t.Fatalf("Get 2 = %v, %v", m, err)
	}
	if _, err := jsapi.Get(ctx, nc, "T", 99); !errors.Is(err, jsapi.ErrNotFound) {
		t.Fatalf("Get 99: %v, want ErrNotFound", err)
	}
	if m, err := jsapi.GetLast(ctx, nc, "T", "t.a"); err != nil || jsapi.Seq(m, 0) != 5 {
		t.Fatalf("GetLast t.a = %v, %v; want seq 5", m, err)
	}
	if _, err := jsapi.GetLast(ctx, nc, "T", "t.c"); !errors.Is(err, jsapi.ErrNotFound) {
		t.Fatalf("GetLast t.c: %v, want ErrNotFound", err)
	}
	if m, err := jsapi.GetLeader(ctx, nc, "T", 4); err != nil || jsapi.Seq(m, 0) != 4 || m.Header.Get(jetstream.SubjectHeader) != "t.b" || string(m.Data) != "4" {
		t.Fatalf("GetLeader 4 = %v, %v", m, err)
	}

	var seqs []uint64
	pending, err := jsapi.Batch(ctx, nc, "T", jsapi.GetRequest{Seq: 2, NextFor: "t.b", Batch: 2}, func(m *nats.Msg) bool {
		seqs = append(seqs, jsapi.Seq(m, 0))
		return true
	})
	if err != nil || pending != 1 || len(seqs) != 2 || seqs[0] != 2 || seqs[1] != 4 {
		t.Fatalf("Batch t.b from 2 = %v pending %d, %v; want [2 4] and 1 pending", seqs, pending, err)
	}
	seqs = nil
	if _, err := jsapi.Batch(ctx, nc, "T", jsapi.GetRequest{MultiLast: []string{"t.a", "t.b"}}, func(m *nats.Msg) bool {
		seqs = append(seqs, jsapi.Seq(m, 0))
		return true
	}); err != nil || len(seqs) != 2 || seqs[0] != 5 || seqs[1] != 6 {
		t.Fatalf("Batch multi_last = %v, %v; want [5 6]", seqs, err)
	}
	if n, err := jsapi.Batch(ctx, nc, "T", jsapi.GetRequest{Seq: 1, NextFor: "t.c", Batch: 5}, func(*nats.Msg) bool {
		t.Error("a message for t.c")
		return true
	}); err != nil || n != 0 {
		t.Fatalf("Batch t.c = %d, %v", n, err)
	}

	if err := jsapi.Delete(ctx, nc, "T", 3); err != nil {
		t.Fatalf("Delete 3: %v", err)
	}
	if err := jsapi.Delete(ctx, nc, "T", 3); !errors.Is(err, jsapi.ErrNotFound) {
		t.Fatalf("Delete 3 again: %v, want ErrNotFound", err)
	}
	if _, err := jsapi.Get(ctx, nc, "T", 3); !errors.Is(err, jsapi.ErrNotFound) {
		t.Fatalf("Get deleted 3: %v, want ErrNotFound", err)
	}
	if n, err := jsapi.Purge(ctx, nc, "T", "t.b", 4); err != nil || n != 1 {
		t.Fatalf("Purge t.b below 4 = %d, %v; want 1 (seq 2)", n, err)
	}
	if m, err := jsapi.GetLast(ctx, nc, "T", "t.b"); err != nil || jsapi.Seq(m, 0) != 6 {
		t.Fatalf("GetLast t.b after a partial purge = %v, %v; want seq 6", m, err)
	}
	if _, err := jsapi.Get(ctx, nc, "T", 4); err != nil {
		t.Fatalf("Get 4 after purging below 4: %v", err)
	}
	if n, err := jsapi.Purge(ctx, nc, "T", "t.b", 0); err != nil || n != 2 {
		t.Fatalf("Purge t.b = %d, %v; want 2", n, err)
	}
	if _, err := jsapi.GetLast(ctx, nc, "T", "t.b"); !errors.Is(err, jsapi.ErrNotFound) {
		t.Fatalf("GetLast t.b after purge: %v", err)
	}
	if err := jsapi.Delete(ctx, nc, "NOPE", 1); err == nil || errors.Is(err, jsapi.ErrNotFound) {
		t.Fatalf("Delete on a missing stream: %v, want another error", err)
	}
}
