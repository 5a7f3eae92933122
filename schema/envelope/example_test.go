package envelope_test

import (
	"fmt"
	"log"
	"time"

	"github.com/mayfly-im/mayfly/schema/envelope"
)

func ExampleSeal() {
	alice, err := envelope.NewKeys()
	if err != nil {
		log.Fatal(err)
	}
	bob, err := envelope.NewKeys()
	if err != nil {
		log.Fatal(err)
	}

	// Alice seals a message for Bob with his published public keys.
	h := envelope.Header{From: "alice", To: "bob", MsgID: "c-42", SentAt: time.UnixMilli(1700000000000)}
	sealed, err := envelope.Seal(h, alice, bob.Public(), []byte("hi Bob"))
	if err != nil {
		log.Fatal(err)
	}

	// The server checks the shape without any key and reads the header.
	env, err := envelope.Parse(sealed)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("server sees:", env.Header().From, "->", env.Header().To)

	// Bob opens it with his keys and Alice's known signing key; so can
	// Alice's other devices, for her sent copy.
	for _, reader := range []envelope.Keys{bob, alice} {
		got, plaintext, err := envelope.Open(sealed, reader, alice.Public().Sign)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s at %d: %s\n", got.MsgID, got.SentAt.UnixMilli(), plaintext)
	}
	// Output:
	// server sees: alice -> bob
	// c-42 at 1700000000000: hi Bob
	// c-42 at 1700000000000: hi Bob
}

func ExampleSafetyNumber() {
	alice, err := envelope.NewKeys()
	if err != nil {
		log.Fatal(err)
	}
	bob, err := envelope.NewKeys()
	if err != nil {
		log.Fatal(err)
	}
	// Both users see the same number whichever of them computes it.
	fmt.Println(envelope.SafetyNumber(alice.Public(), bob.Public()) ==
		envelope.SafetyNumber(bob.Public(), alice.Public()))
	// Output: true
}
