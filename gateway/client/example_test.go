package client_test

// The examples below talk to a Mayfly server at http://127.0.0.1:8080. They
// are compiled by go test but not run (they have no "Output:" comment):
// running them needs a live server, and the tests in this package exercise
// the same calls against an in-process mayflyd.

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/mayfly-im/mayfly/gateway/client"
	"github.com/mayfly-im/mayfly/schema"
)

// Register a new user with a fresh identity key and device key (this device
// is the primary) and log it in. Keep the keys (client.Dir does) or the
// account is lost.
func Example_register() {
	ctx := context.Background()
	keys, err := client.NewKeys(true)
	if err != nil {
		log.Fatal(err)
	}
	c, err := client.New(client.Config{Server: "http://127.0.0.1:8080", Keys: keys, DeviceName: "example"})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := c.Register(ctx, "alice"); schema.HasCode(err, schema.CodeHandleTaken) {
		log.Fatal("pick another handle")
	} else if err != nil {
		log.Fatal(err)
	}
	if _, err := c.Login(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println("fingerprint:", c.Identity().Fingerprint)
}

// Resume a device kept in a directory, send a message and receive messages
// until interrupted. Run reconnects by itself; the cursor is saved after
// each message the handler took, so a restart continues where it stopped.
func ExampleClient_Run() {
	dir, err := client.OpenDir("/home/alice/.mayfly")
	if err != nil {
		log.Fatal(err)
	}
	cfg, err := dir.Config("http://127.0.0.1:8080")
	if err != nil {
		log.Fatal(err)
	}
	c, err := client.New(cfg)
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	go func() {
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		sent, err := c.Send(sctx, "bob", "hello bob")
		if schema.HasCode(err, schema.CodeNotFriend) {
			log.Print("bob is not a friend yet")
			return
		}
		fmt.Println("stored as", sent.ID)
	}()
	err = c.Run(ctx, client.Handler{
		Message: func(ctx context.Context, m client.Message) error {
			if m.Self || m.Err != nil {
				return nil
			}
			fmt.Printf("%s: %s\n", m.FromHandle, m.Text)
			return c.Read(ctx, m.Seq) // burn after reading
		},
		Event: func(_ context.Context, e schema.Event) {
			if e.Type == schema.EventFriendKeysChanged {
				fmt.Println("compare safety numbers with", e.Peer.Handle)
			}
		},
	})
	if err != nil {
		log.Fatal(err) // the session ended: token_revoked and the like
	}
}

// Make friends and check the friend's keys.
func ExampleClient_FriendRequest() {
	var c *client.Client // a logged-in client
	ctx := context.Background()
	r, err := c.FriendRequest(ctx, "bob")
	if err != nil {
		log.Fatal(err)
	}
	if r.Friend != nil {
		fmt.Println("bob had asked already; friends now")
	}
	friends, err := c.Friends(ctx)
	if err != nil {
		log.Fatal(err)
	}
	for _, f := range friends {
		if f.KeyChanged {
			p, _ := c.Peer(f.UserID)
			fmt.Printf("%s has a new identity key; sending is refused until you compare %s and accept\n", f.Handle, c.SafetyNumber(p))
		}
	}
}

// Link a new device: the new device makes its own key and shows a code, the
// user's primary device approves it (adding the key to the signed device
// list), and the new device logs in.
func ExampleStartLink() {
	ctx := context.Background()
	keys, err := client.NewKeys(false)
	if err != nil {
		log.Fatal(err)
	}
	pl, err := client.StartLink(ctx, client.LinkConfig{Server: "http://127.0.0.1:8080", Keys: keys})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("on your phone, approve", pl.Code()) // phone: c.ApproveLink(ctx, code)
	linked, err := pl.Wait(ctx)
	if err != nil {
		log.Fatal(err)
	}
	c, err := client.New(client.Config{Server: "http://127.0.0.1:8080", Keys: linked.Keys, IdentityKey: linked.IdentityKey,
		UserID: linked.UserID, Handle: linked.Handle, DeviceName: "laptop"})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := c.Login(ctx); err != nil {
		log.Fatal(err)
	}
}
