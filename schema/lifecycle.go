package schema

// DeleteAccountRequest is the body of DELETE /v1/account: the account's own
// handle, as a confirmation (any letter case).
type DeleteAccountRequest struct {
	Handle string `json:"handle"`
}
