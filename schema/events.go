package schema

// EventType names a live notification pushed to a user's connected devices.
type EventType string

// Event types. docs/api.md documents each one.
const (
	EventDeviceRevoked EventType = "device_revoked" // one of the user's devices was revoked
)

// Event is a live notification for one user, published by the services on
// the user's event subject and forwarded by gateways to connected devices.
type Event struct {
	Type     EventType `json:"type"`
	DeviceID string    `json:"device_id,omitempty"`
}
