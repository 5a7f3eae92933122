package mailbox

import "time"

// Operations an [Observer] is told about.
const (
	OpSend   = "send"   // Send
	OpRead   = "read"   // Read and ReadDelivered: burn after reading
	OpRecall = "recall" // Recall
	OpFetch  = "fetch"  // Fetch: replay
)

// Observer is told the outcome of each Send, Read, ReadDelivered, Recall
// and Fetch, for metrics. Done runs on the caller's goroutine after the
// operation: op is one of the Op constants, took its duration, n the
// number of messages Fetch returned (0 for the others), and err its error
// (nil on success; a *schema.Error, or an internal error wrapping the
// cause). Implementations must be quick and safe for concurrent use, and
// must not keep err's text where clients or logs of user data could see it.
type Observer interface {
	Done(op string, took time.Duration, n int, err error)
}

// observe reports an operation that began at start to the configured
// Observer; *err is read when observe runs, so call it deferred.
func (s *Service) observe(op string, start time.Time, n int, err *error) {
	if s.cfg.Observer != nil {
		s.cfg.Observer.Done(op, time.Since(start), n, *err)
	}
}
