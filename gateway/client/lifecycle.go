package client

import (
	"context"

	"github.com/mayfly-im/mayfly/schema"
)

// DeleteAccount deletes this user's account on the server, for every
// device: keys, devices, friendships, friend requests and every message it
// exchanged are removed, and every session ends (this client's too). It
// cannot be undone. The client's own storage is left to the caller (see
// Dir.RemoveIdentity). Errors: bad_request, the token errors.
func (c *Client) DeleteAccount(ctx context.Context) error {
	return c.do(ctx, "delete account", call{
		method: "DELETE", path: "/v1/account", auth: withToken,
		body: schema.DeleteAccountRequest{Handle: c.Identity().Handle},
	})
}
